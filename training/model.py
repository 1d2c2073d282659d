"""pix2pix networks: a U-Net generator and a 70x70 PatchGAN discriminator.

Follows Isola et al. (2017) as used by Gao et al. (2023): the generator is an
encoder-decoder with a skip connection between encoder level ``i`` and decoder
level ``i``; every level halves the image with a 4x4 stride-2 convolution, so a
generator of depth ``d`` takes any H, W that are multiples of ``2**d`` (256 for
the paper's depth 8). The discriminator sees (H-alpha, magnetogram) pairs and
returns one logit per 70x70 patch.

Written flat (lists of levels, one loop down and one loop up) rather than as
pix2pix's recursive blocks, so that the forward pass reads top to bottom.

Position channels (``coords=True``, an addition to the paper). H-alpha carries no
polarity: the generator can only infer it from Hale's law, and that needs to know the
hemisphere. A 256 or 512 crop often shows no limb, so nothing in it says north or
south. The generator therefore also sees two channels, the model-frame position of
every pixel in solar radii from the disk centre, ``(x - cx) / R`` and ``(y - cy) / R``
(x west, y north; FITS row order). Training passes each crop's own position map;
a full frame (service, evaluation, ONNX export) builds it from the frame's size.

Decoder upsampling (``upsample``). pix2pix doubles the image in each decoder level
with a 4x4 stride-2 transposed convolution (``"transpose"``, the paper). Its kernel
overlaps unevenly, and the products of v1 keep the resulting checkerboard as a faint
lattice of blobs in quiet Sun. ``"resize"`` doubles with nearest-neighbour
upsampling and then a 3x3 convolution (Odena et al. 2016, "Deconvolution and
checkerboard artifacts"), which cannot draw that pattern; same channels, fewer weights.

Working scale (``scale=s``, an addition to the paper). With ``s > 1`` the U-Net works
on s x s block means of the frame and its output is upsampled bilinearly back to the
frame: a whole 1024 disk becomes a 256 image, so one sample shows both hemispheres and
every active region at the cost of one 256 crop. The metrics that decide a version
(r after 8x8 binning, polarity in active regions) live at that scale. Training feeds
block means directly (``native=True``); the service feeds full frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from service.science.preprocess import MODEL_CENTER, MODEL_RADIUS_PX
from training.config import UPSAMPLE


def frame_coords(n: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Position channels (N, 2, H, W) of a full model frame: x and y from the disk centre in radii."""
    ys = (torch.arange(h, device=device, dtype=dtype) - MODEL_CENTER[1]) / MODEL_RADIUS_PX
    xs = (torch.arange(w, device=device, dtype=dtype) - MODEL_CENTER[0]) / MODEL_RADIUS_PX
    grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])
    return grid[None].expand(n, 2, h, w)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # pix2pix's instance norm: no affine parameters, no running statistics.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (batch, instance or none)")


def _up(kind: str, c_in: int, c_out: int, bias: bool) -> list[nn.Module]:
    """One decoder doubling: stride-2 transposed conv (paper) or nearest x2 + 3x3 conv."""
    if kind == "transpose":
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)]


def level_channels(ngf: int, depth: int) -> list[int]:
    """Feature channels at each encoder level: ngf, 2ngf, 4ngf, then 8ngf to the bottom."""
    return [ngf * min(2**i, 8) for i in range(depth)]


class UNetGenerator(nn.Module):
    """U-Net generator mapping H-alpha (model units) to B_LOS (model units, tanh range).

    Parameters
    ----------
    in_channels, out_channels
        Image channels (1 and 1 here).
    ngf
        Channels of the first encoder level (paper: 64).
    depth
        Number of stride-2 levels (paper: 8, so the bottleneck of a 512 crop is 2x2).
    norm
        ``"batch"`` (paper), ``"instance"`` or ``"none"``.
    dropout
        Dropout probability in the decoder levels that pix2pix drops out: the
        8ngf levels between the bottleneck and the 4ngf level. Off in eval mode.
    coords
        Also feed the two position channels (see the module docstring).
    scale
        Working scale: the network sees ``scale`` x ``scale`` block means (module docstring).
    upsample
        ``"transpose"`` (paper) or ``"resize"`` (module docstring).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        ngf: int = 64,
        depth: int = 8,
        norm: str = "batch",
        dropout: float = 0.5,
        coords: bool = False,
        scale: int = 1,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be at least 2")
        if upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {UPSAMPLE}, not {upsample!r}")
        self.depth = depth
        self.coords = coords
        self.scale = scale
        if coords:
            in_channels += 2
        # A convolution followed by batch norm needs no bias (pix2pix does the same).
        bias = norm != "batch"
        ch = level_channels(ngf, depth)

        downs = []
        for i in range(depth):
            c_in = in_channels if i == 0 else ch[i - 1]
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.LeakyReLU(0.2))
            layers.append(nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias or i == 0))
            # No norm on the first level (raw input) nor on the bottleneck (1x1 at 256 crops).
            if 0 < i < depth - 1:
                layers.append(_norm(norm, ch[i]))
            downs.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)

        ups = []
        for i in range(depth):
            # The bottleneck's decoder sees only the bottleneck; every other decoder
            # level sees its skip concatenated with the output of the level below.
            c_in = ch[i] if i == depth - 1 else 2 * ch[i]
            layers = [nn.ReLU()]
            if i == 0:
                layers += [*_up(upsample, c_in, out_channels, True), nn.Tanh()]
            else:
                layers += [*_up(upsample, c_in, ch[i - 1], bias), _norm(norm, ch[i - 1])]
                if dropout > 0 and 4 <= i < depth - 1:
                    layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList(ups)

    def forward(
        self, x: torch.Tensor, coords: torch.Tensor | None = None, native: bool = False
    ) -> torch.Tensor:
        """Map H-alpha ``x`` (N, 1, H, W) to B (N, 1, H, W); ``coords`` default: a full frame's.

        ``native``: ``x`` (and ``coords``) are already at the working scale (training);
        the output then stays at that scale too.
        """
        rescale = self.scale > 1 and not native
        if self.coords and coords is None:
            n, _, hh, ww = x.shape
            coords = frame_coords(n, hh, ww, x.device, x.dtype)
        if rescale:
            x = F.avg_pool2d(x, self.scale)
            coords = F.avg_pool2d(coords, self.scale) if coords is not None else None
        if self.coords:
            x = torch.cat([x, coords.to(x.dtype)], dim=1)
        out = self._unet(x)
        if rescale:
            out = F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        for i in reversed(range(self.depth)):
            h = self.ups[i](h)
            if i > 0:
                h = torch.cat([skips[i - 1], h], dim=1)
        return h


class PatchDiscriminator(nn.Module):
    """PatchGAN: 3 stride-2 levels + 2 stride-1 convolutions = 70x70 receptive field.

    Takes the condition and the (real or generated) magnetogram concatenated on
    channels and returns logits of shape (N, 1, H/8 - 2, W/8 - 2).
    """

    def __init__(self, in_channels: int = 2, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = ndf
        for n in range(1, n_layers + 1):
            c_out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(c, c_out, 4, stride=stride, padding=1, bias=bias),
                _norm(norm, c_out),
                nn.LeakyReLU(0.2),
            ]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, target], dim=1))


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def receptive_field(n_layers: int = 3) -> int:
    """Receptive field of a PatchDiscriminator in pixels (70 for n_layers=3)."""
    # Layers from the output back: last conv k4 s1, then stride-1 conv, then strided ones.
    strides = [2] * n_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = rf * s + (4 - s)
    return rf
