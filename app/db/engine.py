"""The database: SQLite file by default, PostgreSQL (or any SQLAlchemy URL) via DATABASE_URL; its engine, its
schema migrations, and the race-safe upsert every repository writes through."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Base, Tag


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


MIGRATIONS = Path(__file__).parent.parent / "migrations"
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
        if current is None and inspect(conn).has_table(Tag.__tablename__):
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")
    return head


def init_db(engine: Engine) -> sessionmaker[Session]:
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


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
