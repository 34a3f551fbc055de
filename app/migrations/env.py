"""Alembic environment: migrations run on the connection ``app.db.engine.migrate`` hands over, or on ``sqlalchemy.url``.

SQLite alters tables by copying them (``render_as_batch``), so one migration script serves SQLite and PostgreSQL.
"""

from alembic import context
from sqlalchemy import create_engine

from app.db.models import Base


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # the alembic command line: galsearch's database URL from alembic's -x or the ini
        url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
            "sqlalchemy.url")
        with create_engine(url).begin() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
