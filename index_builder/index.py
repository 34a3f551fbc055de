"""Build, save and load the similarity index.

Small surveys get an exact ``IndexFlatIP`` (inner product = cosine similarity, since embeddings are
L2-normalised). Next to the index sit the row -> galaxy id map and ``manifest.json``; loading checks the manifest
against the embeddings it was built from, so a server never answers from an index of another model or survey.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from embedder.files import EMBEDDING_IDS, EMBEDDING_INFO, EMBEDDINGS

INDEX = "index.faiss"
INDEX_IDS = "index_ids.npy"
MANIFEST = "manifest.json"


class IndexMismatchError(RuntimeError):
    """The index on disk does not belong to these embeddings / this model."""


def exact_knn(vectors: np.ndarray, k: int, metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every row among the others (self excluded): (scores, rows)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1]) if metric == "ip" else faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    k = min(k, len(x) - 1)
    scores, rows = index.search(x, k + 1)
    own = rows == np.arange(len(x))[:, None]
    # Drop self from each row (it is usually, but with ties not always, the first hit).
    keep = np.where(own.any(1, keepdims=True), ~own, np.arange(k + 1)[None] < k)
    return scores[keep].reshape(len(x), k), rows[keep].reshape(len(x), k)


def build(workdir: Path) -> dict:
    """Index ``workdir``'s embeddings; write the index, its id map and manifest; return the manifest."""
    workdir = Path(workdir)
    info_path = workdir / EMBEDDING_INFO
    if not info_path.exists():
        raise FileNotFoundError(f"no embeddings in {workdir} (run `galsearch embed` first)")
    info = json.loads(info_path.read_text())
    emb = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    ids = np.load(workdir / EMBEDDING_IDS)
    if emb.shape[0] != len(ids) or emb.shape[0] != info["count"]:
        raise IndexMismatchError(f"embeddings ({emb.shape[0]}), ids ({len(ids)}) and embeddings.json "
                                 f"({info['count']}) disagree; re-run `galsearch embed`")
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(emb.shape[1])
    for start in range(0, emb.shape[0], 65536):
        index.add(np.ascontiguousarray(emb[start : start + 65536], dtype=np.float32))
    faiss.write_index(index, str(workdir / (INDEX + ".tmp")))
    np.save(workdir / (INDEX_IDS + ".tmp.npy"), ids)
    manifest = {
        "model_sha256": info["model_sha256"],
        "dim": int(emb.shape[1]),
        "metric": "inner_product",
        "count": int(emb.shape[0]),
        "index_type": "IndexFlatIP",
        "recall_at_50": 1.0,  # exact search
        "build_s": round(time.perf_counter() - t0, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # Index and id map first, manifest last: a reader that finds a manifest finds the files it describes.
    (workdir / (INDEX + ".tmp")).replace(workdir / INDEX)
    (workdir / (INDEX_IDS + ".tmp.npy")).replace(workdir / INDEX_IDS)
    (workdir / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=2))
    (workdir / (MANIFEST + ".tmp")).replace(workdir / MANIFEST)
    return manifest


@dataclass
class SearchIndex:
    """A loaded index: galaxy id <-> row lookups and k-NN queries by galaxy."""

    index: faiss.Index
    ids: np.ndarray
    vectors: np.ndarray
    manifest: dict

    def __post_init__(self) -> None:
        self.row_of = {str(g): i for i, g in enumerate(self.ids)}

    def similar(self, galaxy_id: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` galaxies most similar to ``galaxy_id`` (itself excluded), best first, with cosine similarity."""
        row = self.row_of[galaxy_id]
        q = np.ascontiguousarray(self.vectors[row : row + 1], dtype=np.float32)
        scores, rows = self.index.search(q, min(k + 1, len(self.ids)))
        hits = [(str(self.ids[r]), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and r != row]
        return hits[:k]


def load(workdir: Path, expected_model_sha256: str | None = None) -> SearchIndex:
    """Load and validate ``workdir``'s index; raise ``IndexMismatchError`` with the reason when it does not fit."""
    workdir = Path(workdir)
    for name in (MANIFEST, INDEX, INDEX_IDS, EMBEDDINGS, EMBEDDING_INFO):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir / name} is missing (run `galsearch build` first)")
    manifest = json.loads((workdir / MANIFEST).read_text())
    info = json.loads((workdir / EMBEDDING_INFO).read_text())
    index = faiss.read_index(str(workdir / INDEX))
    ids = np.load(workdir / INDEX_IDS)
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    problems = []
    if manifest["model_sha256"] != info["model_sha256"]:
        problems.append("index was built from another model's embeddings")
    if expected_model_sha256 and manifest["model_sha256"] != expected_model_sha256:
        problems.append("index was not built with the current model checkpoint")
    if not (manifest["count"] == index.ntotal == len(ids) == vectors.shape[0] == info["count"]):
        problems.append(f"counts differ: manifest {manifest['count']}, index {index.ntotal}, ids {len(ids)}, "
                        f"embeddings {vectors.shape[0]}")
    if not (manifest["dim"] == index.d == vectors.shape[1]):
        problems.append(f"dimensions differ: manifest {manifest['dim']}, index {index.d}, embeddings {vectors.shape[1]}")
    if problems:
        raise IndexMismatchError(f"index in {workdir} does not match: " + "; ".join(problems) +
                                 " — rebuild it with `galsearch index`")
    return SearchIndex(index, ids.astype(str), vectors, manifest)
