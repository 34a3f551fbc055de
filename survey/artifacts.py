"""Instrumental artifacts painted onto finished (noisy) cutouts: unusual, but not what a researcher hunts for."""

from __future__ import annotations

import numpy as np


def satellite_trail(rng: np.random.Generator, img: np.ndarray, sigma: np.ndarray) -> None:
    """A straight bright streak crossing the stamp, in one band only (the satellite moved between exposures)."""
    _, h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    ang = rng.uniform(0, np.pi)
    x0, y0 = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    dist = np.abs((xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang))
    b = int(rng.integers(0, img.shape[0]))
    img[b] += rng.uniform(15, 60) * sigma[b] * np.exp(-(dist**2) / (2 * rng.uniform(0.6, 1.2) ** 2))


def saturated_star(rng: np.random.Generator, img: np.ndarray, sigma: np.ndarray) -> None:
    """A bright star with diffraction spikes and a bleed trail, clipped at the detector's saturation level."""
    _, h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    cx, cy = rng.uniform(8, w - 8), rng.uniform(8, h - 8)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    core = np.exp(-r2 / (2 * 2.0**2)) + 0.05 / (1 + r2 / 9) ** 1.5
    spikes = np.exp(-np.abs(xx - cx) / 0.7) * np.exp(-np.abs(yy - cy) / 18) + np.exp(-np.abs(yy - cy) / 0.7) * np.exp(
        -np.abs(xx - cx) / 18
    )
    bleed = np.exp(-np.abs(xx - cx) / 0.6) * (np.abs(yy - cy) < rng.uniform(6, 20))
    for b in range(img.shape[0]):
        amp = rng.uniform(3000, 10000) * sigma[b]
        img[b] += amp * (core + 0.02 * spikes) + 0.3 * amp * 0.05 * bleed
        np.minimum(img[b], rng.uniform(400, 800) * sigma[b], out=img[b])


def dead_columns(rng: np.random.Generator, img: np.ndarray, sigma: np.ndarray) -> None:
    """One to three adjacent dead (zero) or hot columns in one band."""
    _, _, w = img.shape
    b = int(rng.integers(0, img.shape[0]))
    c = int(rng.integers(4, w - 6))
    n = int(rng.integers(1, 4))
    img[b, :, c : c + n] = 0.0 if rng.random() < 0.6 else rng.uniform(20, 60) * sigma[b]


ARTIFACTS = {"satellite_trail": satellite_trail, "saturated_star": saturated_star, "dead_columns": dead_columns}
