"""Turn calibrated fluxes into network input: the same transform at training and encoding time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOFTENING = 3.0  # asinh is linear below ~3 sigma of sky noise and logarithmic above (Lupton et al. 1999)


def to_model_input(flux: torch.Tensor, noise: torch.Tensor, size: int) -> torch.Tensor:
    """asinh-stretch each band in units of its sky noise, then resample to the encoder's input size.

    Scaling by the survey-wide noise (not per image) keeps surface brightness information: a diffuse galaxy must
    still look faint to the encoder.
    """
    return resample(stretch(flux, noise), size)


def stretch(flux: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``asinh(flux / (3 sigma_band))``, ``noise`` holding sigma for each band of ``flux`` (B, bands, H, W), the
    same for every image (bands,) or each image's own (B, bands)."""
    return torch.asinh(flux / (SOFTENING * noise.view(-1, flux.shape[1], 1, 1)))


def resample(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``x`` at ``size`` px a side (None: as it is): area-averaged down, bilinear up."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear")
