"""The ratings repository: how interesting each researcher finds each galaxy (0-5), one row per pair."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import upsert
from app.db.models import Rating


def ratings_of(sessions: sessionmaker[Session], who: str) -> dict[str, Rating]:
    """The researcher's ratings by galaxy id."""
    with sessions() as s:
        return {r.galaxy_id: r for r in s.scalars(select(Rating).where(Rating.who == who))}


def rate(sessions: sessionmaker[Session], galaxy_id: str, who: str, rating: int) -> None:
    """Record (or change) the researcher's rating of a galaxy."""
    upsert(sessions, Rating, {"galaxy_id": galaxy_id, "who": who}, {"rating": rating})


def history(sessions: sessionmaker[Session], who: str | None) -> list[Rating]:
    """Every rating in the order given, the researcher's alone unless ``who`` is None (everyone's)."""
    query = select(Rating) if who is None else select(Rating).where(Rating.who == who)
    with sessions() as s:
        return list(s.scalars(query.order_by(Rating.updated_at)))
