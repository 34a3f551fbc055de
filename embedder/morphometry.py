"""Classical non-parametric morphology of every cutout: asymmetry, concentration, Gini, M20, size, colour.

These are the statistics astronomers have ranked galaxies with for two decades (CAS: Conselice 2003; Gini/M20:
Lotz et al. 2004). A contrastive encoder trained for minutes on a CPU learns what most galaxies look like; what it
learns least well is what makes the rare ones rare, and that is what these measure: a merger is lopsided (high
asymmetry), a ring keeps its light away from its centre (low concentration, high M20). Colours and the colour
gradient tell an old red population from young blue star formation, and a red centre with blue outskirts (a lens
arc, a ring round a bulge) from a blue centre; the encoder learns colour only loosely, because its training views
are reddened on purpose so that dust does not split a class. Measured on the demo survey, appending these to the
learned embedding lifts rare-class recall (the README's Tags section has figures).

Everything is measured on one image per galaxy, the bands summed with inverse-variance weights and divided by the
noise so each pixel reads as a signal-to-noise ratio, inside the segment connected to the cutout's centre (pixels
above ``DETECT_SNR`` after a one-pixel Gaussian smoothing). All statistics are vectorised over a batch; a
galaxy with no significant segment at its centre (a blank or masked cutout) gets NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import ndtri
from tqdm import tqdm

from survey.store import Store
from survey.workdir import EMBEDDINGS, MORPHOMETRY, MORPHOMETRY_FILE, atomic_path

NAMES = ("asymmetry", "concentration", "gini", "m20", "segment_area", "r50", "blue_colour", "red_colour",
         "colour_gradient")
UNITS = ("", "", "", "", "pix2", "pix", "mag", "mag", "mag")
DESCRIPTIONS = (
    "rotational asymmetry, sky noise subtracted (Conselice 2003)",
    "5 log10(r80 / r20) in circular apertures (Conselice 2003)",
    "Gini coefficient of the segment's pixel fluxes (Lotz et al. 2004)",
    "log10 second moment of the brightest 20% of the light over the total (Lotz et al. 2004)",
    "pixels in the segment connected to the centre",
    "radius enclosing half the segment's light",
    "bluest minus middle band, -2.5 log10 of their fluxes in the segment (g-r for g, r, z cutouts)",
    "middle minus reddest band in the segment (r-z for g, r, z cutouts); NaN with fewer than three bands",
    "bluest minus reddest colour inside r50 less the same outside it: negative where the centre is bluer",
)
DETECT_SNR = 1.5  # per-pixel S/N after smoothing that a segment pixel must exceed
SMOOTH_SIGMA = 1.0  # pixels
MIN_PIXELS = 5  # smaller segments are too small to measure
MIN_SNR = 5.0  # a segment whose summed S/N is lower is a noise excursion, not a galaxy
CENTRE_BOX = 4  # the segment must reach within this many pixels of the cutout's centre
SHIFT = 2  # asymmetry is minimised over rotation centres within +-SHIFT/2 pixels of the cutout's centre
BATCH_PIXELS = 2**21  # pixels measured at once (512 cutouts of 64 x 64): bounds memory whatever the cutout size
QUANTILES = 1001  # points of each statistic's stored distribution, for the quantile-to-normal transform
# E|n1 - n2| for two independent unit-variance Gaussian pixels: the asymmetry of pure noise, per pixel.
_NOISE_ABS_DIFF = 2 / np.sqrt(np.pi)


def snr_image(flux: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(N, C, H, W) finite flux -> (N, H, W) inverse-variance-weighted band sum in units of its own noise."""
    w = 1 / np.asarray(noise, np.float64) ** 2
    summed = np.einsum("nchw,c->nhw", flux, w)
    return summed / np.sqrt(w.sum())


def segment(snr: np.ndarray) -> np.ndarray:
    """Boolean (N, H, W) mask of the connected segment at each cutout's centre (empty where there is none)."""
    n, h, w = snr.shape
    smooth = ndimage.gaussian_filter(snr, sigma=(0, SMOOTH_SIGMA, SMOOTH_SIGMA))
    # Smoothing a unit-variance white noise with a Gaussian of width s leaves a standard deviation 1/(2 s sqrt(pi)).
    above = smooth > DETECT_SNR / (2 * SMOOTH_SIGMA * np.sqrt(np.pi))
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 2)  # 8-connected within an image, never across images
    labels, _ = ndimage.label(above, structure=structure)
    cy, cx = h // 2, w // 2
    box = (slice(None), slice(max(0, cy - CENTRE_BOX), cy + CENTRE_BOX + 1),
           slice(max(0, cx - CENTRE_BOX), cx + CENTRE_BOX + 1))
    peak = np.where(above[box], smooth[box], -np.inf).reshape(n, -1).argmax(1)
    central = labels[box].reshape(n, -1)[np.arange(n), peak]
    mask = labels == central[:, None, None]
    return mask & (central > 0)[:, None, None]


def _asymmetry(snr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least rotational asymmetry over centres near the cutout's centre, less the asymmetry of the noise."""
    flux = np.where(mask, np.abs(snr), 0).sum((1, 2))
    best = np.full(len(snr), np.inf)
    rotated, rotated_mask = snr[:, ::-1, ::-1], mask[:, ::-1, ::-1]
    for dy in range(-SHIFT, SHIFT + 1):
        for dx in range(-SHIFT, SHIFT + 1):
            # Rotating about (centre + d/2) is rotating about the centre, then shifting by d.
            r = np.roll(rotated, (dy, dx), axis=(1, 2))
            both = mask | np.roll(rotated_mask, (dy, dx), axis=(1, 2))
            residual = np.where(both, np.abs(snr - r), 0).sum((1, 2)) - _NOISE_ABS_DIFF * both.sum((1, 2))
            best = np.minimum(best, residual)
    return best / flux.clip(1e-12)


def _radii_at(snr: np.ndarray, mask: np.ndarray, r: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """(N, len(fractions)) radii of circular apertures enclosing those fractions of the segment's light."""
    n = len(snr)
    flat_r = np.where(mask, r, np.inf).reshape(n, -1)
    order = np.argsort(flat_r, axis=1, kind="stable")
    radius = np.take_along_axis(flat_r, order, 1)
    light = np.take_along_axis(np.where(mask, snr, 0).reshape(n, -1), order, 1)
    grown = np.cumsum(light, axis=1)
    total = grown[:, -1:]
    out = np.empty((n, len(fractions)))
    for j, f in enumerate(fractions):
        i = np.clip((grown < f * total).sum(1), 0, grown.shape[1] - 1)
        lo = np.clip(i - 1, 0, None)
        g0, g1 = np.where(i > 0, grown[np.arange(n), lo], 0.0), grown[np.arange(n), i]
        r0, r1 = np.where(i > 0, radius[np.arange(n), lo], 0.0), radius[np.arange(n), i]
        t = np.clip((f * total[:, 0] - g0) / np.where(g1 > g0, g1 - g0, 1.0), 0, 1)
        out[:, j] = r0 + t * (r1 - r0)
    return out


def _gini(snr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = len(snr)
    count = mask.reshape(n, -1).sum(1)
    values = np.sort(np.where(mask, np.abs(snr), -1.0).reshape(n, -1), axis=1)  # outside the segment sorts first
    rank = np.arange(1, values.shape[1] + 1)[None, :] - (values.shape[1] - count)[:, None]  # 1..count inside
    inside = values >= 0
    weighted = np.where(inside, (2 * rank - count[:, None] - 1) * values, 0).sum(1)
    total = np.where(inside, values, 0).sum(1)
    return weighted / (total * (count - 1)).clip(1e-12)


def _m20(snr: np.ndarray, mask: np.ndarray, r2: np.ndarray) -> np.ndarray:
    n = len(snr)
    light = np.where(mask, snr.clip(0, None), 0).reshape(n, -1)
    moment = light * r2.reshape(n, -1)
    order = np.argsort(-light, axis=1, kind="stable")
    bright = np.take_along_axis(light, order, 1)
    within = (np.cumsum(bright, axis=1) - bright) < 0.2 * light.sum(1, keepdims=True)
    top = np.where(within, np.take_along_axis(moment, order, 1), 0).sum(1)
    return np.log10(top.clip(1e-12) / moment.sum(1).clip(1e-12))


def _magnitude_difference(bright: np.ndarray, faint: np.ndarray) -> np.ndarray:
    """-2.5 log10(bright / faint), NaN unless both fluxes are positive (a colour of noise means nothing)."""
    ok = (bright > 0) & (faint > 0)
    return np.where(ok, -2.5 * np.log10(np.where(ok, bright, 1) / np.where(ok, faint, 1)), np.nan)


def _colours(images: np.ndarray, mask: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, ...]:
    """Blue and red colour of the segment and its colour gradient; bands are ordered blue to red, as catalogs
    order them. With one band every colour is NaN, with two the red colour is."""
    n, c = images.shape[:2]
    if c < 2:
        return (np.full(n, np.nan),) * 3
    flux = np.einsum("nchw,nhw->nc", images, mask.astype(images.dtype))
    core = np.einsum("nchw,nhw->nc", images, inner.astype(images.dtype))
    mid = c // 2
    blue = _magnitude_difference(flux[:, 0], flux[:, mid])
    red = _magnitude_difference(flux[:, mid], flux[:, -1]) if c > 2 else np.full(n, np.nan)
    gradient = (_magnitude_difference(core[:, 0], core[:, -1])
                - _magnitude_difference(flux[:, 0] - core[:, 0], flux[:, -1] - core[:, -1]))
    return blue, red, gradient


def measure(images: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(N, C, H, W) flux cutouts and per-band sky noise -> (N, len(NAMES)) float32 statistics, NaN where a
    cutout has no segment at its centre."""
    out = np.full((len(images), len(NAMES)), np.nan, np.float32)
    batch = max(1, BATCH_PIXELS // int(np.prod(images.shape[-2:])))
    with np.errstate(invalid="ignore", divide="ignore"):  # empty segments give NaN, set below on purpose
        for s in range(0, len(images), batch):
            out[s : s + batch] = _measure_batch(images[s : s + batch], noise)
    return out


def _measure_batch(images: np.ndarray, noise: np.ndarray) -> np.ndarray:
    flux = np.nan_to_num(np.asarray(images, np.float64))  # once: the S/N image and the colours both read it
    snr = snr_image(flux, noise)
    mask = segment(snr)
    n, h, w = snr.shape
    area = mask.sum((1, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    light = np.where(mask, snr.clip(0, None), 0)
    total = light.sum((1, 2)).clip(1e-12)
    # The flux-weighted centroid minimises the total second moment, as M20 requires; apertures share it.
    yc = (light * yy).sum((1, 2)) / total
    xc = (light * xx).sum((1, 2)) / total
    r2 = (yy[None] - yc[:, None, None]) ** 2 + (xx[None] - xc[:, None, None]) ** 2
    r20, r50, r80 = _radii_at(snr, mask, np.sqrt(r2), (0.2, 0.5, 0.8)).T
    inner = mask & (r2 <= (r50**2)[:, None, None])
    stats = np.stack([
        _asymmetry(snr, mask),
        5 * np.log10(r80.clip(1e-3) / r20.clip(1e-3)),
        _gini(snr, mask),
        _m20(snr, mask, r2),
        area,
        r50,
        *_colours(flux, mask, inner),
    ], axis=1)
    snr_total = np.where(mask, snr, 0).sum((1, 2)) / np.sqrt(area.clip(1))
    stats[(area < MIN_PIXELS) | (snr_total < MIN_SNR)] = np.nan
    return stats.astype(np.float32)


def fit_quantiles(stats: np.ndarray) -> np.ndarray:
    """(QUANTILES, n_stats) quantiles of each statistic over the survey, NaNs ignored: the survey's own scale."""
    finite = np.where(np.isfinite(stats), stats, np.nan)
    measured = np.isfinite(finite).any(0)
    if not measured[0]:
        raise ValueError("no cutout has a segment at its centre: morphometry cannot be measured on this survey")
    # A statistic no cutout has (colours of a one-band survey) keeps NaN quantiles: to_normal maps it to 0.
    out = np.full((QUANTILES, stats.shape[1]), np.nan)
    out[:, measured] = np.nanquantile(finite[:, measured], np.linspace(0, 1, QUANTILES), axis=0)
    return out


def to_normal(stats: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map each statistic through the survey's distribution onto a standard normal (a galaxy at the median
    gets 0, one beyond every galaxy seen gets about +-3); NaN (not measurable) becomes 0, the median.

    Ranks rather than raw values: the statistics have heavy tails and different units, and a rank transform makes
    each weigh the same whatever the survey's depth or pixel scale.
    """
    levels = np.linspace(0, 1, len(quantiles))
    edge = 0.5 / len(quantiles)
    out = np.zeros(stats.shape, np.float32)
    for j in range(stats.shape[1]):
        # Interpolating both ways and averaging keeps tied quantiles (a statistic with many equal values) centred.
        q = quantiles[:, j]
        u = 0.5 * (np.interp(stats[:, j], q, levels) + np.interp(-stats[:, j], -q[::-1], levels[::-1]))
        z = ndtri(np.clip(u, edge, 1 - edge))
        out[:, j] = np.where(np.isfinite(z), z, 0)  # NaN in (unmeasured) or in the quantiles (never measured)
    return out


def combine(vectors: np.ndarray, normal: np.ndarray, weight: float) -> np.ndarray:
    """Append the normalised statistics to unit-length embedding rows and re-normalise.

    The block is scaled to an expected squared length of ``weight**2`` against the embedding's 1, so ``weight``
    is the statistics' share of a distance, whatever their number. The learned part is recovered exactly by
    dropping the last columns and re-normalising.
    """
    block = (weight / np.sqrt(normal.shape[1])) * normal
    out = np.concatenate([np.asarray(vectors, np.float32), block.astype(np.float32)], axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


class LearnedPart:
    """Read-only view of search vectors without their trailing ``columns`` of morphometry, rows re-normalised:
    the learned embedding alone, row-sliced lazily so a memory-mapped survey is never loaded whole."""

    def __init__(self, vectors: np.ndarray, columns: int) -> None:
        self.vectors, self.columns = vectors, columns
        self.shape = (vectors.shape[0], vectors.shape[1] - columns)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        part = np.asarray(self.vectors[rows], np.float32)[..., : self.shape[1]]
        return part / np.linalg.norm(part, axis=-1, keepdims=True).clip(1e-12)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self[:].astype(dtype or np.float32)


def measure_store(store: Store, progress: bool = True, chunk_rows: int = 16_384) -> np.ndarray:
    """The statistics of every cutout of a packed store, read chunk by chunk from its memory map."""
    out = np.empty((len(store), len(NAMES)), np.float32)
    with tqdm(total=len(store), desc="morphometry", unit="gal", disable=not progress) as bar:
        for s in range(0, len(store), chunk_rows):
            out[s : s + chunk_rows] = measure(store.images[s : s + chunk_rows], store.noise)
            bar.update(min(chunk_rows, len(store) - s))
    return out


def attach(workdir: Path, stats: np.ndarray, weight: float, chunk_rows: int = 16_384) -> dict:
    """Save the statistics (``morphometry.npy``) and their survey quantiles (``morphometry.npz``), and, if
    ``weight`` > 0, rewrite the workdir's search vectors with them appended (see ``combine``)."""
    workdir = Path(workdir)
    quantiles = fit_quantiles(stats)
    np.save(workdir / MORPHOMETRY, stats)
    np.savez(workdir / MORPHOMETRY_FILE, quantiles=quantiles, names=np.array(NAMES), units=np.array(UNITS),
             descriptions=np.array(DESCRIPTIONS), weight=weight)
    if weight > 0:
        learned = np.load(workdir / EMBEDDINGS, mmap_mode="r")
        with atomic_path(workdir / EMBEDDINGS) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                            shape=(len(learned), learned.shape[1] + len(NAMES)))
            for s in range(0, len(learned), chunk_rows):
                out[s : s + chunk_rows] = combine(learned[s : s + chunk_rows],
                                                  to_normal(stats[s : s + chunk_rows], quantiles), weight)
            out.flush()
            del out, learned
    return {"statistics": list(NAMES), "weight": weight, "columns": len(NAMES) if weight > 0 else 0}


def extend(workdir: Path, start: int, images: np.ndarray, noise: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """For cutouts added to a built workdir as rows ``start`` on: write their statistics there in
    ``morphometry.npy`` and return their search vectors, ``learned`` combined with the statistics on the
    survey's original scale and weight. (Rows past ``start`` left by an interrupted addition are replaced.)"""
    workdir = Path(workdir)
    with np.load(workdir / MORPHOMETRY_FILE) as saved:
        quantiles, weight, names = saved["quantiles"], float(saved["weight"]), tuple(saved["names"].tolist())
    if names != NAMES:
        raise ValueError(f"{workdir} was embedded with the statistics {', '.join(names)}; this version measures "
                         f"{', '.join(NAMES)}: re-run `galsearch embed` before adding cutouts")
    stats = measure(images, noise)
    old = np.load(workdir / MORPHOMETRY)[:start]
    np.save(workdir / MORPHOMETRY, np.concatenate([old, stats]))
    return combine(learned, to_normal(stats, quantiles), weight) if weight > 0 else learned
