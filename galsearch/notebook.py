"""galsearch from Python: ``Survey("work/demo")`` opens a built workdir in this process, ``Client(url)`` talks to a
running server; both answer with astropy tables.

Both send the same requests to the same application, ``Survey`` through an in-process ASGI transport (no server,
no port) and ``Client`` over HTTP, so a notebook and a shared lab server can never disagree on what a look-alike
or a candidate is: there is one implementation, the server's routes. Tables come as the server's VOTable exports
(RA/Dec in degrees, the morphometry columns with their units), read by astropy.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

DEFAULT_WHO = "notebook"


class GalsearchError(RuntimeError):
    """The server refused a request: ``status`` is its HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Cutout:
    """One galaxy's bands: ``data`` (bands, H, W) in the order of ``bands``; ``wcs`` the celestial WCS of its
    pixels (None for PNG/JPEG surveys and files without one); ``header`` as served (``cutout.fits``)."""

    data: np.ndarray
    bands: list[str]
    wcs: WCS | None
    header: fits.Header

    def hdu(self) -> fits.PrimaryHDU:
        """The cutout as a FITS HDU, to save (``.writeto``) or open in ds9."""
        return fits.PrimaryHDU(self.data, self.header)


class Tag:
    """One tag of the survey: its members, its candidates, and the decisions on them."""

    def __init__(self, client: Client, name: str) -> None:
        self._client, self.name = client, name

    def __repr__(self) -> str:
        return f"Tag({self.name!r})"

    @property
    def _path(self) -> str:
        return f"/tags/{quote(self.name, safe='')}"

    def members(self) -> Table:
        """The tagged galaxies (by hand, or proposals accepted), with who tagged them and their morphometry."""
        return self._client._table(f"{self._path}/export", {})

    def candidates(self, k: int = 24) -> Table:
        """The ``k`` galaxies the tag's members and rejections propose, best first, with their scores."""
        return self._client._table(f"{self._path}/candidates", {"k": k})

    def add(self, *ids: str) -> None:
        """Tag these galaxies by hand."""
        for galaxy_id in ids:
            self._client._send("POST", f"{self._path}/galaxies/{quote(str(galaxy_id), safe='')}")

    def decide(self, accept: Iterable[str] = (), reject: Iterable[str] = ()) -> dict:
        """Accept or reject proposed galaxies (as the candidates page does); returns the tag's new counts."""
        decisions = [{"id": str(i), "decision": "accept"} for i in accept]
        decisions += [{"id": str(i), "decision": "reject"} for i in reject]
        return self._client._send("POST", f"{self._path}/decisions", json={"decisions": decisions}).json()


class Client:
    """A galsearch server over HTTP, e.g. ``Client("http://lab-server:8000", token=...)``.

    ``token`` is the server's access token (``GALSEARCH_AUTH``), needed only to write (tags, decisions);
    ``who`` is the researcher name recorded with them.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, who: str = DEFAULT_WHO,
                 timeout: float = 60.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout, **self._identity(token, who))

    @staticmethod
    def _identity(token: str | None, who: str) -> dict:
        """Headers and cookies that name the researcher. A request carrying galsearch cookies must repeat its
        CSRF cookie in a header (app.security), so the client sends a pair of its own."""
        csrf = secrets.token_urlsafe(16)
        headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return {"headers": headers, "cookies": {"galsearch_who": who, "galsearch_csrf": csrf}}

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json().get("detail", response.text)
            except ValueError:
                message = response.text
            raise GalsearchError(response.status_code, str(message))
        return response

    def _table(self, path: str, params: dict) -> Table:
        response = self._send("GET", path, params={**params, "format": "votable"})
        return Table.read(io.BytesIO(response.content), format="votable")

    def galaxy(self, galaxy_id: str) -> dict:
        """A galaxy's catalog row and morphometry."""
        return self._send("GET", f"/galaxies/{quote(str(galaxy_id), safe='')}").json()

    def similar(self, galaxy_id: str, k: int = 20, where: str | Iterable[str] | None = None,
                distinct_arcsec: float | None = None) -> Table:
        """The ``k`` look-alikes of a galaxy, best first; ``where`` keeps those meeting catalog conditions
        (``"mag_r<=17.5"``, or several), ``distinct_arcsec`` drops repeated detections of one object."""
        params: dict = {"k": k, "where": [where] if isinstance(where, str) else list(where or [])}
        if distinct_arcsec is not None:
            params["distinct_arcsec"] = distinct_arcsec
        return self._table(f"/galaxies/{quote(str(galaxy_id), safe='')}/similar", params)

    def lookup(self, ra: float | str, dec: float | str, radius: float = 5.0) -> Table:
        """The galaxy nearest a position (degrees, or sexagesimal text with RA in hours) within ``radius``
        arcsec: one row with its separation, catalog columns and morphometry."""
        found = self._send("GET", "/lookup", params={"ra": str(ra), "dec": str(dec), "radius": radius}).json()
        row = {**self.galaxy(found["id"]), "id": found["id"], "ra": found["ra"], "dec": found["dec"],
               "separation": found["separation_arcsec"]}
        table = Table([[np.nan if v is None else v] for v in row.values()], names=list(row))
        table["ra"].unit = table["dec"].unit = "deg"
        table["separation"].unit = "arcsec"
        return table

    def cutout(self, galaxy_id: str) -> Cutout:
        """The galaxy's packed cutout, the pixels the encoder saw (cropped and resampled at ingest), with the WCS
        of that pixel grid where the survey's files carry one."""
        response = self._send("GET", f"/galaxies/{quote(str(galaxy_id), safe='')}/cutout.fits")
        with fits.open(io.BytesIO(response.content)) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.copy()
        wcs = WCS(header, naxis=2) if "CTYPE1" in header else None
        return Cutout(data, str(header["BANDS"]).split(","), wcs, header)

    def tag(self, name: str) -> Tag:
        return Tag(self, name)

    def candidates(self, tag: str, k: int = 24) -> Table:
        """``tag(tag).candidates(k)``."""
        return self.tag(tag).candidates(k)

    def tags(self) -> list[dict]:
        """Every tag with its counts."""
        return self._send("GET", "/tags").json()["tags"]

    def anomalies(self, n: int = 24) -> Table:
        """This researcher's anomaly ranking (their ratings so far): the top, with expected rating and status."""
        return self._table("/anomalies", {"n": n})


class _InProcess:
    """The part of ``httpx.Client`` that ``Client`` uses, answered by an ASGI app in this process.

    httpx's ASGI transport is asynchronous; the requests run on a private event loop in a daemon thread, so the
    calls stay synchronous, also inside Jupyter, whose own loop is running, and the thread never holds up the
    interpreter's exit.
    """

    def __init__(self, app, **options) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="galsearch-survey", daemon=True).start()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://galsearch.local",
                                         **options)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        return self._run(self._client.request(method, url, **kwargs))

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)


class Survey(Client):
    """A built workdir opened in this Python process, with no server: ``Survey("work/demo").similar(id)``.

    It reads and writes the workdir's own database (or ``database_url``), so tags made here show in the
    gallery and the other way round.
    """

    def __init__(self, workdir: str | Path, who: str = DEFAULT_WHO, database_url: str | None = None) -> None:
        from app.main import create_app
        from app.settings import ServerSettings

        self.workdir = Path(workdir)
        settings = ServerSettings(workdir=self.workdir, **({"database_url": database_url} if database_url else {}))
        self._http = _InProcess(create_app(settings), **self._identity(None, who))

    def __repr__(self) -> str:
        return f"Survey({str(self.workdir)!r})"
