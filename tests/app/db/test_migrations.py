"""Schema migrations (Alembic) on SQLite and PostgreSQL: fresh databases, adopted older ones, models in step."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, inspect, select, text

from app.db.engine import BASELINE, init_db, migrate, schema_revision
from app.db.models import Base, Rating, Tag, TagAssignment


def test_a_fresh_database_migrates_to_the_models_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    assert schema_revision(engine) is None
    head = migrate(engine)
    assert schema_revision(engine) == head and migrate(engine) == head  # a second run changes nothing
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def _schema_0001_with_annotations(engine, stamped: bool) -> None:
    """A database as the 0001 schema made it, with a row per galaxy, a tag, a decision and a rating; without the
    migration stamp where it predates migrations."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, BASELINE)
        now = datetime.now(timezone.utc)
        conn.execute(text("INSERT INTO galaxies (id, row, ra, dec, file, hdu) VALUES ('g1', 0, 1.5, 2.5, 'a.fits', 0)"))
        conn.execute(text("INSERT INTO survey_state (key, value) VALUES ('galaxies_fingerprint', 'abc')"))
        conn.execute(insert(Tag), [{"id": 7, "name": "#ring", "created_at": now}])
        conn.execute(insert(TagAssignment), [
            {"tag_id": 7, "galaxy_id": "g1", "status": "positive", "source": "human", "score": None, "who": "vera",
             "updated_at": now},
            {"tag_id": 7, "galaxy_id": "J152451.22+020518.4", "status": "rejected", "source": "proposal",
             "score": 0.25, "who": "ada", "updated_at": now}])
        conn.execute(insert(Rating), [{"galaxy_id": "g1", "who": "vera", "rating": 4, "updated_at": now}])
        if not stamped:
            conn.execute(text("DROP TABLE alembic_version"))


@pytest.mark.parametrize("stamped", [True, False], ids=["at-0001", "before-migrations"])
def test_an_older_database_upgrades_keeping_every_annotation(database_url: str, stamped: bool) -> None:
    engine = create_engine(database_url)
    _schema_0001_with_annotations(engine, stamped)
    sessions = init_db(engine)
    assert schema_revision(engine) == ScriptDirectory.from_config(_config()).get_current_head()
    with sessions() as s:
        assert [(r.galaxy_id, r.who, r.rating) for r in s.scalars(select(Rating))] == [("g1", "vera", 4)]
        kept = sorted((a.galaxy_id, a.status, a.source, a.score, a.who) for a in s.scalars(select(TagAssignment)))
        assert kept == [("J152451.22+020518.4", "rejected", "proposal", 0.25, "ada"),
                        ("g1", "positive", "human", None, "vera")]
        assert [t.name for t in s.scalars(select(Tag))] == ["#ring"]
    tables = set(inspect(engine).get_table_names())
    assert "galaxies" not in tables and "survey_state" not in tables  # nothing per galaxy any more
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def _config():
    from app.db.engine import _alembic_config

    return _alembic_config()
