"""Schema migrations (Alembic) on SQLite and PostgreSQL: fresh databases, adopted older ones, models in step."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, select

from app.db.engine import BASELINE, init_db, migrate, schema_revision
from app.db.models import Base, Rating


def test_a_fresh_database_migrates_to_the_models_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    assert schema_revision(engine) is None
    head = migrate(engine)
    assert schema_revision(engine) == head and migrate(engine) == head  # a second run changes nothing
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_a_database_made_before_migrations_is_adopted_with_its_data(database_url: str) -> None:
    engine = create_engine(database_url)
    Base.metadata.create_all(engine)  # how earlier versions made their tables
    with engine.begin() as conn:
        conn.execute(insert(Rating), [{"galaxy_id": "g1", "who": "vera", "rating": 4,
                                       "updated_at": datetime.now(timezone.utc)}])
    sessions = init_db(engine)
    head = schema_revision(engine)
    assert head is not None and head >= BASELINE
    with sessions() as s:
        assert [(r.galaxy_id, r.who, r.rating) for r in s.scalars(select(Rating))] == [("g1", "vera", 4)]
    engine.dispose()
