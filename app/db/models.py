"""The tables: what researchers write (tags and their assignments, ratings), keyed by galaxy id; the survey's
galaxies themselves stay in its files (``app.galaxy``)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Tag(Base):
    """A free-text label researchers give galaxies, normalised (``#diffuse``)."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TagAssignment(Base):
    """One galaxy's standing for one tag: tagged by hand (positive), or a proposal accepted or rejected.

    One row per (tag, galaxy): deciding again updates it, and ``who``/``updated_at`` say who decided last.
    The galaxy id is not a foreign key so that tags outlive a survey reload.
    """

    __tablename__ = "tag_assignments"
    __table_args__ = (UniqueConstraint("tag_id", "galaxy_id", name="uq_tag_galaxy"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    galaxy_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # positive | accepted | rejected
    source: Mapped[str] = mapped_column(String(16))  # human | proposal
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # the ranking's score when proposed
    who: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class Rating(Base):
    """How interesting one researcher finds one galaxy, 0 (boring or an artifact) to 5 (fascinating).

    One row per (galaxy, researcher): rating again changes it.
    """

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("galaxy_id", "who", name="uq_rating_galaxy_who"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    galaxy_id: Mapped[str] = mapped_column(String(64), index=True)
    who: Mapped[str] = mapped_column(String(64), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)
