"""Write GONG-format H-alpha frames (``.fits.fz``) from dataset or synthetic images.

Test and replay support: the frames have the layout of real NSO files (an empty primary
HDU, then a RICE tile-compressed int16 2048x2048 image) and a header built on the real
header sunpy ships (``sunpy/data/test/gong_halpha.header``, Big Bear, 2024-02-16; a copy is
package data here, ``data/gong_halpha.header``, so nothing reads test data at run time), in
either header generation, with every geometry key consistent with the pixels written:

- ``FNDLMBXC/YC`` = disk centre + 1 (1-based, as HAL writes it), ``FNDLMBMI/MA`` = radius,
- ``SOLAR-R/P/B0/L0`` computed by sunpy for ``obs_time``, ``DATE-OBS`` = ``obs_time``,
- ``"gongx"``: ``CTYPE1/2 = GONGX/GONGY``, ``CRPIX1/2`` = ``FNDLMBXC/YC``, no ``CDELT``
  (exactly the sample header's keys),
- ``"hpln"``: ``CTYPE1/2 = HPLN-TAN/HPLT-TAN``, ``CUNIT`` arcsec, ``CDELT1/2 =
  SOLAR-R / radius``, ``CRVAL1/2 = 0``.

In both generations ``CRPIX`` is the disk centre. Real HAL output has the disk re-centred
on (1024, 1024) 1-based with radius 900 (``REAL_HAL_CENTER``, ``REAL_HAL_RADIUS``), hence
``CRPIX = 1024.5`` in real hpln files; the default here is deliberately off-centre
(``DEFAULT_CENTER``) so consumers must use the header, not assume a centred disk.

Intensity: the dataset images are on a 0..255 scale and keep their limb darkening
(measured: 205 at disk centre, 170 at r = 0.9 R), so ``counts = offset + gain * v``
reproduces a raw-like GONG frame (centre ~3200 counts as ``BC-VALUE`` in the sample)
without adding limb darkening; ``limb_darkening=True`` multiplies an *extra* mild
profile (a site with different optics). Off the disk: sky background plus a scattered
light halo; Gaussian noise everywhere; values clipped to the camera's 12-bit range.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from scipy import ndimage

from service.science.dataset import fit_disk
from service.science.preprocess import MODEL_CENTER, MODEL_RADIUS_PX, MODEL_SIZE
from service.sources.gong.names import frame_name
from service.sources.gong.reader import FRAME_SHAPE
from service.sources.gong.sites import Site, site_by_letter

__all__ = [
    "DEFAULT_CENTER",
    "PLATE_SCALE_ARCSEC",
    "REAL_HAL_CENTER",
    "REAL_HAL_RADIUS",
    "SATURATION_COUNTS",
    "gong_filename",
    "gong_template_header",
    "synthetic_disk",
    "write_gong_frame",
]

DEFAULT_CENTER = (1031.4, 1020.4)  # 0-based (x, y): off-centre on purpose
REAL_HAL_CENTER = (1023.0, 1023.0)  # 0-based; FNDLMBXC/YC = 1024.0 in the sample header
REAL_HAL_RADIUS = 900.0
PLATE_SCALE_ARCSEC = 971.544571353755 / 900.0  # sample header: SOLAR-R / FNDLMBMI
SATURATION_COUNTS = 4095  # 12-bit camera (DVC 4000M); sample IMGMAX01 = 4075
DEFAULT_GAIN = 15.6  # dataset v = 205 at disk centre -> ~3200 counts (BC-SETPT)
DEFAULT_SKY = 190.0  # counts; sample SKYBRITE = 196
CORNER = 100  # side of the corner squares averaged into SKYBRITE

# Keys of the sample header that describe the sample's own pixels or file, dropped.
_DROP = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "CHECKSUM", "DATASUM")


@lru_cache(maxsize=1)
def _sample_header() -> fits.Header:
    from importlib import resources

    text = resources.files("service.devtools").joinpath("data/gong_halpha.header").read_text()
    return fits.Header.fromstring(text, sep="\n")


def gong_template_header() -> fits.Header:
    """A copy of sunpy's real GONG H-alpha header (gongx generation, 2024-02-16, BB)."""
    return _sample_header().copy()


def gong_filename(obs_time: Time | str, site_letter: str) -> str:
    """NSO file name ``YYYYMMDDhhmmss{S}h.fits.fz`` for a time and site letter."""
    t = Time(obs_time, scale="utc").to_datetime()
    return frame_name(t, _site(site_letter))


def _site(letter: str) -> Site:
    site = site_by_letter(letter)
    if site is None:
        raise ValueError(f"unknown GONG site letter {letter!r}")
    return site


def synthetic_disk(
    size: int = 1024,
    rng: np.random.Generator | int | None = None,
    *,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
    n_plage: int = 4,
    n_filaments: int = 5,
) -> np.ndarray:
    """A dataset-like H-alpha image: limb-darkened disk, plage, filaments, noise.

    Parameters
    ----------
    size : int
        Image side (pixels).
    rng : numpy.random.Generator or int, optional
        Random source (or seed) for feature positions and noise.
    center, radius : optional
        Disk geometry (0-based x, y; pixels); default the dataset's, scaled to ``size``
        (centre ``size / 2``, radius that of the model frame: 450 px at 1024).

    Returns
    -------
    numpy.ndarray
        uint8 (size, size) on the dataset's 0..255 scale: 0 off the disk, on-disk values
        1..255 with a median near 190.
    """
    rng = np.random.default_rng(rng)
    cx, cy = center if center is not None else (size / 2, size / 2)
    r0 = radius if radius is not None else MODEL_RADIUS_PX / MODEL_SIZE * size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = x - cx, y - cy
    rho = np.sqrt(dx * dx + dy * dy) / r0
    disk = rho <= 1.0
    mu = np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))
    img = 205.0 * (1.0 - 0.45 * (1.0 - mu))  # H-alpha limb darkening, ~147 at 0.95 R

    def place(count: int) -> np.ndarray:
        ang = rng.uniform(0, 2 * np.pi, count)
        rad = np.sqrt(rng.uniform(0, 0.75**2, count)) * r0
        return np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])

    scale = size / 1024
    for px, py in place(n_plage):  # plage: bright, compact
        s = rng.uniform(12, 25) * scale
        img += rng.uniform(20, 35) * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * s * s))
    for px, py in place(n_filaments):  # filaments: dark, elongated, any orientation
        th = rng.uniform(0, np.pi)
        u_ = (x - px) * np.cos(th) + (y - py) * np.sin(th)
        v_ = -(x - px) * np.sin(th) + (y - py) * np.cos(th)
        length, width = rng.uniform(30, 70) * scale, rng.uniform(2.5, 5) * scale
        img -= rng.uniform(40, 70) * np.exp(-(u_ / length) ** 2 - (v_ / width) ** 2)
    img += rng.normal(0.0, 2.0, img.shape).astype(np.float32)
    out = np.where(disk, np.clip(np.rint(img), 1, 255), 0)
    return out.astype(np.uint8)


def write_gong_frame(
    image: np.ndarray,
    obs_time: Time | str,
    site_letter: str,
    generation: str = "gongx",
    path: str | Path | None = None,
    *,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
    gain: float = DEFAULT_GAIN,
    offset: float = 0.0,
    limb_darkening: bool = False,
    sky: float = DEFAULT_SKY,
    noise: float = 8.0,
    rng: np.random.Generator | int | None = None,
    image_disk: tuple[float, float, float] | None = None,
    header_overrides: dict[str, object] | None = None,
    order: int = 1,
    overwrite: bool = False,
) -> bytes | Path:
    """Build a real-layout GONG H-alpha ``.fits.fz`` frame from a 0..255 disk image.

    Parameters
    ----------
    image : numpy.ndarray
        2-D H-alpha image, dataset scale (uint8 or float), in FITS row order (row 0 =
        south, as the dataset arrays are: see ``service.science.preprocess``), 0 off the disk.
    obs_time : astropy.time.Time or str
        Observation time (UTC): ``DATE-OBS``, solar ephemeris and file name.
    site_letter : str
        File-name letter of the station (B C L M T U).
    generation : {"gongx", "hpln"}
        Header generation (before / after October 2024).
    path : str or pathlib.Path, optional
        Output file, or a directory (the NSO file name is used). None: return bytes.
    center, radius : optional
        Disk geometry in the 2048 frame (0-based x, y; pixels). Defaults:
        ``DEFAULT_CENTER`` and ``SOLAR-R(obs_time) / PLATE_SCALE_ARCSEC``.
    gain, offset : float
        ``counts = offset + gain * v`` on the disk.
    limb_darkening : bool
        Multiply an extra ``1 - 0.2 (1 - mu)`` profile (the input already has its own).
    sky, noise : float
        Off-disk background level and Gaussian noise sigma (counts).
    rng : numpy.random.Generator or int, optional
        Noise source (or seed).
    image_disk : (cx, cy, r), optional
        Disk geometry of ``image``; default the model frame's for a
        1024x1024 image, else fitted with :func:`~service.science.dataset.fit_disk`.
    header_overrides : dict, optional
        Header keys set last (value None deletes the key): for deliberately bad frames.
    order : int
        Spline order of the resampling (1 is fast; 3 is smoother and ~5x slower).
    overwrite : bool
        Replace an existing file at ``path``.

    Returns
    -------
    bytes or pathlib.Path
        The file content when ``path`` is None, else the written path.
    """
    from sunpy.coordinates import sun

    if generation not in ("gongx", "hpln"):
        raise ValueError(f"generation must be 'gongx' or 'hpln', not {generation!r}")
    site = _site(site_letter)
    t = Time(obs_time, scale="utc")
    t = Time(t.strftime("%Y-%m-%dT%H:%M:%S"), scale="utc")  # whole seconds, as NSO writes
    rng = np.random.default_rng(rng)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")

    rsun = float(sun.angular_radius(t).to_value("arcsec"))
    cx, cy = center if center is not None else DEFAULT_CENTER
    r = float(radius) if radius is not None else rsun / PLATE_SCALE_ARCSEC
    # A 1024x1024 image is a dataset / model-frame image: its disk is the measured model
    # frame's (fit_disk would see the outermost partly lit pixel, ~1 px too far out).
    if image_disk is None:
        image_disk = (
            (*MODEL_CENTER, MODEL_RADIUS_PX) if img.shape == (MODEL_SIZE, MODEL_SIZE) else fit_disk(img)
        )
    icx, icy, ir = image_disk

    # Output pixel (x, y) samples the input at c_in + (p - c_out) * ir / r.
    s = ir / r
    v = ndimage.affine_transform(
        img, [s, s], offset=[icy - s * cy, icx - s * cx], output_shape=FRAME_SHAPE,
        order=order, mode="constant", cval=0.0, prefilter=order > 1,
    )
    yy = np.arange(FRAME_SHAPE[0], dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(FRAME_SHAPE[1], dtype=np.float32)[None, :] - np.float32(cx)
    rho = np.sqrt(xx * xx + yy * yy) / np.float32(r)
    on = rho <= 1.0
    counts = offset + gain * v
    if limb_darkening:
        mu = np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))
        counts *= 1.0 - 0.2 * (1.0 - mu)
    halo = sky + 2.0 * sky * np.exp(-(np.maximum(rho, 1.0) - 1.0) * r / 40.0)
    counts = np.where(on, counts, halo)
    counts += rng.standard_normal(FRAME_SHAPE, dtype=np.float32) * np.float32(noise)
    data = np.clip(np.rint(counts), -16, SATURATION_COUNTS).astype(np.int16)

    header = _frame_header(data, t, site, generation, (cx, cy), r, rsun, sun)
    for key, value in (header_overrides or {}).items():
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value

    hdul = fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(data=data, header=header, compression_type="RICE_1")]
    )
    if path is None:
        buf = io.BytesIO()
        hdul.writeto(buf)
        return buf.getvalue()
    out = Path(path)
    if out.is_dir():
        out = out / gong_filename(t, site.letter)
    hdul.writeto(out, overwrite=overwrite)
    return out


def _frame_header(
    data: np.ndarray,
    t: Time,
    site: object,
    generation: str,
    center: tuple[float, float],
    r: float,
    rsun: float,
    sun: object,
) -> fits.Header:
    """The sample header with every key that depends on this frame rewritten."""
    h = gong_template_header()
    for key in _DROP:
        h.remove(key, ignore_missing=True, remove_all=True)
    cx1, cy1 = center[0] + 1.0, center[1] + 1.0  # 1-based, as HAL writes FNDLMB*
    date_obs = t.strftime("%Y-%m-%dT%H:%M:%S")
    h["DATE"] = Time.now().strftime("%Y-%m-%dT%H:%M:%S")
    h["DATE-OBS"] = date_obs
    h["TIME-OBS"] = date_obs[11:]
    h["IRAF-TLM"] = h["DATE"]
    h["SITENAME"] = site.code  # type: ignore[attr-defined]
    h["SITE"] = site.code  # type: ignore[attr-defined]
    h["SITE-LAT"] = site.lat_deg  # type: ignore[attr-defined]
    h["SITE-LON"] = site.lon_deg  # type: ignore[attr-defined]
    h["SOLAR-R"] = rsun
    h["SOLAR-P"] = float(sun.P(t).to_value("deg"))  # type: ignore[attr-defined]
    h["SOLAR-B0"] = float(sun.B0(t).to_value("deg"))  # type: ignore[attr-defined]
    h["SOLAR-L0"] = float(sun.L0(t).to_value("deg"))  # type: ignore[attr-defined]
    h["RADIUS"] = int(round(r))
    for key, value in (("FNDLMBXC", cx1), ("FNDLMBYC", cy1), ("FNDLMBMI", r), ("FNDLMBMA", r)):
        h[key] = round(float(value), 3)
    on = data[:: 4, :: 4].astype(np.float64)
    h["IMGMN01"] = float(on.mean())
    h["IMGRMS01"] = float(on.std())
    h["IMGMIN01"] = int(data.min())
    h["IMGMAX01"] = int(data.max())
    c = CORNER
    corners = [data[:c, :c], data[:c, -c:], data[-c:, :c], data[-c:, -c:]]
    h["SKYBRITE"] = int(round(float(np.mean([q.mean() for q in corners]))))
    h["CRVAL1"] = 0.0
    h["CRVAL2"] = 0.0
    h["CRPIX1"] = round(cx1, 3)
    h["CRPIX2"] = round(cy1, 3)
    if generation == "hpln":
        h["WCSNAME"] = "Helioprojective-cartesian"
        h["CTYPE1"] = ("HPLN-TAN", "Coordinate Axis Label")
        h["CTYPE2"] = ("HPLT-TAN", "Coordinate Axis Label")
        h.set("CUNIT1", "arcsec", after="CTYPE2")
        h.set("CUNIT2", "arcsec", after="CUNIT1")
        h.set("CDELT1", rsun / r, "[arcsec/pix]", after="CRPIX2")
        h.set("CDELT2", rsun / r, "[arcsec/pix]", after="CDELT1")
    return h
