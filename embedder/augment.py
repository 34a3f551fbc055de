"""Astronomy augmentations for contrastive training, applied to whole batches of flux images (B, C, H, W).

Each returns a new tensor and draws its randomness from the ``generator`` it is given, so training is
reproducible for a seed. They act before the asinh stretch: on calibrated flux (FITS surveys) noise and
reddening are physical; a PNG/JPEG survey's pixels are a display stretch of the flux, so for those colour jitter
takes the place of reddening and the noise has no flux-dependent (Poisson) part.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def rotate_flip_shift(x: torch.Tensor, g: torch.Generator, max_shift: float = 2.0,
                      zoom: tuple[float, float] = (0.9, 1.1)) -> torch.Tensor:
    """Rotate by any angle, flip, shift the centre by up to ``max_shift`` px, and zoom (a safe resized crop)."""
    b, _, h, w = x.shape
    dev = x.device
    theta = _uniform(b, 0, 2 * math.pi, g, dev)
    flip = torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0)
    s = 1 / _uniform(b, *zoom, g, dev)
    tx = _uniform(b, -max_shift, max_shift, g, dev) * 2 / w
    ty = _uniform(b, -max_shift, max_shift, g, dev) * 2 / h
    cos, sin = torch.cos(theta) * s, torch.sin(theta) * s
    mat = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(mat.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def psf_blur(x: torch.Tensor, g: torch.Generator, max_sigma: float = 1.2) -> torch.Tensor:
    """Convolve each image with a Gaussian of random width: worse seeing must not change what a galaxy is."""
    b, c, h, w = x.shape
    sigma = _uniform(b, 0.05, max_sigma, g, x.device)
    r = int(math.ceil(3 * max_sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k1 = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)[:, None]
    out = F.conv2d(x.reshape(1, b * c, h, w), k2, padding=r, groups=b * c)
    return out.reshape(b, c, h, w)


def add_noise(x: torch.Tensor, noise: torch.Tensor, g: torch.Generator, max_extra: float = 1.0,
              poisson: float = 0.05) -> torch.Tensor:
    """Add Gaussian sky noise (up to ``max_extra`` x the survey's ``noise``) plus a Poisson-like term growing with flux.

    Both are independent zero-mean Gaussians, so one draw with the summed variance gives the same distribution
    at half the cost of drawing them apart (random numbers were a third of the augmentation time on a CPU).
    """
    b, c = x.shape[:2]
    sigma = noise.view(-1, c, 1, 1)  # the survey's (bands,), or each image's own (B, bands)
    level = _uniform(b, 0, max_extra, g, x.device).view(b, 1, 1, 1) * sigma
    variance = level**2 + poisson * sigma * x.abs()
    return x + torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype) * torch.sqrt(variance)


def redden(x: torch.Tensor, g: torch.Generator, max_ebv: float = 0.1, brightness: float = 0.3) -> torch.Tensor:
    """Galactic extinction: dim bluer bands more (A_band ∝ 1/λ) plus an overall brightness jitter."""
    b, c = x.shape[:2]
    ebv = _uniform(b, 0, max_ebv, g, x.device).view(b, 1)
    weights = torch.linspace(1.5, 0.5, c, device=x.device).view(1, c)  # blue bands first, as catalogs order them
    mag = ebv * 3.1 * weights + _uniform(b, -brightness, brightness, g, x.device).view(b, 1)
    return x * (10 ** (-0.4 * mag)).view(b, c, 1, 1).to(x.dtype)


def colour_jitter(x: torch.Tensor, g: torch.Generator, gain: float = 0.1, brightness: float = 0.3,
                  gamma: tuple[float, float] = (0.8, 1.25)) -> torch.Tensor:
    """A colour composite's look depends on the stretch that made it: vary its gamma, overall brightness (up to
    ``brightness`` mag) and each channel's gain (up to ``gain``, a fraction), within limits that keep a red
    elliptical red and a blue spiral blue."""
    b, c = x.shape[:2]
    dev = x.device
    power = torch.exp(_uniform(b, math.log(gamma[0]), math.log(gamma[1]), g, dev)).view(b, 1, 1, 1)
    scale = 10 ** (-0.4 * _uniform(b, -brightness, brightness, g, dev)).view(b, 1)
    scale = scale * (1 + _uniform(b * c, -gain, gain, g, dev).view(b, c))
    return x.clamp(min=0) ** power.to(x.dtype) * scale.view(b, c, 1, 1).to(x.dtype)


AUGMENTATIONS = ("flux", "raster")


def augment(x: torch.Tensor, noise: torch.Tensor, g: torch.Generator, kind: str = "flux") -> torch.Tensor:
    """One random view of each galaxy: the composition used for contrastive training, for calibrated flux
    (``flux``) or a PNG/JPEG colour composite (``raster``)."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")
    raster = kind == "raster"
    x = colour_jitter(x, g) if raster else redden(x, g)
    x = rotate_flip_shift(x, g)
    x = psf_blur(x, g)
    return add_noise(x, noise, g, poisson=0.0 if raster else 0.05)
