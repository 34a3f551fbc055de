"""Encoding spread over a Ray cluster: ``galsearch embed --ray [ADDRESS]``.

Ray Data turns the store's row ranges into a dataset and ``map_batches`` hands them to a pool of encoder actors, one per
GPU (or per CPU when the cluster has none). Each actor loads the workdir's encoder once (any kind of
``embedder.encoders``, its file shipped through Ray's object store, so workers need no copy of it) and reads its rows
from the packed store's memmap: the store must sit on storage every node mounts (NFS, Lustre, a shared volume). The
results stream back in row order to the driver, which writes them into the same chunked, resumable embedding files as a
local run (``embed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embedder.encode import ChunkEncoder

TASK_ROWS = 4096


class _EncodeRows:
    """A Ray Data actor: the encoder, loaded once, applied to whole row ranges of the store."""

    def __init__(self, model: bytes, identity: dict, store_root: str, batch_size: int) -> None:
        import torch

        from embedder.encode import encode_array
        from embedder.encoders import from_bytes
        from survey.store import Store

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.store, self.batch_size, self.encode = Store(Path(store_root)), batch_size, encode_array
        self.model = from_bytes(model, identity, self.device, self.store.noise)
        self.bands = self.model.check_survey(self.store.bands)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, pieces = [], []
        for start, end in zip(batch["start"], batch["end"]):
            pieces.append(self.encode(self.model, self.store.images[start:end], self.bands, self.batch_size))
            rows.append(np.arange(start, end))
        return {"row": np.concatenate(rows), "embedding": np.concatenate(pieces)}


def ray_encoder(store_root: Path, model: Path, identity: dict, address: str | None, batch_size: int = 512,
                actors: int | None = None) -> ChunkEncoder:
    """A ``ChunkEncoder`` for ``embed`` that runs on the Ray cluster at ``address`` ("auto", "ray://host:10001";
    None starts a local one) with the encoder file ``model`` that ``identity`` describes (``embedder.encoders``:
    an own checkpoint, or a workdir's ``encoder.json``). ``actors`` defaults to the cluster's GPU count, else its
    CPU count."""

    def encode_chunks(chunks: list[tuple[int, int]]) -> Iterator[tuple[int, np.ndarray]]:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            yield from _run(chunks, store_root, model, identity, batch_size, actors)
        finally:
            if started:
                ray.shutdown()

    return encode_chunks


def _run(chunks: list[tuple[int, int]], store_root: Path, model: Path, identity: dict, batch_size: int,
         actors: int | None) -> Iterator[tuple[int, np.ndarray]]:
    import ray
    import ray.data

    if not chunks:
        return
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = actors or gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Tasks of at most TASK_ROWS rows, and at least four per actor, so no actor idles while one works alone.
    rows = max(1, min(TASK_ROWS, -(-sum(e - s for s, e in chunks) // (4 * size))))
    chunks = [(lo, min(end, lo + rows)) for start, end in chunks for lo in range(start, end, rows)]
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the driver writes rows in order, so a killed run resumes
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"start": s, "end": e} for s, e in chunks], override_num_blocks=len(chunks))
    ds = ds.map_batches(_EncodeRows, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size),
                        num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
                        fn_constructor_kwargs={"model": Path(model).read_bytes(), "identity": identity,
                                               "store_root": str(Path(store_root).resolve()),
                                               "batch_size": batch_size})
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        rows = batch["row"]
        if len(rows) and not np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            raise RuntimeError("Ray returned rows out of order")
        if len(rows):
            yield int(rows[0]), batch["embedding"].astype(np.float32)
