"""Encode every cutout of a store into an L2-normalised float32 embedding, written in chunks.

Embeddings are averaged over the eight 90-degree rotations and flips of each cutout: a galaxy seen upside
down is the same galaxy, and averaging makes the embedding exactly invariant to those symmetries.

The job streams the packed store through the encoder chunk by chunk into a memory-mapped file, recording
after each chunk how far it got: memory stays bounded whatever the survey size, and a killed job resumes
where it stopped. An optional PCA (Walmsley et al. 2022 search in 10-40 PCA components) reduces the vectors
the index will search; the full ones are kept beside them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from embedder import morphometry
from embedder.encoders import FeatureModel, own_model
from survey.store import Store, copy_rows
from survey.workdir import (
    EMBED_PROGRESS,
    EMBEDDING_IDS,
    EMBEDDING_INFO,
    EMBEDDINGS,
    EMBEDDINGS_FULL,
    PCA_FILE,
    atomic_path,
    write_text,
)

CHUNK_ROWS = 16_384
PCA_FIT_MAX = 50_000


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(v, k, dims=(-2, -1)) for v in (x, torch.flip(x, dims=(-1,))) for k in range(4)]


@torch.no_grad()
def encode_array(model: FeatureModel, images: np.ndarray, bands: list[int] | None = None, batch_size: int = 512,
                 out: np.ndarray | None = None, progress: bool = False, normalise: bool = True) -> np.ndarray:
    """Embed ``images`` (N, C, H, W as packed) batch by batch into ``out`` (or a new array); ``bands`` are the
    store rows the model takes, in its order (default all, as stored); rows L2-normalised unless ``normalise``
    is False."""
    device = model.device
    n = images.shape[0]
    rows = list(range(images.shape[1])) if bands is None else bands
    out = np.empty((n, model.dim), np.float32) if out is None else out
    for start in tqdm(range(0, n, batch_size), desc="embed", unit="batch", disable=not progress):
        x = torch.from_numpy(np.array(images[start : start + batch_size], dtype=np.float32)).to(device)
        x = model.prepare(x, rows)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = torch.stack([model(v).float() for v in dihedral_views(x)]).mean(0)
        out[start : start + len(x)] = (F.normalize(h, dim=1) if normalise else h).cpu().numpy()
    return out


def as_model(encoder: FeatureModel | Path, device: torch.device | str = "cpu") -> FeatureModel:
    """An encoder given as a FeatureModel, or as the path of a galsearch checkpoint (the own encoder)."""
    return encoder if isinstance(encoder, FeatureModel) else own_model(Path(encoder), device)


def _write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=2))


# Encodes the given (start, end) row ranges of the store, yielding (start, embeddings) pieces in row order.
ChunkEncoder = Callable[[list[tuple[int, int]]], Iterator[tuple[int, np.ndarray]]]


def embed(store: Store, encoder: FeatureModel | Path, workdir: Path, device: torch.device, batch_size: int = 512,
          progress: bool = True, pca_dim: int = 0, chunk_rows: int = CHUNK_ROWS,
          on_chunk: Callable[[int, int], None] | None = None, encode_chunks: ChunkEncoder | None = None,
          morphometry_weight: float = 0.0) -> Path:
    """Write ``embeddings.npy``, ``embedding_ids.npy``, ``embeddings.json`` and ``morphometry.npy`` into ``workdir``.

    ``encoder`` is the model to embed with (``embedder.encoders``), or an own checkpoint's path.
    ``on_chunk(start, end)`` is called after each piece is safely on disk. A previous run of the same model
    on the same survey that was interrupted is continued from its last finished piece. ``encode_chunks`` does
    the encoding elsewhere (``embedder.distributed``: a Ray cluster); by default it runs here, on ``device``.
    The classical morphometry of every cutout is measured here, and with ``morphometry_weight`` > 0 appended to
    the search vectors (``embedder.morphometry.combine``).
    """
    model = as_model(encoder, device)
    workdir = Path(workdir)
    n = len(store)
    if n == 0:
        raise ValueError("the survey is empty: nothing to embed")
    bands = model.check_survey(store.bands)
    if not 0 <= morphometry_weight <= 10:
        raise ValueError("the morphometry weight must be between 0 (off) and 10")
    if pca_dim < 0 or pca_dim > model.dim:
        raise ValueError(f"--pca must be between 1 and the embedding dimension {model.dim} (0 = off)")
    sha = model.identity["sha256"]
    tmp, state_path = workdir / (EMBEDDINGS_FULL + ".partial"), workdir / EMBED_PROGRESS
    state = {"model_sha256": sha, "count": n, "dim": model.dim, "done": 0}
    saved = json.loads(state_path.read_text()) if state_path.exists() else {}
    if tmp.exists() and {k: saved.get(k) for k in ("model_sha256", "count", "dim")} == {
        k: state[k] for k in ("model_sha256", "count", "dim")
    }:
        state["done"] = int(saved["done"])
        out = np.load(tmp, mmap_mode="r+")
    else:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, model.dim))

    def here(chunks: list[tuple[int, int]]) -> Iterator[tuple[int, np.ndarray]]:
        for start, end in chunks:
            yield start, encode_array(model, store.images[start:end], bands, batch_size)

    chunks = [(start, min(n, start + chunk_rows)) for start in range(state["done"], n, chunk_rows)]
    with tqdm(total=n - state["done"], desc="embed", unit="gal", disable=not progress) as bar:
        for start, piece in (encode_chunks or here)(chunks):
            if start != state["done"]:
                raise RuntimeError(f"encoded rows arrived out of order: {start}, expected {state['done']}")
            out[start : start + len(piece)] = piece
            out.flush()
            state["done"] = start + len(piece)
            _write_json(state_path, state)
            bar.update(len(piece))
            if on_chunk is not None:
                on_chunk(start, state["done"])
    if state["done"] != n:
        raise RuntimeError(f"encoding stopped at row {state['done']} of {n}; run again to resume")
    del out
    stats = morphometry.measure_store(store, progress, chunk_rows)
    info = {"model_sha256": sha, "encoder": model.identity, "dim": model.dim, "count": n, "normalised": True,
            "tta": "dihedral8", "pca": None}
    for stale in (EMBEDDINGS_FULL, PCA_FILE):
        (workdir / stale).unlink(missing_ok=True)
    if pca_dim:
        tmp.replace(workdir / EMBEDDINGS_FULL)
        info["pca"] = reduce_with_pca(workdir, pca_dim, chunk_rows)
        info["dim"], info["full_dim"] = pca_dim, model.dim
    else:
        tmp.replace(workdir / EMBEDDINGS)
    info["morphometry"] = morphometry.attach(workdir, stats, morphometry_weight, chunk_rows)
    info["dim"] += info["morphometry"]["columns"]
    np.save(workdir / EMBEDDING_IDS, store.ids)
    _write_json(workdir / EMBEDDING_INFO, info)
    state_path.unlink(missing_ok=True)
    return workdir / EMBEDDINGS


def reduce_with_pca(workdir: Path, dim: int, chunk_rows: int = CHUNK_ROWS, seed: int = 0) -> dict:
    """Project ``embeddings_full.npy`` onto its first ``dim`` principal components (re-normalised) into
    ``embeddings.npy``; the fitted PCA goes to ``pca.npz`` so new cutouts can be projected the same way."""
    from sklearn.decomposition import PCA

    full = np.load(workdir / EMBEDDINGS_FULL, mmap_mode="r")
    n = len(full)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_FIT_MAX), replace=False))
    pca = PCA(n_components=min(dim, len(rows)), random_state=seed).fit(full[rows])
    out = np.lib.format.open_memmap(workdir / EMBEDDINGS, mode="w+", dtype=np.float32, shape=(n, pca.n_components_))
    for start in range(0, n, chunk_rows):
        z = pca.transform(full[start : start + chunk_rows])
        out[start : start + len(z)] = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    out.flush()
    np.savez(workdir / PCA_FILE, mean=pca.mean_, components=pca.components_,
             explained_variance_ratio=pca.explained_variance_ratio_)
    return {"components": int(pca.n_components_),
            "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}


def _append_rows(path: Path, rows: np.ndarray) -> None:
    """Rewrite the .npy at ``path`` with ``rows`` added at the end, block by block, replacing it when done."""
    old = np.load(path, mmap_mode="r")
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=old.dtype,
                                        shape=(len(old) + len(rows), *old.shape[1:]))
        copy_rows(out, 0, old, block=CHUNK_ROWS)
        out[len(old) :] = rows
        out.flush()
        del out, old


def embed_appended(store: Store, encoder: FeatureModel | Path, workdir: Path, device: torch.device,
                   start: int) -> int:
    """Encode the store's rows from ``start`` on (a batch just appended) with the model the workdir was embedded
    with, and append them to its embeddings (projected with its PCA, if it has one). Returns the rows added."""
    workdir = Path(workdir)
    info = json.loads((workdir / EMBEDDING_INFO).read_text())
    model = as_model(encoder, device)
    if model.identity["sha256"] != info["model_sha256"]:
        raise ValueError(f"{model.identity['source']} is not the model the embeddings were made with; run "
                         "`galsearch embed`")
    if info["count"] != start:
        raise ValueError(f"the embeddings hold {info['count']} rows, expected {start}; run `galsearch embed`")
    new = encode_array(model, store.images[start:], model.check_survey(store.bands))
    if info.get("pca"):
        _append_rows(workdir / EMBEDDINGS_FULL, new)
        with np.load(workdir / PCA_FILE) as pca:
            z = (new - pca["mean"]) @ pca["components"].T
        new = (z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
    if info.get("morphometry"):  # embedded before morphometry existed: those workdirs search the learned part only
        new = morphometry.extend(workdir, start, store.images[start:], store.noise, new)
    _append_rows(workdir / EMBEDDINGS, new)
    np.save(workdir / EMBEDDING_IDS, store.ids)
    _write_json(workdir / EMBEDDING_INFO, {**info, "count": len(store)})
    return len(new)
