"""Training pairs built from the archives: GONG H-alpha + HMI, in the model frame, unclipped.

``synmag-train dataset build`` (:mod:`.build`) walks a date range, picks per step the best
GONG frame near the chosen hour (the feed's archive client and quality gate) and the HMI
``hmi.M_720s`` magnetogram of the same minute (verification's JSOC source), brings both into
the model frame with the science core's one preprocessing, and writes one pair file per
step (:mod:`.pairs`) and a manifest (:mod:`.manifest`) with the chronological splits
(:mod:`.splits`). ``training.data`` reads such a folder beside the Ha2Mag WebP layout.
"""
