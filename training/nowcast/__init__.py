"""The nowcast: the H-alpha frame plus the newest real magnetogram, rotated to the frame's time.

Read top to bottom: ``config`` (the dataclass saved in every checkpoint), ``cache`` (the
inputs each training day needs, computed once), ``model`` (the small network on top of
the H-alpha-only generator), ``train``, ``evaluate`` (val table by prior age beside
persistence and the H-alpha-only model), ``calibrate`` (uncertainty calibration on val)
and ``export`` (one ONNX file: the H-alpha-only generator and the nowcast head composed).
"""
