"""SQLAlchemy 2.0 persistence: SQLite file by default, PostgreSQL (or any SQLAlchemy URL) via DATABASE_URL."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.table import Table
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Galaxy(Base):
    __tablename__ = "galaxies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, unique=True, index=True)  # position in the packed store
    ra: Mapped[float | None] = mapped_column(Float, nullable=True)
    dec: Mapped[float | None] = mapped_column(Float, nullable=True)
    file: Mapped[str] = mapped_column(String(1024))
    hdu: Mapped[int] = mapped_column(Integer, default=0)


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


class SurveyState(Base):
    """Key/value facts about what the tables hold, e.g. which survey the galaxies rows came from."""

    __tablename__ = "survey_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # WAL: readers never block the writer
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"  # the schema as it stood before migrations: databases made then are adopted at this revision


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str:
    """Bring the database's schema to the newest revision and return it.

    Researchers' tags and ratings outlive galsearch versions, so the schema changes by Alembic migrations
    (``app/migrations/versions``) rather than by recreating tables. A database whose tables were made before
    migrations existed is adopted as the baseline revision, then upgraded like any other.
    """
    cfg = _alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return head
        cfg.attributes["connection"] = conn
        if current is None and inspect(conn).has_table(Galaxy.__tablename__):
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")
    return head


def init_db(engine: Engine) -> sessionmaker[Session]:
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


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


def upsert(sessions: sessionmaker[Session], model: type[Base], keys: dict, values: dict,
           prepare=None) -> Base:
    """Insert the row of ``model`` identified by ``keys`` or update it with ``values``; return it.

    Two writers racing to insert the same row both succeed: the loser's unique-constraint error is caught and
    its write retried as an update, so nothing is lost and nothing is duplicated. ``prepare(session)`` runs
    first in the same transaction and may return extra keys (e.g. the id of a tag it creates). Each retry
    follows a row another writer committed, and a write inserts at most two (the tag, then its assignment),
    so the third attempt finds both and updates: losing both races cannot surface as an error.
    """
    for attempt in range(3):
        try:
            with sessions.begin() as s:
                full = {**keys, **(prepare(s) if prepare else {})}
                row = s.scalar(select(model).filter_by(**full))
                if row is None:
                    row = model(**full)
                    s.add(row)
                for k, v in values.items():
                    setattr(row, k, v)
                s.flush()
                return row
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
