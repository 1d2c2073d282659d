"""The product's layers as PNG on its grid: the field, ``SIGMA`` and ``CONFIDENCE``.

``GET /v1/magnetograms/{id}/layers/{field|sigma|confidence}.png`` renders one HDU of the
stored FITS product as a 1024x1024 PNG, solar north at the top (the model frame's rows
reversed, as ``input.png``), transparent off the disk, so that a page can lay the layers
over one another pixel for pixel (the viewer greys out the field where CONFIDENCE is
below a threshold). The encodings are for looking and thresholding, not for science
(the FITS HDUs hold the exact values):

- ``field``: RGBA in the quick-look's colours (``RdBu_r``, -200..+200 G).
- ``sigma``: grey + alpha, grey level = SIGMA in Gauss, rounded, saturating at 255 G.
- ``confidence``: grey + alpha, grey level = round(255 x CONFIDENCE).

Which layers a product has is read from its FITS headers once per file (products are
write-once, so the answer is cached by the file's sha256); renders are cached likewise.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from service.storage import ObjectStore

LAYERS = ("field", "sigma", "confidence")
UNCERTAINTY = ("sigma", "confidence")
HDU = {"field": 0, "sigma": "SIGMA", "confidence": "CONFIDENCE"}
GAUSS_MAX = 200.0  # the quick-look's colour range
SIGMA_MAX_G = 255  # sigma's grey level saturates here (1 G a level)
_NAMES_KEPT = 4096
_RENDERS_KEPT = 16

_names: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_renders: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_lock = threading.Lock()


def _remember(cache: OrderedDict, key: Any, value: Any, size: int) -> None:
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def _recall(cache: OrderedDict, key: Any) -> Any:
    with _lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def layers_of(store: ObjectStore, fits_uri: str, fits_sha256: str) -> tuple[str, ...]:
    """The uncertainty layers (``sigma``, ``confidence``) the product FITS holds; () when none.

    Reads headers only from a file store; other stores hand over the whole object
    (once per file: the answer is cached). A missing or unreadable object: ().
    """
    from astropy.io import fits

    known = _recall(_names, fits_sha256)
    if known is not None:
        return known
    try:
        key = store.key_for(fits_uri)
        path_for = getattr(store, "path_for", None)
        source: Any = path_for(key) if path_for is not None else io.BytesIO(store.get(key))
        with fits.open(source, memmap=False, lazy_load_hdus=True) as hdul:
            extnames = {h.name for h in hdul[1:]}
    except Exception:  # noqa: BLE001 (a product file gone or damaged: no layers to link, nothing cached)
        return ()
    names = tuple(n for n in UNCERTAINTY if HDU[n] in extnames)
    _remember(_names, fits_sha256, names, _NAMES_KEPT)
    return names


def render_layer_png(fits_bytes: bytes, layer: str, cache_key: str) -> bytes | None:
    """PNG of ``layer`` of a product FITS (see module docstring); None when the file lacks it."""
    from astropy.io import fits
    from PIL import Image

    cached = _recall(_renders, (cache_key, layer))
    if cached is not None:
        return cached
    with fits.open(io.BytesIO(fits_bytes)) as hdul:
        names = {h.name for h in hdul}
        if layer != "field" and HDU[layer] not in names:
            return None
        data = np.asarray(hdul[HDU[layer]].data, dtype=np.float32)[::-1]  # FITS rows: row 0 = south
    on = np.isfinite(data)
    alpha = np.where(on, 255, 0).astype(np.uint8)
    if layer == "field":
        from matplotlib import colormaps

        norm = (np.clip(np.nan_to_num(data), -GAUSS_MAX, GAUSS_MAX) + GAUSS_MAX) / (2 * GAUSS_MAX)
        rgba = colormaps["RdBu_r"](norm, bytes=True)
        rgba[..., 3] = alpha
        image = Image.fromarray(rgba, "RGBA")
    else:
        scale = 1.0 if layer == "sigma" else 255.0
        grey = np.clip(np.rint(np.nan_to_num(data) * scale), 0, SIGMA_MAX_G).astype(np.uint8)
        image = Image.fromarray(np.stack([grey, alpha], axis=-1), "LA")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    png = buf.getvalue()
    _remember(_renders, (cache_key, layer), png, _RENDERS_KEPT)
    return png
