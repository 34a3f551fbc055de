"""Drop the galaxies table (and survey_state, which only said which survey filled it): the server reads ids and
positions from the survey's own files, so start-up no longer writes a row per galaxy. Tags, decisions and
ratings, keyed by galaxy id, are untouched.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_galaxies_row", table_name="galaxies")
    op.drop_table("galaxies")
    op.drop_table("survey_state")


def downgrade() -> None:
    # Empty: the older server finds no fingerprint and loads the catalogue again at its next start.
    op.create_table(
        "survey_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "galaxies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("ra", sa.Float(), nullable=True),
        sa.Column("dec", sa.Float(), nullable=True),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("hdu", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_galaxies_row", "galaxies", ["row"], unique=True)
