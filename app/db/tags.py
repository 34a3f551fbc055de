"""The tags repository: who tagged what, and decisions on proposals.

Every write is one upsert per (tag, galaxy) so that deciding twice updates the row instead of duplicating it,
also when two researchers decide at the same moment (the loser of the race retries as an update).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import upsert
from app.db.models import Tag, TagAssignment

MEMBER = ("positive", "accepted")
DECISIONS = {"accept": "accepted", "reject": "rejected"}


def source_of(row: TagAssignment) -> str:
    """How a galaxy came by its tag or decision: human (by hand), map (a box on the survey map), or proposal."""
    return "map" if row.source == "map" else "human" if row.status == "positive" else "proposal"


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
