"""The tables galsearch hands out (look-alikes, a tag's members, ratings) and the one response that sends them as
CSV, FITS or VOTable: the files TOPCAT and astropy read, with RA/Dec in degrees and NaN where unknown."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from astropy.table import Table
from fastapi import Query
from fastapi.responses import Response

from app.db.models import Rating, TagAssignment
from app.db.tags import MEMBER, source_of
from app.galaxy import Galaxy
from app.measures import Measures

ExportFormat = Literal["csv", "fits", "votable"]
# A route that answers JSON by default and the same rows as a table file on request.
AnswerFormat = Annotated[Literal["json", "csv", "fits", "votable"], Query(
    description="json (default), or a table file for TOPCAT/astropy")]
EXPORT_FORMATS = {  # format: (astropy writer, media type, file extension)
    "csv": ("ascii.csv", "text/csv", "csv"),
    "fits": ("fits", "application/fits", "fits"),
    "votable": ("votable", "application/x-votable+xml", "xml"),
}


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


def table_response(table: Table, fmt: str, name: str) -> Response:
    """``table`` as a download named ``name`` plus the format's extension."""
    _, media, ext = EXPORT_FORMATS[fmt]
    return download(table_bytes(table, fmt), media, f"{name}.{ext}")


def download(content: bytes, media: str, filename: str) -> Response:
    """``content`` as a file download named ``filename``, unsafe characters replaced (ids may hold quotes and
    spaces)."""
    safe = re.sub(r"[^A-Za-z0-9_.+\-]", "_", filename)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


def _coord(g: Galaxy | None, attr: str) -> float:
    """A galaxy's RA or Dec for a table column: NaN where unknown."""
    value = getattr(g, attr, None) if g is not None else None
    return np.nan if value is None else value


def _with_coords(columns: dict, ids: Sequence[str], galaxies: dict[str, Galaxy], meta: dict) -> Table:
    """A table whose first columns are ``id``, ``ra`` and ``dec`` (degrees), then ``columns``."""
    table = Table({"id": list(ids),
                   "ra": np.array([_coord(galaxies.get(i), "ra") for i in ids], float),
                   "dec": np.array([_coord(galaxies.get(i), "dec") for i in ids], float), **columns},
                  meta={**meta, "ORIGIN": "galsearch"})
    table["ra"].unit = table["dec"].unit = "deg"
    return table


def similar_table(query_id: str, results: list[dict], rows: list[int], measures: Measures | None) -> Table:
    """Look-alikes of ``query_id`` best first (``results`` as the JSON answer has them, ``rows`` their store rows)."""
    table = Table(rows=[(i + 1, r["id"], r["ra"] if r["ra"] is not None else np.nan,
                         r["dec"] if r["dec"] is not None else np.nan, r["similarity"], r["distance"])
                        for i, r in enumerate(results)],
                  names=("rank", "id", "ra", "dec", "similarity", "distance"),
                  dtype=(int, str, float, float, float, float))
    table["ra"].unit = table["dec"].unit = "deg"
    table.meta["query_id"] = query_id
    if measures is not None:
        measures.add_columns(table, rows)
    return table


def tag_table(name: str, rows: list[TagAssignment], galaxies: dict[str, Galaxy],
              measures: Measures | None) -> Table:
    """A tag's members (of its assignments ``rows``), with each member's morphometry where the survey has it."""
    members = [r for r in rows if r.status in MEMBER]
    table = _with_coords({
        "tag": [name] * len(members),
        "source": ["accepted proposal" if (how := source_of(r)) == "proposal" else how for r in members],
        "score": np.array([np.nan if r.score is None else r.score for r in members], float),
        "who": [r.who for r in members],
        "updated": [r.updated_at.isoformat() for r in members],
    }, [r.galaxy_id for r in members], galaxies, {"TAG": name})
    if measures is not None:
        measures.add_columns(table, [g.row if (g := galaxies.get(r.galaxy_id)) else None for r in members])
    return table


def galaxies_table(galaxies: Sequence[Galaxy], columns: dict, measures: Measures | None, meta: dict) -> Table:
    """A ranked list of ``galaxies`` (best first) with their ``columns`` (a candidate's score, an anomaly's expected
    rating, ...) and each one's morphometry where the survey has it."""
    table = _with_coords({"rank": np.arange(1, len(galaxies) + 1), **columns}, [g.id for g in galaxies],
                         {g.id: g for g in galaxies}, meta)
    if measures is not None:
        measures.add_columns(table, [g.row for g in galaxies])
    return table


def ratings_table(rows: list[Rating], galaxies: dict[str, Galaxy]) -> Table:
    return _with_coords({"rating": np.array([r.rating for r in rows], int), "who": [r.who for r in rows],
                         "when": [r.updated_at.isoformat() for r in rows]},
                        [r.galaxy_id for r in rows], galaxies, {})
