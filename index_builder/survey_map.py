"""A 2-D map of the survey: a UMAP of the search vectors (McInnes et al. 2018), made at build time, saved with the
workdir and drawn by the server.

UMAP's neighbour graph and layout grow faster than linearly with the survey, so it is fitted on a random sample of
at most ``sample`` galaxies and every other galaxy is placed by the fitted model's ``transform``, a chunk at a time
behind a progress bar: memory stays at one chunk, and galaxies added later (``galsearch add``) are placed the same
way by the model saved beside the map.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
from tqdm import tqdm

from survey.workdir import EMBEDDINGS, SURVEY_MAP, SURVEY_MAP_INFO, SURVEY_MAP_MODEL, atomic_path

SAMPLE = 20_000  # galaxies UMAP is fitted on; the rest are transformed
CHUNK = 50_000


def _reducer(seed: int):
    from umap import UMAP  # numba compiles on import: only the jobs that draw a map pay for it

    return UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)


def _place(model, vectors: np.ndarray, rows: np.ndarray, out: np.ndarray, progress: bool) -> None:
    """Map ``vectors[rows]`` with the fitted ``model`` into ``out[rows]``, one chunk at a time."""
    with tqdm(total=len(rows), desc="map", unit="gal", disable=not progress or not len(rows)) as bar:
        for s in range(0, len(rows), CHUNK):
            part = rows[s : s + CHUNK]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # UMAP warns that a transform is approximate: it is, by design
                out[part] = model.transform(np.asarray(vectors[part], np.float32))
            bar.update(len(part))


def _save(workdir: Path, coords: np.ndarray, info: dict) -> dict:
    finite = coords[np.isfinite(coords).all(1)]
    info = {**info, "count": len(coords),
            "bounds": [float(v) for v in (*finite.min(0), *finite.max(0))] if len(finite) else [0, 0, 1, 1]}
    with atomic_path(workdir / SURVEY_MAP) as tmp:
        np.save(tmp, coords.astype(np.float32))
    with atomic_path(workdir / SURVEY_MAP_INFO) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return info


def build(workdir: Path, seed: int = 0, sample: int = SAMPLE, progress: bool = True) -> dict:
    """Fit the map on a sample of the workdir's search vectors, place the rest, and save it; returns its info."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    n = len(vectors)
    if n < 3:
        raise ValueError(f"a survey map needs at least 3 galaxies; this survey has {n}")
    rng = np.random.default_rng(seed)
    fitted = np.sort(rng.choice(n, sample, replace=False)) if n > sample else np.arange(n)
    model = _reducer(seed).set_params(n_neighbors=min(15, len(fitted) - 1))
    coords = np.full((n, 2), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's and UMAP's notices about threads and seeds
        coords[fitted] = model.fit_transform(np.asarray(vectors[fitted], np.float32))
    _place(model, vectors, np.setdiff1d(np.arange(n), fitted), coords, progress)
    with atomic_path(workdir / SURVEY_MAP_MODEL) as tmp:
        joblib.dump(model, tmp)
    return _save(workdir, coords, {"method": "umap", "fitted_on": int(len(fitted)), "seed": seed,
                                   "build_s": round(time.perf_counter() - t0, 1)})


def extend(workdir: Path, start: int, progress: bool = True) -> dict:
    """Place galaxies added from row ``start`` on with the saved model (the map of the others does not move)."""
    workdir = Path(workdir)
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    old = np.load(workdir / SURVEY_MAP)[:start]
    coords = np.concatenate([old, np.full((len(vectors) - start, 2), np.nan, np.float32)])
    _place(joblib.load(workdir / SURVEY_MAP_MODEL), vectors, np.arange(start, len(vectors)), coords, progress)
    info = json.loads((workdir / SURVEY_MAP_INFO).read_text())
    return _save(workdir, coords, info)
