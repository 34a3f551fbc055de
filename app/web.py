"""What every group of routes shares: the app's open resources and who is asking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Cookie, Path as PathParam
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import Galaxy
from app.measures import Measures
from survey.catalogs import SERVABLE_ID

ID_PATTERN = SERVABLE_ID.pattern  # every id ingest keeps: IAU names ('.', '+', spaces) included
WHO_COOKIE = "galsearch_who"
WHO_PATTERN = r"^[A-Za-z0-9_.\- ]{1,64}$"
GalaxyId = Annotated[str, PathParam(pattern=ID_PATTERN, description="catalog id of the galaxy")]
Who = Annotated[str | None, Cookie(alias=WHO_COOKIE, pattern=WHO_PATTERN,
                                   description="researcher name (set with POST /who)")]


@dataclass
class AppContext:
    sessions: sessionmaker[Session]
    templates: Jinja2Templates
    vectors: np.ndarray  # embeddings, row-aligned with the galaxies table's ``row``
    galaxy_or_404: Callable[[str], Galaxy]
    common: dict
    max_k: int
    measures: Measures | None = None  # classical morphometry per store row, where the embedder measured it

    def galaxies_by_id(self, ids: list[str]) -> dict[str, Galaxy]:
        """The known galaxies among ``ids`` (unknown ids are simply absent)."""
        with self.sessions() as s:
            return {g.id: g for g in s.scalars(select(Galaxy).where(Galaxy.id.in_(ids)))}

    def galaxies_at(self, rows: list[int]) -> list[Galaxy]:
        """The galaxies at these store rows, in the order given."""
        with self.sessions() as s:
            by_row = {g.row: g for g in s.scalars(select(Galaxy).where(Galaxy.row.in_(rows)))}
        return [by_row[r] for r in rows if r in by_row]


def researcher(who: str | None) -> str:
    """The cookie's researcher name, or ``anonymous`` before one is set."""
    return who if who and len(who) <= 64 else "anonymous"

