"""Training data: read once, put on the device once, crop and flip there.

Two on-disk formats are read, both in the model frame of
``service.science.preprocess`` (1024x1024, row 0 = solar south as in FITS, disk centre ``MODEL_CENTER``,
radius ``MODEL_RADIUS_PX``):

WebP pairs (the Ha2Mag dataset, ``DATA_DIR/{train,val}/``)
    ``{YYYY-MM-DDTHH_MM_SS}_halpha.webp`` and ``..._hmi.webp``, 8-bit; read with
    ``service.science.dataset``. The given train/val folders are used as they are.

Built pairs (``synmag-train dataset build``, :mod:`training.dataset`; one folder, all days)
    ``{YYYY-MM-DDTHH_MM_SS}_pair.fits``: H-alpha (0..255 scale) and B_LOS (Gauss, unclipped)
    in one file (:mod:`training.dataset.pairs`). The split is the one the builder wrote into
    ``manifest.json`` (chronological, 27-day gaps: :mod:`training.dataset.splits`); without a
    manifest it is computed the same way.

FITS pairs (two files a day; one folder, all days)
    ``{YYYY-MM-DDTHH_MM_SS}_halpha.fits``: float32 (1024, 1024) H-alpha on the
    dataset's 0..255 intensity scale (``preprocess.match_intensity`` output), 0 off
    the disk. ``..._hmi.fits``: float32 (1024, 1024) line-of-sight field in Gauss,
    unclipped (clipping is ``preprocess.gauss_to_model``'s job), NaN or 0 off the
    disk. Both in the primary HDU or the first image extension; ``DATE-OBS`` in the
    header wins over the file name for the time. Splits are computed by
    `chronological_splits`: train, val, test in time order with at least 27 days
    (one synodic solar rotation) dropped between them, so no active region is seen
    in two splits.

Several roots, comma-separated (``--data-dir ha2mag,built``), are read together: each
root's train and val days are merged in time order. Hale's law reverses every cycle, so when
the roots' days come from cycles of both parities, the days of the other parity from the
newest train day's cycle have their field negated (``Day.sign``; ``service.science.cycles``),
and the model's ``solar_cycle`` is that newest cycle.

Units are the shared ones: ``halpha_to_model`` for the input; for the target the run's
output scaling (``service.science.output_scaling``; the default, linear 200 G, is
``gauss_to_model``); the target is 0 G off the disk (``preprocess.model_disk_mask``).

Augmentation and the sign of B
------------------------------
A mirror image of the Sun is not a possible Sun unless the field is negated too:

* N-S flip (rows reversed) + negated B: an exact symmetry. A cycle-24 northern
  bipole (leading polarity negative, west and nearer the equator, Joy's tilt)
  lands in the south with leading polarity positive, still west and still nearer
  the equator: Hale's law, Joy's law, the opposite polar fields, and the
  hemispheric filament-chirality rule (mirror + hemisphere swap) all hold.
  Allowed by default (``flip_ns``).
* E-W flip (columns reversed): the leading and following spots swap places. With B
  negated the leading polarity is right again (Hale holds), but the leading spot
  is now the poleward one (Joy's tilt reversed), and the apparent rotation runs
  the wrong way. Off by default (``flip_ew``); when enabled the sign is flipped too.
* Without negation either flip breaks Hale's law, which is what the model must
  learn to get polarities right (the paper's pix2pix augmentation flipped E-W
  without negating).

Order
-----
``chronological`` (Model B): batches of consecutive days, in time order, every
epoch. ``shuffled`` (Model A): a fresh seeded permutation every epoch. The random
crops and flips come from one seeded ``torch.Generator`` on the device whose state
is checkpointed, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.science import dataset, preprocess
from service.science.cycles import cycle_of, polarity_sign
from service.science.output_scaling import DEFAULT as LINEAR_200
from service.science.output_scaling import OutputScaling
from training.dataset import splits as dataset_splits

GAP_DAYS = dataset_splits.GAP_DAYS  # one synodic solar rotation between computed splits


# ---------------------------------------------------------------------------
# day lists
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    """One day on disk: time (ISO UTC), H-alpha and HMI paths, format."""

    time: str
    halpha_path: Path
    hmi_path: Path
    kind: str  # "webp" | "fits" | "pair" (one file: halpha_path == hmi_path)
    sign: int = 1  # -1: field negated into the model cycle's Hale polarity (see the module docstring)

    @property
    def mjd(self) -> float:
        from astropy.time import Time

        return float(Time(self.time, scale="utc").mjd)


def list_webp_days(split_dir: str | Path) -> list[Day]:
    """Days of a Ha2Mag split folder, in time order."""
    return [
        Day(p.time.utc.isot, Path(p.halpha_path), Path(p.hmi_path), "webp")
        for p in dataset.list_pairs(split_dir)
    ]


def list_fits_days(folder: str | Path) -> list[Day]:
    """Days of a FITS-pair folder (see module docstring), in time order."""
    from astropy.io import fits
    from astropy.time import Time

    days = []
    for ha in Path(folder).glob("*_halpha.fits"):
        hmi = ha.with_name(ha.name.replace("_halpha.fits", "_hmi.fits"))
        if not hmi.is_file():
            continue
        header = fits.getheader(ha, ext=_image_hdu(ha))
        if "DATE-OBS" in header:
            time = Time(header["DATE-OBS"], scale="utc")
        else:
            date, _, clock = ha.name[: -len("_halpha.fits")].partition("T")
            time = Time(f"{date}T{clock.replace('_', ':')}", scale="utc")
        days.append(Day(time.utc.isot, ha, hmi, "fits"))
    days.sort(key=lambda d: d.time)
    return days


def list_pair_days(folder: str | Path) -> list[Day]:
    """Days of a built folder (``*_pair.fits``), in time order."""
    from training.dataset.pairs import SUFFIX, pair_time

    days = [Day(pair_time(p).isoformat().replace("+00:00", ""), p, p, "pair") for p in Path(folder).glob("*" + SUFFIX)]
    days.sort(key=lambda d: d.time)
    return days


def _built_splits(folder: Path) -> dict[str, list[Day]] | None:
    """Train and val of a built folder: the manifest's split, else computed; None if not one."""
    import json

    days = list_pair_days(folder)
    if not days:
        return None
    manifest = folder / "manifest.json"
    split = json.loads(manifest.read_text()).get("split", {}) if manifest.is_file() else {}
    if not split or split.get("error"):
        if split.get("error"):
            raise ValueError(f"{folder}: {split['error']}")
        return {k: v for k, v in chronological_splits(days).items() if k != "test"}
    by_name = {d.halpha_path.name: d for d in days}
    return {k: [by_name[n] for n in split.get(k, []) if n in by_name] for k in ("train", "val")}


def _image_hdu(path: Path) -> int:
    from astropy.io import fits

    with fits.open(path) as hdul:
        for i, hdu in enumerate(hdul):
            if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                return i
    raise ValueError(f"{path}: no 2-D image HDU")


def chronological_splits(
    days: Sequence[Day], fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), gap_days: float = GAP_DAYS
) -> dict[str, list[Day]]:
    """Train / val / test in time order, with >= ``gap_days`` dropped between them.

    The cut points are placed at the given fractions of the time span; days within
    ``gap_days`` after a cut are dropped, so the last day of one split and the first
    of the next are at least ``gap_days`` apart.
    """
    from datetime import datetime

    days = sorted(days, key=lambda d: d.time)
    out: dict[str, list[Day]] = {"train": [], "val": [], "test": []}
    times = [datetime.fromisoformat(d.time + ("" if "+" in d.time else "+00:00")) for d in days]
    for day, label in zip(days, dataset_splits.assign(times, fractions, gap_days), strict=True):
        if label is not None:
            out[label].append(day)
    return out


def data_roots(data_dir: str | Path) -> list[Path]:
    """The roots of ``data_dir``: one folder, or several separated by commas."""
    return [Path(p.strip()) for p in str(data_dir).split(",") if p.strip()]


def _root_splits(root: Path) -> dict[str, list[Day]]:
    if (root / "train").is_dir() and (root / "val").is_dir():
        return {"train": list_webp_days(root / "train"), "val": list_webp_days(root / "val")}
    built = _built_splits(root)
    if built is not None:
        return built
    fits_days = list_fits_days(root)
    if not fits_days:
        raise FileNotFoundError(f"{root}: neither train/ and val/ WebP folders, nor *_pair.fits, nor *_halpha.fits pairs")
    splits = chronological_splits(fits_days)
    return {"train": splits["train"], "val": splits["val"]}


def split_days(data_dir: str | Path) -> dict[str, list[Day]]:
    """Train and val days of ``data_dir`` (one root or several, see the module docstring),
    in time order, with the polarity of every day aligned on the newest train day's cycle."""
    out: dict[str, list[Day]] = {"train": [], "val": []}
    for root in data_roots(data_dir):
        for k, days in _root_splits(root).items():
            out[k] += days
    for k in out:
        out[k].sort(key=lambda d: d.time)
    if not out["train"]:
        raise ValueError(f"{data_dir}: no train days")
    cycle = model_cycle(out["train"])
    return {k: [dataclasses.replace(d, sign=polarity_sign(d.time, cycle)) for d in days] for k, days in out.items()}


def model_cycle(days: Sequence[Day]) -> int:
    """The solar cycle a model trained on ``days`` learns: the newest day's (older days of the
    other Hale parity are negated into it, ``Day.sign``)."""
    return cycle_of(max(d.time for d in days))


# ---------------------------------------------------------------------------
# reading (host side, shared units)
# ---------------------------------------------------------------------------
def _read_fits(path: Path) -> np.ndarray:
    from astropy.io import fits

    data = fits.getdata(path, ext=_image_hdu(path)).astype(np.float32)
    if data.shape != (preprocess.MODEL_SIZE, preprocess.MODEL_SIZE):
        raise ValueError(f"{path}: image is {data.shape}, not the model frame")
    return data


def _read_built(path: Path, which: str) -> np.ndarray:
    from training.dataset.pairs import read_pair

    pair = read_pair(path)
    data = pair.halpha if which == "halpha" else pair.gauss
    if data.shape != (preprocess.MODEL_SIZE, preprocess.MODEL_SIZE):
        raise ValueError(f"{path}: image is {data.shape}, not the model frame")
    return data


def read_halpha(day: Day) -> np.ndarray:
    """H-alpha on the dataset's 0..255 scale: uint8 for WebP, float32 for FITS and built pairs."""
    if day.kind == "webp":
        return dataset.read_halpha_u8(day.halpha_path)
    data = _read_built(day.halpha_path, "halpha") if day.kind == "pair" else _read_fits(day.halpha_path)
    return np.nan_to_num(data, nan=0.0)


def read_target_gauss(day: Day) -> np.ndarray:
    """HMI B_LOS in Gauss (float32) in the model cycle's polarity (``day.sign``), 0 G off the model disk."""
    if day.kind == "webp":
        gauss = dataset.read_hmi_gauss(day.hmi_path)
    elif day.kind == "pair":
        gauss = _read_built(day.hmi_path, "gauss")
    else:
        gauss = _read_fits(day.hmi_path)
    gauss = np.where(_disk_mask(), gauss * np.float32(day.sign), np.float32(0.0))
    return np.nan_to_num(gauss, nan=0.0).astype(np.float32)


def read_model_pair(day: Day, scaling: OutputScaling = LINEAR_200) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) in model units, float32 (1024, 1024): the shared unit functions."""
    return preprocess.halpha_to_model(read_halpha(day)), scaling.to_model(read_target_gauss(day))


_MASK: np.ndarray | None = None


def _disk_mask() -> np.ndarray:
    global _MASK
    if _MASK is None:
        _MASK = preprocess.model_disk_mask()
    return _MASK


def files_sha256(days: Sequence[Day]) -> str:
    """Hash of the training files (names and bytes), the ``train_data_sha256`` lineage."""
    h = hashlib.sha256()
    for day in sorted(days, key=lambda d: d.time):
        for path in dict.fromkeys((day.halpha_path, day.hmi_path)):  # a built pair is one file
            h.update(path.name.encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def training_days_metadata(days: Sequence[Day]) -> dict[str, Any]:
    """What a model's ONNX metadata says of the days it was trained on.

    ``train_data_sha256`` (:func:`files_sha256`) and ``solar_cycle``, the cycle whose Hale
    polarity those days show (``service.science.cycles``): the newest day's, days of the
    other parity having been negated into it (:func:`split_days`).
    """
    return {"train_data_sha256": files_sha256(days), "solar_cycle": model_cycle(days)}


# ---------------------------------------------------------------------------
# device-resident stack
# ---------------------------------------------------------------------------
class DeviceDays:
    """All days of a split as tensors on the device, with on-device crops and flips.

    WebP data stay uint8 on the device (0.4 GB per 394 days per image) and are
    converted to model units per batch; FITS data are kept as float16 model units.

    Attributes
    ----------
    halpha, target
        (N, H, W) tensors as stored (see ``decode``).
    times
        ISO times, index-aligned.
    """

    def __init__(self, days: Sequence[Day], device: torch.device | str = "cpu", threads: int = 2,
                 scaling: OutputScaling = LINEAR_200) -> None:
        self.days = list(days)
        self.scaling = scaling
        self.times = [d.time for d in self.days]
        self.device = torch.device(device)
        if not self.days:
            raise ValueError("no days to load")
        self.webp = all(d.kind == "webp" for d in self.days)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            stacks = list(pool.map(self._read_stored, self.days))
        halpha = np.stack([s[0] for s in stacks])
        target = np.stack([s[1] for s in stacks])
        self.halpha = torch.from_numpy(halpha).to(self.device)
        self.target = torch.from_numpy(target).to(self.device)
        self.mask = torch.from_numpy(_disk_mask()).to(self.device)
        self._check_decode()

    def __len__(self) -> int:
        return len(self.days)

    def _read_stored(self, day: Day) -> tuple[np.ndarray, np.ndarray]:
        if self.webp:
            # The HMI code (uint8) itself: Gauss = code * 400/255 - 200 (dataset.read_hmi_gauss);
            # 255 - code is the field negated, exactly.
            code = dataset.read_hmi_u8(day.hmi_path)
            return dataset.read_halpha_u8(day.halpha_path), (code if day.sign == 1 else 255 - code)
        x, y = read_model_pair(day, self.scaling)
        return preprocess.model_to_halpha(x).astype(np.float16), y.astype(np.float16)

    def decode(
        self, halpha: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored values -> model units (float32): torch twins of the preprocess functions."""
        x = halpha.float() / 127.5 - 1.0  # preprocess.halpha_to_model
        if self.webp:
            gauss = target.float() * float(dataset.HMI_GAUSS_PER_STEP) + float(dataset.HMI_GAUSS_OFFSET)
            y = scaling_torch(gauss, self.scaling)
        else:
            y = target.float()
        return x, torch.where(mask, y, torch.zeros_like(y))

    def _check_decode(self) -> None:
        """The torch decode must give what the shared numpy functions give (first day)."""
        x_ref, y_ref = read_model_pair(self.days[0], self.scaling)
        x, y = self.decode(self.halpha[:1], self.target[:1], self.mask)
        dx = float(np.abs(x[0].cpu().numpy() - x_ref).max())
        dy = float(np.abs(y[0].cpu().numpy() - y_ref).max())
        tol = 1e-5 if self.webp else 2e-3  # float16 storage of FITS data; asinh in float32
        if dx > tol or dy > tol:
            raise AssertionError(f"device decode differs from service.science.preprocess: {dx}, {dy}")

    def full(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One whole day in model units, (1, 1, H, W) each."""
        x, y = self.decode(self.halpha[index : index + 1], self.target[index : index + 1], self.mask)
        return x[:, None], y[:, None]

    def batch(
        self,
        index: torch.Tensor,
        crop: int,
        generator: torch.Generator,
        flip_ns: bool = True,
        flip_ew: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random crops (and flips) of the days in ``index``: x, y (B, 1, crop, crop) and
        the crops' position channels (B, 2, crop, crop), see ``training.model.frame_coords``.

        Everything happens on the device, drawn from ``generator``: no host sync.
        A flipped sample has its target negated (see the module docstring), and its
        position mirrored with it: a N-S flipped crop is a crop of the other hemisphere.
        """
        b = index.shape[0]
        n, h, w = self.halpha.shape
        dev = self.device
        oy = torch.randint(0, h - crop + 1, (b,), device=dev, generator=generator)
        ox = torch.randint(0, w - crop + 1, (b,), device=dev, generator=generator)
        ar = torch.arange(crop, device=dev)
        rows = (oy[:, None] + ar)[:, :, None]  # (B, crop, 1)
        cols = (ox[:, None] + ar)[:, None, :]  # (B, 1, crop)
        # Position of every pixel in solar radii from the disk centre (x west, y north).
        cy = ((rows - preprocess.MODEL_CENTER[1]) / preprocess.MODEL_RADIUS_PX).float().expand(b, crop, crop)
        cx = ((cols - preprocess.MODEL_CENTER[0]) / preprocess.MODEL_RADIUS_PX).float().expand(b, crop, crop)
        idx = index.to(dev)[:, None, None]
        x, y = self.decode(self.halpha[idx, rows, cols], self.target[idx, rows, cols], self.mask[rows, cols])
        # Draw both coins always, so the random stream does not depend on the flip settings.
        coins = torch.rand((2, b), device=dev, generator=generator) < 0.5
        sign = torch.ones(b, device=dev)
        if flip_ns:
            x, y, cy = _mirror(coins[0], 1, x, y, cy)
            sign = torch.where(coins[0], -sign, sign)
        if flip_ew:
            x, y, cx = _mirror(coins[1], 2, x, y, cx)
            sign = torch.where(coins[1], -sign, sign)
        y = y * sign[:, None, None]
        coords = torch.stack([cx, cy], dim=1).to(x.dtype)
        return x[:, None].contiguous(), y[:, None].contiguous(), coords.contiguous()


def scaling_torch(gauss: torch.Tensor, scaling: OutputScaling) -> torch.Tensor:
    """Torch twin of ``OutputScaling.to_model`` (checked against it at load by ``DeviceDays``)."""
    b = gauss.clamp(-scaling.max_g, scaling.max_g)
    if scaling.kind == "linear":
        return b / scaling.max_g
    return torch.asinh(b / scaling.scale_g) / scaling.norm


def epoch_batches(
    n: int, batch_size: int, order: str, seed: int, epoch: int
) -> Iterator[torch.Tensor]:
    """Day indices of each batch of one epoch (CPU int64 tensors).

    ``chronological``: consecutive days in time order, the same every epoch (the
    last batch may be short). ``shuffled``: a permutation seeded by (seed, epoch).
    """
    if order == "chronological":
        perm = torch.arange(n)
    elif order == "shuffled":
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g)
    else:
        raise ValueError(f"unknown order {order!r}")
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def _mirror(
    flip: torch.Tensor, dim: int, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror the samples where ``flip`` (B,) is set along ``dim`` of (B, H, W) crops:
    image and target flipped, and the position across that axis flipped and negated."""
    m = flip[:, None, None]
    return torch.where(m, x.flip(dim), x), torch.where(m, y.flip(dim), y), torch.where(m, -pos.flip(dim), pos)
