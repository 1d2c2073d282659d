"""synmag: synthetic SDO/HMI-like line-of-sight magnetograms from GONG H-alpha.

The ``service`` package is the operational system; ``service.science`` is the
science core shared with the ``training`` package (training imports the core,
never the reverse).
"""

__version__ = "0.1.0"
