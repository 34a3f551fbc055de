"""The workdir's one atomic write and its alignment check (survey.workdir)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from survey.workdir import EMBEDDING_IDS, Workdir, WorkdirMismatchError, atomic_path, write_text


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "embeddings.npy"
    np.save(target, np.arange(3))
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        np.save(tmp, np.arange(5))
        raise RuntimeError("killed half-way")
    assert np.load(target).tolist() == [0, 1, 2] and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".npy" and tmp != target  # numpy picks the format by the extension
        np.save(tmp, np.arange(5))
    assert np.load(target).tolist() == [0, 1, 2, 3, 4] and len(list(tmp_path.iterdir())) == 1


def test_what_a_killed_job_left_is_overwritten_and_shared_writers_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    first = tmp_path / "manifest.partial.json"
    first.write_text("half")  # as a job killed before the rename leaves it
    write_text(target, "{}")
    assert target.read_text() == "{}" and not first.exists()
    with atomic_path(target, shared=True) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("1")
        b.write_text("2")


def test_embeddings_of_other_galaxies_are_refused(tmp_path: Path) -> None:
    w = Workdir.of(tmp_path)
    assert Workdir.of(w) is w and w / EMBEDDING_IDS == tmp_path / EMBEDDING_IDS and w.store == tmp_path / "store"
    np.save(tmp_path / EMBEDDING_IDS, np.array(["a", "b"]))
    w.check_aligned(np.array(["a", "b"]))
    for other in (np.array(["b", "a"]), np.array(["a"]), np.array(["a", "b", "c"])):
        with pytest.raises(WorkdirMismatchError, match="re-run `galsearch embed`"):
            w.check_aligned(other)


def test_npz_members_are_memory_mapped_where_stored_plainly(tmp_path: Path) -> None:
    from survey.workdir import npz_member

    arrays = {"coords": np.arange(60, dtype=np.float32).reshape(20, 3), "ids": np.array(["a", "J1+2", "ccc"]),
              "big_endian": np.arange(5, dtype=">f8"), "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4))}
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "small.npz", **arrays)
    for name in ("plain.npz", "small.npz"):
        for key, want in arrays.items():
            got = npz_member(tmp_path / name, key)
            assert np.array_equal(got, want) and got.dtype == want.dtype, (name, key)
    assert isinstance(npz_member(tmp_path / "plain.npz", "coords").base, np.memmap)
    with pytest.raises(KeyError):
        npz_member(tmp_path / "plain.npz", "absent")
