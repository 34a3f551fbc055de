"""What a route declares in its signature: the survey's open resources, a validated galaxy id, who is asking.

Dependencies that only read the request are ``async``: FastAPI runs a plain ``def`` dependency in its threadpool,
a thread hop on every request that showed in the look-alike route's latency (README, *Scale*).
The hottest routes (thumbnails, look-alikes) read ``request.app.state.resources`` through ``resources_of``
directly, and ``known_galaxy``, which queries the database, stays in the threadpool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from app.galaxy import Galaxy
from app.resources import Resources
from survey.catalogs import SERVABLE_ID

ID_PATTERN = SERVABLE_ID.pattern  # every id ingest keeps: IAU names ('.', '+', spaces) included
WHO_COOKIE = "galsearch_who"
WHO_PATTERN = r"^[A-Za-z0-9_.\- ]{1,64}$"
GalaxyId = Annotated[str, PathParam(pattern=ID_PATTERN, description="catalog id of the galaxy")]


def resources_of(request: Request) -> Resources:
    return request.app.state.resources


async def resources(request: Request) -> Resources:
    """``resources_of`` as a dependency, run inline rather than in the threadpool."""
    return resources_of(request)


Survey = Annotated[Resources, Depends(resources)]


def known_galaxy(galaxy_id: GalaxyId, survey: Survey) -> Galaxy:
    """The galaxy; 404 for an id the survey does not hold."""
    return survey.galaxy(galaxy_id)


KnownGalaxy = Annotated[Galaxy, Depends(known_galaxy)]


async def researcher(who: Annotated[str | None, Cookie(alias=WHO_COOKIE, pattern=WHO_PATTERN,
                                                 description="researcher name (set with POST /who)")] = None) -> str:
    """The researcher named by the cookie, or ``anonymous`` before one is set."""
    return who if who and len(who) <= 64 else "anonymous"


Researcher = Annotated[str, Depends(researcher)]


def check_k(survey: Resources, k: int) -> int:
    """``k``, refused above the server's ``max_k`` as FastAPI refuses any out-of-range parameter (the limit is
    the server's setting, so it cannot sit in a route's signature)."""
    if k > survey.settings.max_k:
        raise RequestValidationError([{"type": "less_than_equal", "loc": ("query", "k"), "input": k,
                                       "msg": f"Input should be less than or equal to {survey.settings.max_k}"}])
    return k


async def bounded_k(survey: Survey,
                    k: Annotated[int, Query(ge=1, description="how many galaxies to return")] = 20) -> int:
    return check_k(survey, k)


K = Annotated[int, Depends(bounded_k)]
