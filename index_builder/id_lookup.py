"""Galaxy id -> store row without a per-galaxy Python object: the ids sorted once at index time, searched by
bisection in memory-mapped arrays, so the server opens a survey of any size at once and pages in only the few
entries a look-up touches (a Python dict of 10^7 ids would take seconds to build and gigabytes to hold)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from survey.workdir import SORTED_IDS, SORTED_ROWS, atomic_path


def _sorted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` sorted, and the row of each."""
    ids = np.asarray(ids).astype(str)
    order = np.argsort(ids, kind="stable").astype(np.int64)
    return ids[order], order


def write(workdir: Path, ids: np.ndarray) -> None:
    """Save ``ids`` sorted with the row of each: what ``IdLookup.open`` reads."""
    for name, values in zip((SORTED_IDS, SORTED_ROWS), _sorted(ids)):
        with atomic_path(Path(workdir) / name) as tmp:
            np.save(tmp, values)


class IdLookup:
    """``row(id)`` and ``rows(ids)`` by binary search over the sorted ids."""

    def __init__(self, sorted_ids: np.ndarray, sorted_rows: np.ndarray) -> None:
        self.sorted_ids, self.sorted_rows = sorted_ids, sorted_rows

    @classmethod
    def open(cls, workdir: Path, ids: np.ndarray) -> IdLookup:
        """The workdir's saved lookup, memory-mapped; written first where an older index has none."""
        workdir = Path(workdir)
        paths = (workdir / SORTED_IDS, workdir / SORTED_ROWS)
        if not all(p.exists() for p in paths) or np.load(paths[1], mmap_mode="r").shape[0] != len(ids):
            try:
                write(workdir, ids)
            except OSError:  # a read-only workdir made before the lookup was saved: sort in memory
                return cls(*_sorted(ids))
        return cls(*(np.asarray(np.load(p, mmap_mode="r")) for p in paths))

    def rows(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """The row of each id, -1 where the survey has none."""
        wanted = np.asarray(ids, dtype=str)
        if not len(self.sorted_ids) or not len(wanted):
            return np.full(len(wanted), -1, np.int64)
        at = np.minimum(np.searchsorted(self.sorted_ids, wanted), len(self.sorted_ids) - 1)
        return np.where(self.sorted_ids[at] == wanted, self.sorted_rows[at], -1)

    def row(self, galaxy_id: str) -> int | None:
        """The id's row, or None for an id the survey does not hold."""
        row = int(self.rows([galaxy_id])[0])
        return None if row < 0 else row

    def __contains__(self, galaxy_id: object) -> bool:
        return isinstance(galaxy_id, str) and self.row(galaxy_id) is not None
