"""``galsearch embed --ray``: the same embeddings as a local run, from a local Ray cluster's actor pool, written
into the same resumable files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedder.encode import embed
from galsearch.cli import main as cli
from survey.store import Store
from survey.workdir import EMBED_PROGRESS

pytest.importorskip("ray")


@pytest.fixture()
def copy(workdir: Path, tmp_path: Path) -> Path:
    w = tmp_path / "w"
    w.mkdir()
    (w / "store").symlink_to(workdir / "store")
    shutil.copy(workdir / "model.pt", w / "model.pt")
    return w


def test_embed_on_ray_matches_a_local_run_and_resumes(workdir: Path, copy: Path) -> None:
    import torch

    from embedder.distributed import ray_encoder

    class Killed(Exception):
        pass

    def kill_after_first_piece(start: int, end: int) -> None:
        raise Killed

    remote = ray_encoder(copy / "store", copy / "model.pt", {"kind": "own"}, None, actors=2)
    with pytest.raises(Killed):
        embed(Store(copy / "store"), copy / "model.pt", copy, torch.device("cpu"), progress=False,
              encode_chunks=remote, on_chunk=kill_after_first_piece, morphometry_weight=0.7)
    assert (copy / EMBED_PROGRESS).exists()
    starts: list[int] = []
    embed(Store(copy / "store"), copy / "model.pt", copy, torch.device("cpu"), progress=False,
          encode_chunks=remote, on_chunk=lambda s, e: starts.append(s), morphometry_weight=0.7)  # as the CLI
    assert starts[0] > 0 and len(starts) >= 4  # resumed after the first piece, spread over several tasks
    assert np.allclose(np.load(copy / "embeddings.npy"), np.load(workdir / "embeddings.npy"), atol=1e-5)
    assert list(np.load(copy / "embedding_ids.npy")) == list(np.load(workdir / "embedding_ids.npy"))


def test_embed_ray_flag(workdir: Path, copy: Path) -> None:
    cli(["embed", "--workdir", str(copy), "--ray", "--ray-actors", "1", "--device", "cpu"])
    assert np.allclose(np.load(copy / "embeddings.npy"), np.load(workdir / "embeddings.npy"), atol=1e-5)
