"""The science core shared by the service and training: units, geometry, metrics.

Importing it sets the process's offline time policy (:mod:`service.science.timebase`):
no science code can reach astropy's Earth-orientation tables before it is in force.
"""

from service.science import timebase

timebase.apply()
