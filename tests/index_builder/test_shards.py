"""The index split into shards answers as the single index does: in one process, and as Ray Serve deployments
on a local Ray cluster."""

from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from index_builder import shards
from index_builder.index import build, load


@pytest.fixture(scope="module", params=["flat", "ivf"])
def split_workdir(request: pytest.FixtureRequest, workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp(f"shards-{request.param}")
    for name in ("embeddings.npy", "embedding_ids.npy", "embeddings.json"):
        shutil.copy(workdir / name, copy / name)
    build(copy, kind=request.param)  # the demo's 240 galaxies: an IVF of a few lists, nprobe tuned as ever
    shards.split(copy, 2)
    return copy


def _queries(w: Path) -> np.ndarray:
    vectors = np.load(w / "embeddings.npy")
    return vectors[np.random.default_rng(0).choice(len(vectors), 20, replace=False)]


def test_two_shards_in_one_process_answer_as_the_single_index(split_workdir: Path) -> None:
    single = load(split_workdir)
    info = (split_workdir / "shards" / "shards.json").read_text()
    assert '"shards": 2' in info
    sharded = shards.ShardedSearch([shards.IndexShard(str(split_workdir), i) for i in range(2)],
                                   shards.read_info(split_workdir)["bounds"])
    q = _queries(split_workdir)
    want_scores, want_rows = single.search(q, 30)
    got_scores, got_rows = sharded(q, 30)
    assert np.array_equal(got_rows, want_rows) and np.allclose(got_scores, want_scores, atol=1e-6)
    assert set(np.unique(got_rows[:, :15] < len(single.ids) // 2)) == {False, True}  # both shards contribute
    allowed = np.arange(len(single.ids)) % 3 == 1  # a filter: only these rows may answer
    want_scores, want_rows = single.search(q, 30, allowed)
    got_scores, got_rows = sharded(q, 30, allowed)
    assert np.array_equal(got_rows, want_rows) and np.allclose(got_scores, want_scores, atol=1e-6)
    assert allowed[got_rows[got_rows >= 0]].all()


def test_shards_of_the_older_layout_are_refused_with_the_remedy(split_workdir: Path, tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    info = json.loads((split_workdir / "shards" / "shards.json").read_text())
    del info["layout"]
    (tmp_path / "shards" / "shards.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="re-run `galsearch shard`"):
        shards.IndexShard(str(tmp_path), 0)


def test_shards_as_ray_serve_deployments_answer_as_the_single_index(split_workdir: Path) -> None:
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sharded = shards.deploy(split_workdir)
        q = _queries(split_workdir)
        want_scores, want_rows = load(split_workdir).search(q, 30)
        got_scores, got_rows = sharded(q, 30)
        assert np.array_equal(got_rows, want_rows) and np.allclose(got_scores, want_scores, atol=1e-6)
        allowed = np.arange(int(np.load(split_workdir / "embeddings.npy", mmap_mode="r").shape[0])) % 2 == 0
        assert np.array_equal(sharded(q, 30, allowed)[1], load(split_workdir).search(q, 30, allowed)[1])

        async def from_a_notebook() -> tuple[np.ndarray, np.ndarray]:  # a thread with a running event loop
            return sharded(q, 30)

        with ThreadPoolExecutor(1) as notebook:  # a thread of its own: this one may run a loop already
            assert np.array_equal(notebook.submit(asyncio.run, from_a_notebook()).result()[1], want_rows)
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()


def test_merge_keeps_the_best_of_every_shard_and_pads_short_answers() -> None:
    a = (np.array([[0.9, 0.5]], np.float32), np.array([[3, 7]]))
    b = (np.array([[0.8, -np.inf]], np.float32), np.array([[12, -1]]))
    scores, rows = shards.merge([a, b], 4)
    assert rows.tolist() == [[3, 12, 7, -1]] and scores[0, :3].tolist() == pytest.approx([0.9, 0.8, 0.5])


def test_a_server_on_shards_answers_look_alikes_as_one_on_the_index(workdir: Path, catalog: Table,
                                                                    tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import ServerSettings

    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns("*.db", "thumbs"))
    shards.split(copy, 2)
    ids = [str(i) for i in np.load(copy / "embedding_ids.npy")[:: 40]]
    answers = {}
    started = not ray.is_initialized()
    try:
        for how in (None, "local"):
            settings = ServerSettings(workdir=copy, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                      index_shards=how)
            with TestClient(create_app(settings)) as client:
                answers[how] = [client.get(f"/galaxies/{i}/similar", params=params).json()["results"]
                                for i in ids for params in ({"k": 20}, {"k": 20, "where": "mag_r<=18"})]
                remote = client.app.state.resources.index.remote
                assert remote is None if how is None else isinstance(remote, shards.ShardedSearch)
        assert answers["local"] == answers[None] and all(len(a) == 20 for a in answers[None][::2])
        bright = {str(i) for i, m in zip(catalog["id"], catalog["mag_r"]) if m <= 18}
        assert all(a and {hit["id"] for hit in a} <= bright for a in answers[None][1::2])
    finally:
        serve.shutdown()
        if started and ray.is_initialized():
            ray.shutdown()
