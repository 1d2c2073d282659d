"""Verification of products against the real HMI line-of-sight magnetogram.

``truth`` fetches HMI (JSOC through drms, or local dataset / replay files),
``prep`` brings it to the product's frame (the hmi_prep equivalent), ``verify``
scores products with ``service.science.metrics``, stores the scores in
``Product.verification`` and exports the ``synmag_verification_*`` gauges.
"""

from __future__ import annotations
