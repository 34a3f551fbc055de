"""Reading and writing tags: who tagged what, decisions on proposals, and exports astronomers can load.

Every write is one upsert per (tag, galaxy) so that deciding twice updates the row instead of duplicating it,
also when two researchers decide at the same moment (the loser of the race retries as an update).
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
from astropy.table import Table
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import Galaxy, Tag, TagAssignment, upsert
from app.measures import Measures

MEMBER = ("positive", "accepted")
DECISIONS = {"accept": "accepted", "reject": "rejected"}
EXPORT_FORMATS = {
    "csv": ("ascii.csv", "text/csv", "csv"),
    "fits": ("fits", "application/fits", "fits"),
    "votable": ("votable", "application/x-votable+xml", "xml"),
}


def _tag(s: Session, name: str, create: bool) -> Tag | None:
    tag = s.scalar(select(Tag).where(Tag.name == name))
    if tag is None and create:
        tag = Tag(name=name)
        s.add(tag)
        s.flush()
    return tag


def assign(sessions: sessionmaker[Session], name: str, galaxy_id: str, status: str, source: str, who: str,
           score: float | None = None) -> TagAssignment:
    """Create or update the (tag, galaxy) row; the tag itself is created on first use."""
    values = {"status": status, "source": source, "who": who, **({"score": score} if score is not None else {})}
    return upsert(sessions, TagAssignment, {"galaxy_id": galaxy_id}, values,
                  prepare=lambda s: {"tag_id": _tag(s, name, create=True).id})


def unassign(sessions: sessionmaker[Session], name: str, galaxy_id: str) -> bool:
    with sessions.begin() as s:
        tag = _tag(s, name, create=False)
        if tag is None:
            return False
        done = s.execute(delete(TagAssignment).where(TagAssignment.tag_id == tag.id,
                                                     TagAssignment.galaxy_id == galaxy_id))
        return done.rowcount > 0


def assignments(sessions: sessionmaker[Session], name: str) -> list[TagAssignment]:
    with sessions() as s:
        tag = _tag(s, name, create=False)
        if tag is None:
            return []
        return list(s.scalars(select(TagAssignment).where(TagAssignment.tag_id == tag.id)
                              .order_by(TagAssignment.updated_at.desc(), TagAssignment.id.desc())))


def tags_of(sessions: sessionmaker[Session], galaxy_id: str) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(Tag.name).join(TagAssignment, TagAssignment.tag_id == Tag.id)
                              .where(TagAssignment.galaxy_id == galaxy_id, TagAssignment.status.in_(MEMBER))
                              .order_by(Tag.name)))


def summary(rows: list[TagAssignment]) -> dict:
    """Counts a tag page shows: members by source, and decisions."""
    status = Counter(r.status for r in rows)
    return {"members": status["positive"] + status["accepted"], "tagged_by_hand": status["positive"],
            "accepted_proposals": status["accepted"], "rejected": status["rejected"],
            "researchers": sorted({r.who for r in rows})}


def all_tags(sessions: sessionmaker[Session]) -> list[dict]:
    with sessions() as s:
        counts = s.execute(select(Tag.name, TagAssignment.status, func.count(TagAssignment.id))
                           .join(TagAssignment, TagAssignment.tag_id == Tag.id, isouter=True)
                           .group_by(Tag.name, TagAssignment.status)).all()
    out: dict[str, Counter] = {}
    for name, status, n in counts:
        out.setdefault(name, Counter())[status] += n
    return [{"tag": name, "members": c["positive"] + c["accepted"], "rejected": c["rejected"]}
            for name, c in sorted(out.items())]


def export(sessions: sessionmaker[Session], name: str, fmt: str,
           measures: Measures | None = None) -> tuple[bytes, str, str] | None:
    """The tag's members as a CSV, FITS or VOTable file: (content, media type, file extension), with each
    member's morphometry where the survey has it; None for a tag no galaxy carries or was decided on."""
    rows = assignments(sessions, name)
    if not rows:
        return None
    members = [r for r in rows if r.status in MEMBER]
    with sessions() as s:
        galaxies = {g.id: g for g in s.scalars(select(Galaxy).where(Galaxy.id.in_([r.galaxy_id for r in members])))}
    table = Table(
        {
            "id": [r.galaxy_id for r in members],
            "ra": np.array([coord(galaxies.get(r.galaxy_id), "ra") for r in members], float),
            "dec": np.array([coord(galaxies.get(r.galaxy_id), "dec") for r in members], float),
            "tag": [name] * len(members),
            "source": ["human" if r.status == "positive" else "accepted proposal" for r in members],
            "score": np.array([np.nan if r.score is None else r.score for r in members], float),
            "who": [r.who for r in members],
            "updated": [r.updated_at.isoformat() for r in members],
        },
        meta={"TAG": name, "ORIGIN": "galsearch"},
    )
    table["ra"].unit = table["dec"].unit = "deg"
    if measures is not None:
        measures.add_columns(table, [g.row if (g := galaxies.get(r.galaxy_id)) else None for r in members])
    _, media, ext = EXPORT_FORMATS[fmt]
    return table_bytes(table, fmt), media, ext


def table_bytes(table: Table, fmt: str) -> bytes:
    """``table`` written as a CSV, FITS or VOTable file, in memory."""
    writer = EXPORT_FORMATS[fmt][0]
    if fmt == "csv":  # astropy's text writers want a text stream
        text = io.StringIO()
        table.write(text, format=writer)
        return text.getvalue().encode()
    buf = io.BytesIO()
    table.write(buf, format=writer)
    return buf.getvalue()


def coord(g: Galaxy | None, attr: str) -> float:
    """A galaxy's RA or Dec for a table column: NaN where unknown."""
    value = getattr(g, attr, None) if g is not None else None
    return np.nan if value is None else value
