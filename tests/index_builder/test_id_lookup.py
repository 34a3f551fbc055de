"""Id -> row by binary search over the ids sorted at index time (no per-galaxy dict in the server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import iau_names

from index_builder import id_lookup
from index_builder.id_lookup import IdLookup
from survey.workdir import SORTED_IDS, SORTED_ROWS


@pytest.fixture()
def ids() -> np.ndarray:
    rng = np.random.default_rng(0)
    names = iau_names(rng.uniform(0, 360, 5000), rng.uniform(-80, 80, 5000))
    return np.array([("SDSS " if i % 7 == 0 else "") + n for i, n in enumerate(names)] + ["7", "10", "a"])


def test_every_id_finds_its_row_and_others_find_none(ids: np.ndarray, tmp_path: Path) -> None:
    id_lookup.write(tmp_path, ids)
    lookup = IdLookup.open(tmp_path, ids)
    assert isinstance(lookup.sorted_ids, np.ndarray) and (tmp_path / SORTED_ROWS).exists()
    assert list(lookup.rows(ids)) == list(range(len(ids)))
    assert lookup.row(str(ids[1234])) == 1234 and str(ids[1234]) in lookup
    for unknown in ("J000000.00+000000.0", "", "70", str(ids[0]) + "x", str(ids[0])[:-1], "SDSS " * 20, "<b>"):
        assert lookup.row(unknown) is None and unknown not in lookup
    assert list(lookup.rows(["10", "nope", "7"])) == [len(ids) - 2, -1, len(ids) - 3]
    assert len(lookup.rows([])) == 0 and 10 not in lookup


def test_an_older_index_gets_its_lookup_written_or_sorted_in_memory(ids: np.ndarray, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert IdLookup.open(tmp_path, ids).row(str(ids[9])) == 9  # none saved: written now
    assert (tmp_path / SORTED_IDS).exists()
    id_lookup.write(tmp_path, ids[:10])  # a stale one, from fewer galaxies, in a workdir that cannot be written

    def read_only(*_args) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(id_lookup, "write", read_only)
    assert IdLookup.open(tmp_path, ids).row(str(ids[4321])) == 4321
