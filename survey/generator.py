"""Deterministic generator of a synthetic multi-band galaxy survey (the demo survey).

Output (``out``): ``cutouts/chunk_NNNN.fits`` multi-extension FITS files, one ``(band, y, x)`` float32 image HDU
per galaxy with a celestial WCS, ``BUNIT`` and band names; and ``catalog.fits``, an astropy-readable binary table
with ``id, ra, dec, file, hdu`` plus ground truth (``morphology, is_anomaly, interesting, tags``) and per-band
magnitudes. A galaxy's pixels depend only on (seed, its index), so any number of worker processes gives
byte-identical cutouts.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from tqdm import tqdm

from survey.artifacts import ARTIFACTS
from survey.morphology import BUILDERS, PIXEL_SCALE, compact_galaxy, star

BANDS = ("g", "r", "z")
STAMP = 64
ZEROPOINT = 22.5  # nanomaggies: m = 22.5 - 2.5 log10(flux)
SKY_SIGMA = np.array([0.025, 0.03, 0.06])  # per-pixel sky noise (nanomaggies) in g, r, z
SKY_COUNTS = 400.0  # background counts per pixel; sets the Poisson gain per band
PSF_WAVELENGTH_SCALE = np.array([1.06, 1.0, 0.93])  # seeing FWHM ∝ λ^-0.2
CHUNK = 250
VERSION = 2  # bumped whenever the same seed would draw different cutouts or catalog columns

# Relative frequencies; the last four are the rare classes an anomaly search should surface.
CLASS_FRACTIONS: dict[str, float] = {
    "elliptical": 0.30,
    "spiral_2arm": 0.15,
    "spiral_multiarm": 0.13,
    "barred_spiral": 0.12,
    "edge_on": 0.15,
    "diffuse": 0.117,
    "ring": 0.01,
    "merger": 0.01,
    "lens": 0.003,
    "artifact": 0.01,
}
INTERESTING = frozenset({"ring", "merger", "lens"})
ANOMALOUS = INTERESTING | {"artifact"}
TAGS = {"diffuse": "#diffuse", "edge_on": "#edge-on", "ring": "#ring", "merger": "#merger", "lens": "#lens",
        "artifact": "#artifact"}
COMMON = [c for c in CLASS_FRACTIONS if c not in ANOMALOUS]


def class_counts(n: int) -> dict[str, int]:
    """Exact per-class counts for ``n`` galaxies (largest remainder), so small surveys still get rare classes."""
    raw = {c: f * n for c, f in CLASS_FRACTIONS.items()}
    counts = {c: int(v) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: raw[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


@dataclass(frozen=True)
class GalaxySpec:
    index: int
    id: int
    ra: float
    dec: float
    morphology: str


def plan(n: int, seed: int) -> list[GalaxySpec]:
    rng = np.random.default_rng([seed, 0xC0FFEE])
    labels = np.array([c for c, k in class_counts(n).items() for _ in range(k)])
    rng.shuffle(labels)
    dec = 2.0 + rng.uniform(-2, 2, n)
    ra = 150.0 + rng.uniform(-2, 2, n) / np.cos(np.radians(dec))
    return [GalaxySpec(i, 100_000 + i, float(ra[i]), float(dec[i]), str(labels[i])) for i in range(n)]


def _psf(rng: np.random.Generator) -> tuple[list[galsim.GSObject], float]:
    fwhm = rng.uniform(0.9, 1.6)
    if rng.random() < 0.5:
        return [galsim.Gaussian(fwhm=fwhm * s) for s in PSF_WAVELENGTH_SCALE], fwhm
    beta = round(float(rng.uniform(2.5, 4.5)), 1)
    return [galsim.Moffat(beta=beta, fwhm=fwhm * s) for s in PSF_WAVELENGTH_SCALE], fwhm


def render(spec: GalaxySpec, seed: int) -> tuple[np.ndarray, dict]:
    """Draw one galaxy: PSF-convolved per band, neighbours, Poisson + sky noise, then any artifact."""
    rng = np.random.default_rng([seed, spec.index])
    host = spec.morphology if spec.morphology != "artifact" else str(rng.choice(COMMON))
    mag_r = rng.uniform(16.0, 18.5)
    flux = 10 ** ((ZEROPOINT - mag_r) / 2.5)
    comps = BUILDERS[host](rng, flux)
    centre = rng.uniform(-0.5, 0.5, 2) * PIXEL_SCALE
    comps = [(obj.shift(*centre), col) for obj, col in comps]
    n_main = len(comps)
    for _ in range(rng.poisson(0.5)):  # neighbouring stars and faint galaxies
        r, a = rng.uniform(11, 30) * PIXEL_SCALE, rng.uniform(0, 2 * np.pi)
        nflux = flux * rng.uniform(0.02, 0.25)
        extra = star(rng, nflux) if rng.random() < 0.5 else compact_galaxy(rng, nflux)
        comps += [(obj.shift(r * np.cos(a), r * np.sin(a)), col) for obj, col in extra]
    psfs, fwhm = _psf(rng)
    gain = np.sqrt(SKY_COUNTS) / SKY_SIGMA
    gs_rng = galsim.BaseDeviate(int(rng.integers(1, 2**31)))
    img = np.empty((len(BANDS), STAMP, STAMP), np.float32)
    band_flux = np.zeros(len(BANDS))
    r50 = 0.0
    for b in range(len(BANDS)):
        # The galaxy first, alone, so that its seeing-convolved half-light radius can be measured; then
        # its neighbours on top.
        main = galsim.Add([o * col[b] for o, col in comps[:n_main]])
        band_flux[b] = main.flux
        stamp = galsim.Convolve(main, psfs[b]).drawImage(nx=STAMP, ny=STAMP, scale=PIXEL_SCALE)
        if BANDS[b] == "r":
            r50 = stamp.calculateHLR()
        for obj, col in comps[n_main:]:
            galsim.Convolve(obj * col[b], psfs[b]).drawImage(image=stamp, add_to_image=True)
        stamp *= gain[b]
        stamp.addNoise(galsim.PoissonNoise(gs_rng, sky_level=SKY_COUNTS))
        img[b] = stamp.array / gain[b]
    artifact = ""
    if spec.morphology == "artifact":
        artifact = str(rng.choice(list(ARTIFACTS)))
        ARTIFACTS[artifact](rng, img, SKY_SIGMA)
    mags = ZEROPOINT - 2.5 * np.log10(np.maximum(band_flux, 1e-6))
    return img, {"host": host, "artifact": artifact, "psf_fwhm": fwhm, "mags": mags, "r50": r50}


def _header(spec: GalaxySpec, meta: dict) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [spec.ra, spec.dec]
    w.wcs.crpix = [(STAMP + 1) / 2, (STAMP + 1) / 2]
    w.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    w.wcs.cunit = ["deg", "deg"]
    hdr = w.to_header()
    hdr["EXTNAME"] = f"G{spec.id}"
    hdr["OBJID"] = spec.id
    hdr["BUNIT"] = "nanomaggy"
    hdr["BANDS"] = (",".join(BANDS), "band of each plane along NAXIS3")
    for i, b in enumerate(BANDS):
        hdr[f"BAND{i + 1}"] = b
    hdr["PIXSCALE"] = (PIXEL_SCALE, "arcsec / pixel")
    hdr["PSFFWHM"] = (round(meta["psf_fwhm"], 3), "r-band PSF FWHM (arcsec)")
    hdr["ZEROPT"] = (ZEROPOINT, "AB mag of 1 nanomaggy")
    return hdr


def _write_chunk(args: tuple[int, list[GalaxySpec], int, str]) -> list[dict]:
    chunk_no, specs, seed, out = args
    rel = f"cutouts/chunk_{chunk_no:04d}.fits"
    primary = fits.PrimaryHDU()
    primary.header["SURVEY"] = "galsearch demo"
    primary.header["SEED"] = seed
    primary.header["BANDS"] = ",".join(BANDS)
    hdus: list[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU] = [primary]
    rows = []
    for spec in specs:
        img, meta = render(spec, seed)
        hdus.append(fits.ImageHDU(img, header=_header(spec, meta)))
        rows.append({
            "id": spec.id, "ra": spec.ra, "dec": spec.dec, "file": rel, "hdu": len(hdus) - 1,
            "morphology": spec.morphology, "is_anomaly": spec.morphology in ANOMALOUS,
            "interesting": spec.morphology in INTERESTING, "tags": TAGS.get(spec.morphology, ""),
            "host_morphology": meta["host"], "artifact_type": meta["artifact"],
            "mag_g": meta["mags"][0], "mag_r": meta["mags"][1], "mag_z": meta["mags"][2],
            "psf_fwhm": meta["psf_fwhm"], "r50": meta["r50"],
        })
    fits.HDUList(hdus).writeto(Path(out) / rel, overwrite=True)
    return rows


def generate(n: int, seed: int, out: Path, workers: int | None = None, progress: bool = True) -> Path:
    """Write an ``n``-galaxy survey to ``out`` and return the catalog path."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out = Path(out)
    (out / "cutouts").mkdir(parents=True, exist_ok=True)
    specs = plan(n, seed)
    tasks = [(i // CHUNK, specs[i : i + CHUNK], seed, str(out)) for i in range(0, n, CHUNK)]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    rows: list[dict] = []
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    with tqdm(total=n, desc="demo survey", unit="gal", disable=not progress) as bar, pool or nullcontext():
        for chunk_rows in (pool.map if pool else map)(_write_chunk, tasks):
            rows.extend(chunk_rows)
            bar.update(len(chunk_rows))
    table = Table(rows=rows, names=list(rows[0]))
    table.meta.update({"SURVEY": "galsearch demo", "GENVER": VERSION, "SEED": seed, "BANDS": ",".join(BANDS),
                       "PIXSCALE": PIXEL_SCALE})
    table["ra"].unit = table["dec"].unit = "deg"
    for b in BANDS:
        table[f"mag_{b}"].unit = "mag"
    table["psf_fwhm"].unit = "arcsec"
    table["r50"].unit = "arcsec"
    table["r50"].description = "r-band half-light radius of the galaxy, seeing included"
    catalog = out / "catalog.fits"
    table.write(catalog, overwrite=True)
    return catalog
