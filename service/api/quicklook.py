"""Quick-look PNG of what the model saw: the input frame through the forward transform.

The pipeline stores the raw frame, not the model input; rendering it again
here (same ``service.science.preprocess``) shows the H-alpha exactly on the
product's grid, north up, so the viewer can put the two side by side. Results
are cached in memory by input hash: one render costs about a second of CPU.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np

CACHE_SIZE = 16
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def render_input_png(raw: bytes, source: str, filename: str | None, cache_key: str) -> bytes:
    """PNG (8-bit grey, 1024x1024, solar north at the top) of the model input made from a raw
    frame of frame source ``source``.

    Raises
    ------
    service.errors.FrameRejected
        The stored frame cannot be read or preprocessed.
    """
    with _lock:
        if cache_key in _cache:
            _cache.move_to_end(cache_key)
            return _cache[cache_key]
    from PIL import Image

    from service.science.preprocess import model_to_halpha, preprocess
    from service.sources.registry import frame_reader

    model_input = preprocess(frame_reader(source)(raw, filename))
    # Model-frame arrays are in FITS row order (row 0 = south); a PNG's first row is its top.
    grey = np.clip(np.rint(model_to_halpha(model_input.image[::-1])), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    with _lock:
        _cache[cache_key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data
