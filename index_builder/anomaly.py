"""The build stage of the unsupervised anomaly scores (``discovery.unsupervised``): computed once, after the
index, and saved in the workdir (``anomaly.npz``) for the server.

Their k-NN score needs every galaxy's nearest neighbours: found exactly on a small survey, through the survey's
index on a large one, which keeps the stage linear in the survey size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from discovery.unsupervised import CHUNK, KNN, PCA_DIM, pca_coordinates, unsupervised_scores
from embedder.morphometry import LearnedPart
from index_builder.index import EXACT_MAX, drop_self, exact_knn
from index_builder.index import load as load_index
from survey.workdir import (
    ANOMALY,
    ANOMALY_INFO,
    EMBEDDING_IDS,
    EMBEDDING_INFO,
    EMBEDDINGS,
    atomic_path,
    ids_digest,
    npz_member,
    write_text,
)

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _knn_similarities(vectors: np.ndarray, k: int, search: Search | None) -> np.ndarray:
    """Cosine similarities of every row to its ``k`` nearest others: exact, or through ``search`` (an index's
    batch k-NN, ``(queries, k) -> (similarities, rows)``) when given: a large survey's approximate index keeps
    this linear in the survey size."""
    if search is None:
        return exact_knn(np.asarray(vectors, np.float32), k, "ip")[0]
    out = np.empty((len(vectors), k), np.float32)
    for s in range(0, len(vectors), CHUNK):
        block = np.ascontiguousarray(vectors[s : s + CHUNK], dtype=np.float32)
        sims, rows = search(block, k + 1)
        out[s : s + len(block)] = drop_self(sims, rows, np.arange(s, s + len(block)), k)[0]
    return out


def score(vectors: np.ndarray, seed: int = 0, pca_dim: int = PCA_DIM, knn: int = KNN,
          search: Search | None = None) -> dict:
    """``discovery.unsupervised_scores`` of ``vectors``, their ``knn`` nearest neighbours found exactly or by
    ``search``."""
    return unsupervised_scores(vectors, _knn_similarities(vectors, min(knn, len(vectors) - 1), search), seed,
                               pca_dim)


def learned_part(workdir: Path, vectors: np.ndarray) -> np.ndarray | LearnedPart:
    """The learned embedding within the workdir's search vectors, without any appended morphometry.

    Measured on the demo survey, morphometry in the anomaly scores fills the unsupervised top 100 with diffuse
    galaxies and artifacts, whose sizes and light profiles are extreme but not interesting (0.34 interesting
    against 0.44 without it). On a survey large enough for an approximate index, the neighbours of the k-NN
    score still come from the index, found in the search space, and are scored in the learned one.
    """
    info = json.loads((Path(workdir) / EMBEDDING_INFO).read_text())
    columns = (info.get("morphometry") or {}).get("columns", 0)
    return LearnedPart(vectors, columns) if columns else vectors


def rating_coordinates(search: np.ndarray, learned: np.ndarray | LearnedPart, scores: dict,
                       seed: int = 0) -> np.ndarray:
    """The coordinates the active-learning model works in: a PCA of the search vectors, morphometry and all.

    The unsupervised scores leave the morphometry out (see ``learned_part``), but what a researcher rates as
    interesting is better told apart with it: measured on gz1-sdss with mergers as interesting, a merger's 10
    nearest neighbours hold 0.05 mergers in the learned part's PCA and 0.11 in the search vectors' (0.02 is
    chance), and the active ranking's top 100 after 200 ratings follows. Without morphometry the two are one.
    """
    if not isinstance(learned, LearnedPart):
        return scores["pca"]
    return pca_coordinates(search, seed, scores["pca"].shape[1])[0]


def _rescored(search: Search, learned: LearnedPart) -> Search:
    """An index search for learned-space queries: the query padded with zeros where the morphometry goes finds
    candidates in the search space, which are then scored and ordered by their learned-space similarity."""
    def run(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, rows = search(np.pad(queries, ((0, 0), (0, learned.columns))), k)
        sims = np.einsum("nd,nkd->nk", queries, learned[np.maximum(rows, 0)])
        sims[rows < 0] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")
        return np.take_along_axis(sims, order, 1), np.take_along_axis(rows, order, 1)
    return run


def build(workdir: Path, seed: int = 0, device: str = "auto") -> dict:
    """Score the workdir's embeddings and save them next to the index; returns a summary."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    search_vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    vectors = learned_part(workdir, search_vectors)
    search = None
    if len(vectors) >= EXACT_MAX:
        search = load_index(workdir, device=device).search
        if isinstance(vectors, LearnedPart):
            search = _rescored(search, vectors)
    scores = score(vectors, seed, search=search)
    scores["coords"] = rating_coordinates(search_vectors, vectors, scores, seed)
    with atomic_path(workdir / ANOMALY) as tmp:
        np.savez(tmp, ids=np.load(workdir / EMBEDDING_IDS), **{k: v for k, v in scores.items()
                                                               if isinstance(v, np.ndarray)})
    summary = {"count": len(vectors), "ids_digest": ids_digest(np.load(workdir / EMBEDDING_IDS, mmap_mode="r")),
               "pca_dim": int(scores["pca"].shape[1]),
               "explained_variance": round(scores["explained_variance"], 4),
               "seconds": round(time.perf_counter() - t0, 2)}
    write_text(workdir / ANOMALY_INFO, json.dumps(summary, indent=2))
    return summary


def load(workdir: Path, ids: np.ndarray) -> dict[str, np.ndarray]:
    """What the server needs of the saved scores (``combined``, ``coords``), computed now if the workdir predates
    them; checked against the store's ids by their digest (``survey.workdir.ids_digest``), or whole for scores
    saved before it was recorded."""
    path, info_path = Path(workdir) / ANOMALY, Path(workdir) / ANOMALY_INFO
    if not path.exists():
        build(workdir)
    digest = json.loads(info_path.read_text()).get("ids_digest") if info_path.exists() else None
    with np.load(path) as saved:
        names = saved.files
        same = digest == ids_digest(ids) if digest else np.array_equal(saved["ids"].astype(str),
                                                                        np.asarray(ids).astype(str))
    # Memory-mapped; saved before the rating model had coordinates of its own: the PCA stands in.
    scores = {"combined": npz_member(path, "combined"),
              "coords": npz_member(path, "coords" if "coords" in names else "pca")}
    if not same or len(scores["combined"]) != len(ids):
        raise ValueError(f"{path} belongs to other embeddings; re-run `galsearch index`")
    return scores
