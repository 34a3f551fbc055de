"""Everything the server opens once at start-up, in one typed object (``app.state.resources``).

The index, the store and the database are opened here, checked against each other, and shared by every route;
what the hottest routes need (a galaxy's row and coordinates, a gallery page, its look-alikes) is answered from
memory, never from the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from fastapi import HTTPException
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import init_db, make_engine
from app.explain import distance_shares
from app.filters import catalog_column, catalog_mask, column_order
from app.galaxy import Galaxy
from app.measures import Measures
from app.settings import ServerSettings
from app.sky import SkyIndex
from app.survey_map import SurveyMap
from app.thumbs import ThumbnailCache
from app.views import Views
from discovery.active_learning import AnomalyRanker
from discovery.tag_expansion import like_these
from index_builder.anomaly import load as load_anomaly_scores
from index_builder.index import SearchIndex
from index_builder.index import load as load_index
from index_builder.shards import deploy as deploy_shards
from index_builder.sky_cells import SkyCells
from survey.checksum import file_sha256
from survey.store import Store
from survey.workdir import EMBEDDING_INFO, Workdir

VIEWS_KEPT = 16
ID_BLOCK = 1 << 20  # ids searched for a substring this many at a time


def _appended_statistics(workdir: Workdir) -> tuple[str, ...]:
    """The morphometry statistics the embedding job appended to the search vectors (embeddings.json)."""
    info = json.loads((workdir.root / EMBEDDING_INFO).read_text())
    appended = info.get("morphometry") or {}
    return tuple(appended.get("statistics", ())) if appended.get("columns") else ()


def _caption(value: object) -> str:
    """A catalog cell as a thumbnail's caption: numbers to 4 significant figures, blanks empty."""
    if value is np.ma.masked:
        return ""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}" if np.isfinite(value) else ""
    return str(value)


@dataclass
class Resources:
    settings: ServerSettings
    store: Store
    index: SearchIndex
    ranker: AnomalyRanker  # the unsupervised scores and each researcher's fitted anomaly ranking
    measures: Measures | None  # classical morphometry per store row, where the embedder measured it
    sessions: sessionmaker[Session]
    thumbs: ThumbnailCache
    sky: SkyIndex
    views: Views
    ra: np.ndarray  # degrees per store row, NaN where unknown (memory-mapped catalog columns)
    dec: np.ndarray
    statistics: tuple[str, ...]  # the morphometry appended to the search vectors, in order (empty: none)
    survey_map: SurveyMap | None  # the 2-D map of the search vectors, where the build drew one
    _views: dict = field(default_factory=dict, repr=False)  # the last VIEWS_KEPT gallery selections

    @classmethod
    def open(cls, settings: ServerSettings) -> Resources:
        workdir = Workdir(settings.workdir)
        store = Store(workdir.store)
        remote = None
        if settings.index_shards:
            remote = deploy_shards(workdir.root, None if settings.index_shards == "local" else settings.index_shards)
        index = load_index(workdir.root, file_sha256(workdir.encoder) if workdir.encoder.exists() else None,
                           max_memory_mb=settings.index_max_memory_mb, remote=remote)
        ids = store.catalog["id"]  # memory-mapped: only the sampled rows are read
        workdir.check_aligned(ids, sampled=True)
        anomaly = load_anomaly_scores(workdir.root, ids)
        sessions = init_db(make_engine(settings.resolved_database_url()))
        ra, dec = (np.asarray(store.catalog[c]) if c in store.catalog.colnames
                   else np.full(len(store), np.nan) for c in ("ra", "dec"))
        sky = SkyIndex(ra, dec, SkyCells.open(workdir.root, ra, dec))
        views = Views({"survey_count": len(store), "bands": store.bands, "dim": index.manifest["dim"],
                       "auth": bool(settings.auth_token), "max_k": settings.max_k, "raster": store.raster,
                       "has_sky": sky.count > 0})
        return cls(settings=settings, store=store, index=index,
                   ranker=AnomalyRanker(anomaly["coords"], anomaly["combined"], settings.retrain_every,
                                        settings.anomaly_method),
                   measures=Measures.load(workdir.root, len(store)), sessions=sessions,
                   thumbs=ThumbnailCache(workdir.thumbs, store), sky=sky, views=views, ra=ra, dec=dec,
                   statistics=_appended_statistics(workdir), survey_map=SurveyMap.load(workdir.root, len(store)))

    @property
    def vectors(self) -> np.ndarray:
        """The embeddings, row-aligned with the store (memory-mapped once by the index loader)."""
        return self.index.vectors

    def row(self, galaxy_id: str) -> int:
        """The galaxy's store row; 404 for an id the survey does not hold."""
        row = self.index.lookup.row(galaxy_id)
        if row is None:
            raise HTTPException(404, f"unknown galaxy id {galaxy_id!r}")
        return row

    def rows_of(self, ids: list[str]) -> np.ndarray:
        """The store row of each id, -1 for ids the survey does not hold."""
        return self.index.lookup.rows(ids)

    def coords(self, galaxy_id: str) -> dict:
        """The galaxy's id, ra and dec (None where unknown); 404 for an id the survey does not hold."""
        return self.at(self.row(galaxy_id))

    def at(self, row: int) -> dict:
        """The id, ra and dec (None where unknown) of the galaxy at a store row."""
        ra, dec = float(self.ra[row]), float(self.dec[row])
        return {"id": str(self.index.ids[row]), "ra": ra if np.isfinite(ra) else None,
                "dec": dec if np.isfinite(dec) else None}

    def galaxies_at(self, rows: list[int]) -> list[Galaxy]:
        """The galaxies at these store rows, in the order given."""
        return [Galaxy(row=int(r), **self.at(int(r))) for r in rows]

    def galaxies_by_id(self, ids: list[str]) -> dict[str, Galaxy]:
        """The galaxies among ``ids`` that the survey holds, by id (unknown ids are simply absent)."""
        rows = self.rows_of(ids)
        return {g.id: g for g in self.galaxies_at([int(r) for r in rows if r >= 0])}

    def galaxy(self, galaxy_id: str) -> Galaxy:
        """The galaxy; 404 for an id the survey does not hold."""
        return self.galaxies_at([self.row(galaxy_id)])[0]

    def selection(self, where: list[str] | None = None, sort: str | None = None, descending: bool = False,
                  id_contains: str | None = None) -> np.ndarray | None:
        """The store rows a gallery view shows, in order: those meeting every ``where`` condition and whose id
        holds ``id_contains`` (any case), ordered by catalog column ``sort``; None for the whole survey in its
        own order. 422 for a malformed condition or an unknown column. The last few views are kept, so scrolling
        through one does not filter the catalog again for every page."""
        key = (tuple(where or ()), sort, descending, id_contains)
        if key == ((), None, False, None):
            return None
        if key not in self._views:
            try:
                mask = catalog_mask(self.store.catalog, list(where)) if where else np.ones(len(self.store), bool)
                order = column_order(self.store.catalog, sort, descending) if sort else None
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from exc
            if id_contains:
                mask &= self._ids_containing(id_contains)
            rows = np.flatnonzero(mask) if order is None else order[mask[order]]
            while len(self._views) >= VIEWS_KEPT:
                self._views.pop(next(iter(self._views)))
            self._views[key] = rows
        return self._views[key]

    def _ids_containing(self, text: str) -> np.ndarray:
        """Which ids hold ``text`` (any case), found a block of the memory-mapped ids at a time: no lower-cased
        copy of every id stays in memory."""
        ids, text = self.index.ids, text.lower()
        found = np.empty(len(ids), bool)
        for lo in range(0, len(ids), ID_BLOCK):
            found[lo : lo + ID_BLOCK] = np.char.find(np.char.lower(ids[lo : lo + ID_BLOCK]), text) >= 0
        return found

    def page(self, page: int, rows: np.ndarray | None = None, show: str | None = None) -> list[dict]:
        """One gallery page of ``rows`` (None: the survey in its own order), each galaxy with its ``show``
        column's value as ``label`` (the thumbnail's caption)."""
        size = self.settings.page_size
        total = len(self.store) if rows is None else len(rows)
        picked = range((page - 1) * size, min(total, page * size))
        picked = picked if rows is None else rows[picked.start:picked.stop]
        try:
            column = catalog_column(self.store.catalog, show) if show else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return [{**self.at(r),
                 **({"label": _caption(column[r])} if column is not None else {})} for r in picked]

    def next_page(self, page: int, rows: np.ndarray | None = None) -> int | None:
        total = len(self.store) if rows is None else len(rows)
        return page + 1 if page * self.settings.page_size < total else None

    def why(self, galaxy_id: str, other_id: str) -> dict:
        """How far apart two galaxies' search vectors are, and which part of them makes the distance."""
        a, b = self.row(galaxy_id), self.row(other_id)
        return distance_shares(self.vectors[a], self.vectors[b], list(self.statistics))

    def like_these(self, ids: list[str], not_ids: list[str], k: int) -> list[dict]:
        """The ``k`` galaxies most like any of ``ids`` and least like ``not_ids``, each with that score."""
        pos = np.array([self.row(i) for i in ids], int)
        neg = np.array([self.row(i) for i in not_ids], int)
        ranking = like_these(self.vectors, pos, neg, k, search=self.index.candidates)
        return [{**self.at(r), "score": float(sc)}
                for r, sc in zip(ranking.rows, ranking.scores)]

    def look_alikes(self, galaxy_id: str, k: int, where: list[str] | None = None,
                    distinct_arcsec: float | None = None) -> tuple[dict, list[dict]]:
        """The query's coordinates and its ``k`` look-alikes meeting every ``where`` condition, without repeated
        detections closer than ``distinct_arcsec`` to the query or a better look-alike."""
        row = self.row(galaxy_id)
        try:
            allowed = catalog_mask(self.store.catalog, where) if where else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        # Dropping repeated detections needs spare hits: fetch twice as many, keep the first k distinct ones.
        found = self.index.similar_rows(row, 2 * k if distinct_arcsec else k, allowed)
        if distinct_arcsec:
            keep = set(self.sky.distinct(row, [r for r, _ in found], distinct_arcsec))
            found = [(r, sim) for r, sim in found if r in keep][:k]
        results = [{**self.at(r), "similarity": sim, "distance": float(np.sqrt(max(0.0, 2.0 - 2.0 * sim)))}
                   for r, sim in found]
        return self.at(row), results
