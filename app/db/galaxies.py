"""The galaxies table: the survey's catalogue loaded once per survey, and the lookups the routes make in it."""

from __future__ import annotations

import hashlib

import numpy as np
from astropy.table import Table
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Galaxy, SurveyState


def _fingerprint(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def sync_galaxies(sessions: sessionmaker[Session], catalog: Table, ids: np.ndarray) -> bool:
    """Load the catalog into ``galaxies`` unless the table already holds exactly this survey; True if loaded."""
    fp = _fingerprint(ids)
    with sessions.begin() as s:
        state = s.get(SurveyState, "galaxies_fingerprint")
        if state is not None and state.value == fp and s.scalar(select(func.count(Galaxy.id))) == len(ids):
            return False
        s.execute(delete(Galaxy))
        cols = catalog.colnames

        def column(name: str, default):
            return np.asarray(catalog[name]) if name in cols else np.full(len(ids), default)

        ra, dec, files, hdus = column("ra", np.nan), column("dec", np.nan), column("file", ""), column("hdu", 0)
        rows = [
            {"id": gid, "row": i, "ra": None if not np.isfinite(ra[i]) else float(ra[i]),
             "dec": None if not np.isfinite(dec[i]) else float(dec[i]), "file": str(files[i]), "hdu": int(hdus[i])}
            for i, gid in enumerate(ids)
        ]
        for start in range(0, len(rows), 5000):
            s.execute(insert(Galaxy), rows[start : start + 5000])
        if state is None:
            s.add(SurveyState(key="galaxies_fingerprint", value=fp))
        else:
            state.value = fp
    return True


def galaxy(sessions: sessionmaker[Session], galaxy_id: str) -> Galaxy | None:
    with sessions() as s:
        return s.get(Galaxy, galaxy_id)


def galaxies_by_id(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, Galaxy]:
    """The known galaxies among ``ids`` (unknown ids are simply absent)."""
    with sessions() as s:
        return {g.id: g for g in s.scalars(select(Galaxy).where(Galaxy.id.in_(ids)))}


def galaxies_at(sessions: sessionmaker[Session], rows: list[int]) -> list[Galaxy]:
    """The galaxies at these store rows, in the order given."""
    with sessions() as s:
        by_row = {g.row: g for g in s.scalars(select(Galaxy).where(Galaxy.row.in_(rows)))}
    return [by_row[r] for r in rows if r in by_row]
