"""A galaxy as the routes pass it around: its id, store row and position, made on demand from the survey's
memory-mapped files (``Resources.galaxy``), never from a database row per galaxy: the database holds only what
researchers write (tags, decisions, ratings), keyed by galaxy id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Galaxy:
    id: str
    row: int  # position in the packed store, the embeddings and the index
    ra: float | None  # degrees; None where the catalogue gives none
    dec: float | None
