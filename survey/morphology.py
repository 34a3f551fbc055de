"""Noise-free galaxy models for the demo survey, one builder per morphological class.

Each builder returns a list of ``(GSObject, colour)`` components in arcsec units, centred near the origin;
``colour`` is the (g, r, z) flux multiplier of that component relative to its r-band flux, so a red bulge and a
blue disc of one galaxy differ across bands the way real stellar populations do. Smooth profiles are GalSim
Sérsic/exponential objects; structure GalSim has no profile for (spiral arms, rings, tidal tails, lensed arcs)
is painted on an oversampled grid and wrapped as an ``InterpolatedImage`` so that the PSF, shear and rotation
still go through GalSim.
"""

from __future__ import annotations

from collections.abc import Callable

import galsim
import numpy as np

PIXEL_SCALE = 0.262  # arcsec / pixel, as in the DESI Legacy Surveys
_GRID = 128  # oversampled painting grid (2x the 64 px stamp)
_GRID_SCALE = PIXEL_SCALE / 2

# (g/r, z/r) flux ratios of stellar populations; per-galaxy scatter is added on top.
RED = (0.42, 1.55)
BLUE = (0.78, 1.12)
VERY_BLUE = (1.0, 0.9)

Component = tuple[galsim.GSObject, tuple[float, float, float]]


def colour(rng: np.random.Generator, base: tuple[float, float]) -> tuple[float, float, float]:
    g, z = base
    return (g * rng.lognormal(0, 0.08), 1.0, z * rng.lognormal(0, 0.06))


def _sersic_n(rng: np.random.Generator, lo: float, hi: float) -> float:
    # GalSim rebuilds its lookup tables for every new n; rounding to 0.1 keeps drawing fast.
    return round(float(rng.uniform(lo, hi)), 1)


def _polar_grid() -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(_GRID) - (_GRID - 1) / 2) * _GRID_SCALE
    x, y = np.meshgrid(c, c)
    return np.hypot(x, y), np.arctan2(y, x)


def _painted(arr: np.ndarray, flux: float) -> galsim.GSObject:
    arr = np.clip(arr, 0, None)
    return galsim.InterpolatedImage(galsim.Image(arr / arr.sum(), scale=_GRID_SCALE), flux=flux)


def _orient(obj: galsim.GSObject, rng: np.random.Generator, q: float) -> galsim.GSObject:
    """Incline (axis ratio q) and rotate to a random position angle: galaxies have no preferred 'up'."""
    return obj.shear(q=q, beta=0 * galsim.degrees).rotate(rng.uniform(0, 360) * galsim.degrees)


def _bulge(rng: np.random.Generator, flux: float, hlr: float) -> Component:
    return galsim.DeVaucouleurs(half_light_radius=hlr, flux=flux), colour(rng, RED)


def _knots(rng: np.random.Generator, weight: np.ndarray, n: int, sigma: float) -> np.ndarray:
    """Star-forming clumps, placed where ``weight`` (e.g. the arm pattern) is high."""
    p = weight.ravel() / weight.sum()
    idx = rng.choice(weight.size, size=n, p=p)
    yy, xx = np.mgrid[0:_GRID, 0:_GRID]
    out = np.zeros_like(weight)
    for i in idx:
        cy, cx = divmod(int(i), _GRID)
        out += rng.uniform(0.5, 1.5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return out


def _arm_disc(rng: np.random.Generator, n_arms: int, scale: float, pitch_deg: float, r_start: float,
              phase: float = 0.0, contrast: float = 0.8) -> np.ndarray:
    """Exponential disc modulated by ``n_arms`` logarithmic spiral arms, arms fading in inside ``r_start``."""
    r, th = _polar_grid()
    r = np.maximum(r, 1e-3)
    spiral_phase = np.log(r / r_start) / np.tan(np.radians(pitch_deg))
    arms = ((1 + np.cos(n_arms * (th - spiral_phase - phase))) / 2) ** 3
    fade = 1 / (1 + np.exp(-(r - r_start) / (0.15 * r_start + 1e-3)))
    disc = np.exp(-r / scale)
    return disc * ((1 - contrast * fade) + contrast * fade * arms)


def elliptical(rng: np.random.Generator, flux: float) -> list[Component]:
    hlr = rng.uniform(0.8, 3.0)
    gal = galsim.Sersic(n=_sersic_n(rng, 3.0, 6.0), half_light_radius=hlr, flux=flux)
    return [(_orient(gal, rng, rng.uniform(0.45, 1.0)), colour(rng, RED))]


def _spiral(rng: np.random.Generator, flux: float, n_arms: int, pitch: tuple[float, float]) -> list[Component]:
    scale = rng.uniform(1.6, 3.0)
    arr = _arm_disc(rng, n_arms, scale, rng.uniform(*pitch), r_start=0.6 * scale, phase=rng.uniform(0, 2 * np.pi),
                    contrast=rng.uniform(0.8, 0.95))
    arr += 0.15 * arr.max() * _knots(rng, arr, int(rng.integers(4, 12)), 1.5) / max(n_arms, 1)
    q = rng.uniform(0.5, 1.0)
    bt = rng.uniform(0.05, 0.3)
    bulge, bcol = _bulge(rng, flux * bt, rng.uniform(0.25, 0.6))
    disc = _orient(_painted(arr, flux * (1 - bt)), rng, q)
    return [(bulge.shear(q=min(1.0, q + 0.2), beta=0 * galsim.degrees), bcol), (disc, colour(rng, BLUE))]


def spiral_2arm(rng: np.random.Generator, flux: float) -> list[Component]:
    return _spiral(rng, flux, 2, (12, 25))


def spiral_multiarm(rng: np.random.Generator, flux: float) -> list[Component]:
    return _spiral(rng, flux, int(rng.integers(3, 6)), (15, 30))


def barred_spiral(rng: np.random.Generator, flux: float) -> list[Component]:
    scale = rng.uniform(1.6, 3.0)
    r_bar = rng.uniform(1.2, 1.8) * scale
    bar_angle = rng.uniform(0, np.pi)
    arr = _arm_disc(rng, 2, scale, rng.uniform(10, 20), r_start=r_bar, phase=bar_angle, contrast=0.85)
    r, th = _polar_grid()
    # Bar: an elongated flat (Sérsic n~0.5-like) ellipse along bar_angle, painted so its ends meet the arms.
    u = r * np.cos(th - bar_angle)
    v = r * np.sin(th - bar_angle)
    bar = np.exp(-((u / r_bar) ** 2 + (v / (0.28 * r_bar)) ** 2) ** 1.2)
    arr = arr / arr.max() + rng.uniform(1.2, 1.8) * bar
    q = rng.uniform(0.55, 1.0)
    bt = rng.uniform(0.08, 0.25)
    bulge, bcol = _bulge(rng, flux * bt, rng.uniform(0.25, 0.5))
    disc = _orient(_painted(arr, flux * (1 - bt)), rng, q)
    return [(bulge, bcol), (disc, colour(rng, (0.65, 1.25)))]


def edge_on(rng: np.random.Generator, flux: float) -> list[Component]:
    disc = galsim.InclinedExponential(
        inclination=rng.uniform(80, 90) * galsim.degrees,
        scale_radius=rng.uniform(1.3, 2.8),
        scale_h_over_r=rng.uniform(0.06, 0.14),
        flux=flux * (1 - (bt := rng.uniform(0.0, 0.25))),
    )
    pa = rng.uniform(0, 360) * galsim.degrees
    bulge, bcol = _bulge(rng, flux * bt, rng.uniform(0.3, 0.6))
    return [(disc.rotate(pa), colour(rng, BLUE)), (bulge.shear(q=0.7, beta=0 * galsim.degrees).rotate(pa), bcol)]


def diffuse(rng: np.random.Generator, flux: float) -> list[Component]:
    """Low-surface-brightness galaxy: large, flat profile, a third of a normal galaxy's light spread wide."""
    gal = galsim.Sersic(n=_sersic_n(rng, 0.5, 1.0), half_light_radius=rng.uniform(3.0, 5.5), flux=flux * 0.35)
    return [(_orient(gal, rng, rng.uniform(0.5, 1.0)), colour(rng, BLUE))]


def ring(rng: np.random.Generator, flux: float) -> list[Component]:
    """Collisional/resonance ring: a knotty blue ring around a compact (sometimes off-centre) nucleus."""
    r, th = _polar_grid()
    radius = rng.uniform(2.0, 3.8)
    width = rng.uniform(0.25, 0.5)
    knots = 1 + 0.5 * np.cos(int(rng.integers(2, 7)) * th + rng.uniform(0, 2 * np.pi))
    arr = np.exp(-((r - radius) ** 2) / (2 * width**2)) * knots
    q = rng.uniform(0.6, 1.0)
    nuc, ncol = _bulge(rng, flux * rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.45))
    offset = rng.normal(0, 0.25 * radius, size=2)
    return [(nuc.shift(*offset), ncol), (_orient(_painted(arr, flux), rng, q), colour(rng, VERY_BLUE))]


def _tail(rng: np.random.Generator, start: np.ndarray, direction: float, curl: float, length: float) -> np.ndarray:
    """A curved tidal tail: Gaussian blobs along an arc leaving ``start``, fading with distance."""
    yy, xx = (np.mgrid[0:_GRID, 0:_GRID] - (_GRID - 1) / 2) * _GRID_SCALE
    out = np.zeros((_GRID, _GRID))
    pos = start.astype(float).copy()
    for t in np.linspace(0, 1, 40):
        ang = direction + curl * t
        pos += (length / 40) * np.array([np.cos(ang), np.sin(ang)])
        w = 0.25 + 0.5 * t
        out += (1 - 0.7 * t) * np.exp(-((xx - pos[0]) ** 2 + (yy - pos[1]) ** 2) / (2 * w**2))
    return out


def merger(rng: np.random.Generator, flux: float) -> list[Component]:
    sep = rng.uniform(1.2, 4.0)
    ang = rng.uniform(0, 2 * np.pi)
    d = 0.5 * sep * np.array([np.cos(ang), np.sin(ang)])
    ratio = rng.uniform(0.3, 1.0)
    comps: list[Component] = []
    tails = np.zeros((_GRID, _GRID))
    for sign, f in ((1, 1.0), (-1, ratio)):
        gal = galsim.Sersic(n=_sersic_n(rng, 1.0, 4.0), half_light_radius=rng.uniform(0.5, 1.3), flux=flux * f * 0.5)
        comps.append((_orient(gal, rng, rng.uniform(0.5, 1.0)).shift(*(sign * d)), colour(rng, (0.6, 1.3))))
        tails += f * _tail(rng, sign * d, ang + (0 if sign > 0 else np.pi) + rng.normal(0, 0.5),
                           rng.choice([-1, 1]) * rng.uniform(1.5, 3.0), rng.uniform(3.0, 6.0))
    comps.append((_painted(tails, flux * rng.uniform(0.35, 0.6)), colour(rng, BLUE)))
    return comps


def lens(rng: np.random.Generator, flux: float) -> list[Component]:
    """Strong lens: a massive red elliptical with blue arcs (and sometimes a counter-image) at the Einstein radius."""
    r, th = _polar_grid()
    theta_e = rng.uniform(1.8, 3.2)
    arr = np.zeros_like(r)
    centre = rng.uniform(-np.pi, np.pi)
    half = np.radians(rng.uniform(30, 90))
    for c, h, amp in ((centre, half, 1.0), (centre + np.pi, half * rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.7))):
        dth = np.angle(np.exp(1j * (th - c)))
        arr += amp * np.exp(-((r - theta_e) ** 2) / (2 * 0.15**2)) * np.exp(-(dth / h) ** 4)
    deflector = galsim.Sersic(n=4.0, half_light_radius=rng.uniform(0.6, 1.2), flux=flux)
    return [(_orient(deflector, rng, rng.uniform(0.6, 1.0)), colour(rng, RED)),
            (_painted(arr, flux * rng.uniform(0.35, 0.6)), colour(rng, VERY_BLUE))]


def star(rng: np.random.Generator, flux: float) -> list[Component]:
    return [(galsim.DeltaFunction(flux=flux), colour(rng, (rng.uniform(0.3, 0.9), rng.uniform(0.9, 1.8))))]


def compact_galaxy(rng: np.random.Generator, flux: float) -> list[Component]:
    """A small, faint background galaxy (a neighbour in the frame, not the target)."""
    gal = galsim.Exponential(half_light_radius=rng.uniform(0.3, 0.8), flux=flux)
    return [(_orient(gal, rng, rng.uniform(0.4, 1.0)), colour(rng, (rng.uniform(0.4, 0.8), rng.uniform(1.1, 1.6))))]


BUILDERS: dict[str, Callable[[np.random.Generator, float], list[Component]]] = {
    "elliptical": elliptical,
    "spiral_2arm": spiral_2arm,
    "spiral_multiarm": spiral_multiarm,
    "barred_spiral": barred_spiral,
    "edge_on": edge_on,
    "diffuse": diffuse,
    "ring": ring,
    "merger": merger,
    "lens": lens,
}
