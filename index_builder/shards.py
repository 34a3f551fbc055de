"""The index split into shards, each served by a Ray Serve deployment, their top-k merged: for surveys whose
index outgrows one machine (10^9 galaxies), with the same ``search`` the server already calls.

``split`` cuts the workdir's index into ``shards`` FAISS indexes of contiguous rows (``bounds``), each numbering
its rows from 0, so a filter reaches a shard as the bits of its own rows. An IVF index's shards share its trained
coarse quantizer and codes, so a query with the same ``nprobe`` probes the same lists in every shard and the merged
top-k is the single index's (to float ties): what the tests check, filtered or not. ``IndexShard`` is one shard's
searcher, a plain class Ray Serve deploys (``deploy``); ``ShardedSearch`` sends a query to every shard at once and
merges their answers.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index_builder.index import add_in_blocks, filter_params, search, set_nprobe
from survey.workdir import EMBEDDINGS, INDEX, MANIFEST, atomic_path, write_text

SHARDS = "shards"  # folder in the workdir
SHARDS_INFO = "shards.json"
LAYOUT = "rows-from-zero"  # shards.json's "layout": shards made before it kept the survey's row numbers


def _shard_path(workdir: Path, i: int) -> Path:
    return Path(workdir) / SHARDS / f"shard-{i:03d}.faiss"


def split(workdir: Path, shards: int) -> dict:
    """Write the workdir's index as ``shards`` shards of contiguous rows; returns what ``shards.json`` holds."""
    workdir = Path(workdir)
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    manifest = json.loads((workdir / MANIFEST).read_text())
    whole = faiss.read_index(str(workdir / INDEX))
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    bounds = np.linspace(0, len(vectors), shards + 1).astype(np.int64)
    (workdir / SHARDS).mkdir(exist_ok=True)
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        shard = _empty_like(whole)
        add_in_blocks(shard, vectors, int(lo), stop=int(hi))
        with atomic_path(_shard_path(workdir, i)) as tmp:
            faiss.write_index(shard, str(tmp))
    info = {"shards": shards, "bounds": bounds.tolist(), "layout": LAYOUT, "index_type": manifest["index_type"],
            "nprobe": manifest.get("nprobe"), "nlist": manifest.get("nlist"),
            "refine": int(manifest.get("refine", 1)), "count": int(len(vectors))}
    write_text(workdir / SHARDS / SHARDS_INFO, json.dumps(info, indent=2))
    return info


def _empty_like(index: faiss.Index) -> faiss.Index:
    """An empty index of the same kind and training."""
    if isinstance(index, faiss.IndexIVF):
        empty = faiss.clone_index(index)
        empty.reset()  # the trained quantizer (and codebooks) stay; the lists are emptied
        return empty
    return faiss.IndexFlatIP(index.d)


def read_info(workdir: Path) -> dict:
    """``shards.json``; a clear error for shards of another layout."""
    info = json.loads((Path(workdir) / SHARDS / SHARDS_INFO).read_text())
    if info.get("layout") != LAYOUT:
        raise ValueError(f"the shards in {Path(workdir) / SHARDS} were made by an older galsearch; "
                         "re-run `galsearch shard`")
    return info


class IndexShard:
    """One shard's searcher: its FAISS index (memory-mapped), its slice of the embeddings for the exact re-rank of
    compressed codes (``index_builder.index.search``), and its first row, added to every row it answers."""

    def __init__(self, workdir: str, shard: int) -> None:
        info = read_info(Path(workdir))
        self.index = faiss.read_index(str(_shard_path(Path(workdir), shard)), faiss.IO_FLAG_MMAP)
        if info["nprobe"]:
            set_nprobe(self.index, info["nprobe"])
        self.start, stop = info["bounds"][shard], info["bounds"][shard + 1]
        self.vectors = np.load(Path(workdir) / EMBEDDINGS, mmap_mode="r")[self.start : stop]
        self.info = info  # its nprobe and nlist scale a filtered search's probes (filter_params)
        self.refine = info["refine"]

    def search(self, queries: np.ndarray, k: int, bits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k-NN among this shard's rows, or among those whose bit is set in ``bits`` (``np.packbits`` of a
        boolean mask over the shard's rows, little bit order): (similarities, survey rows)."""
        params = None
        if bits is not None:
            params = filter_params(np.unpackbits(bits, count=len(self.vectors), bitorder="little").astype(bool),
                                   self.info)
        scores, rows = search(self.index, self.vectors, queries, k, self.refine, params)
        return scores, np.where(rows >= 0, rows + self.start, -1)


def merge(answers: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of every shard's answer to the same queries: (similarities, rows), rows -1 past the end."""
    scores = np.concatenate([np.where(r >= 0, s, -np.inf) for s, r in answers], axis=1)
    rows = np.concatenate([r for _, r in answers], axis=1)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top, found = np.take_along_axis(scores, best, 1), np.take_along_axis(rows, best, 1)
    return np.where(np.isfinite(top), top, -np.inf).astype(np.float32), np.where(np.isfinite(top), found, -1)


@dataclass
class ShardedSearch:
    """The index's ``search`` over shards: every shard is asked at once and their answers merged."""

    shards: list  # IndexShard objects, or Ray Serve handles to them
    bounds: list[int]  # shard i holds rows bounds[i] to bounds[i + 1]

    def __call__(self, queries: np.ndarray, k: int,
                 allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k-NN of ``queries``, among the rows where ``allowed`` (a boolean mask over the survey) is true when
        given: each shard receives the packed bits of its own rows only."""
        queries = np.ascontiguousarray(queries, np.float32)
        bits = [None if allowed is None else np.packbits(allowed[lo:hi], bitorder="little")
                for lo, hi in zip(self.bounds[:-1], self.bounds[1:])]
        if all(isinstance(s, IndexShard) for s in self.shards):
            return merge([s.search(queries, k, b) for s, b in zip(self.shards, bits)], k)
        pending = [s.search.remote(queries, k, b) for s, b in zip(self.shards, bits)]  # all sent before waiting
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the server's case: a route's worker thread
            return merge([p.result() for p in pending], k)
        # Ray Serve refuses a blocking wait on a thread that runs an event loop (a notebook): wait on another.
        with ThreadPoolExecutor(1) as waiter:
            return merge(waiter.submit(lambda: [p.result() for p in pending]).result(), k)


def deploy(workdir: Path, address: str | None = None) -> ShardedSearch:
    """Run each of the workdir's shards as a Ray Serve deployment (on the cluster at ``address``, or a local one)
    and return the search that fans out to them."""
    import ray
    from ray import serve

    workdir = Path(workdir).resolve()
    info = read_info(workdir)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    handles = []
    for i in range(info["shards"]):
        app = serve.deployment(IndexShard, name=f"shard-{i:03d}", ray_actor_options={"num_cpus": 0}).bind(
            str(workdir), i)
        handles.append(serve.run(app, name=f"galsearch-shard-{i:03d}", route_prefix=None))
    return ShardedSearch(handles, info["bounds"])
