"""A real survey end to end: SDSS JPEG cutouts from ../shared/data/gz2-spirals with a CSV catalog and no RA/Dec,
built with an encoder trained on another survey (too few cutouts to train on alone), evaluated and served."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table
from conftest import SHARED_DATA
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.thumbs import render_png
from embedder.model import adopt
from galsearch.cli import main as cli
from galsearch.settings import Settings
from survey.store import Store

GZ2 = SHARED_DATA / "gz2-spirals"


@pytest.fixture(scope="module")
def gz2_workdir(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (GZ2 / "catalog.csv").exists():
        pytest.skip(f"{GZ2} is not here (the shared data folder beside the repository)")
    catalog = Table.read(GZ2 / "catalog.csv", format="ascii.csv")
    subset = catalog[catalog["spiral"] == 1][:60]
    subset = Table(rows=[*subset, *catalog[catalog["spiral"] == 0][:60]], names=catalog.colnames)
    root = tmp_path_factory.mktemp("gz2")
    subset.write(root / "catalog.csv", format="ascii.csv")  # file paths stay relative to the shared folder
    w = root / "work"
    cli(["build", "--survey", str(root / "catalog.csv"), "--workdir", str(w), "--images-dir", str(GZ2),
         "--model", str(workdir / "model.pt"), "--label-col", "spiral", "--size", "48", "--device", "cpu"])
    return w


def test_jpeg_survey_builds_with_a_reused_encoder_and_evaluates(gz2_workdir: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    meta = json.loads((gz2_workdir / "store" / "meta.json").read_text())
    assert meta["count"] == 120 and meta["shape"] == [3, 48, 48] and meta["label_columns"] == ["spiral"]
    cfg = torch.load(gz2_workdir / "model.pt", weights_only=False)["config"]
    assert cfg["bands"] == meta["bands"] and cfg["adopted"]["bands"] != meta["bands"]
    cli(["eval", "--workdir", str(gz2_workdir), "--json", "--no-figure"])
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == "spiral" and result["n"] == 120 and 0.0 <= result["precision_at_10"] <= 1.0


def test_jpeg_survey_serves_without_sky_features(gz2_workdir: Path, tmp_path: Path) -> None:
    settings = Settings(workdir=gz2_workdir, database_url=f"sqlite:///{tmp_path / 'gz2.db'}")
    with TestClient(create_app(settings)) as c:
        page = c.get("/")
        assert page.status_code == 200 and 'name="ra"' not in page.text  # no coordinates: no position search
        first = c.get("/api/galaxies").json()["galaxies"][0]["id"]
        similar = c.get(f"/galaxies/{first}/similar", params={"k": 5}).json()
        assert len(similar["results"]) == 5 and similar["query"]["ra"] is None
        picture = c.get(f"/galaxies/{first}/image.png")
        assert picture.headers["content-type"] == "image/jpeg"
    # The thumbnail is the survey's own JPEG, resized (424 -> 256 px), not a re-stretch of the 48 px cutout.
    shown = np.asarray(Image.open(io.BytesIO(picture.content)).convert("RGB"), float)
    row = Table.read(gz2_workdir / "store" / "catalog.fits")
    original = Image.open(GZ2 / str(row["file"][list(row["id"].astype(str)).index(first)])).convert("RGB")
    expected = np.asarray(original.resize((256, 256), Image.Resampling.LANCZOS), float)
    store = Store(gz2_workdir / "store")
    old_render = render_png(store.images[0], store.noise, 256)  # the asinh re-stretch thumbnails used to be
    restretched = np.asarray(Image.open(io.BytesIO(old_render)).convert("RGB"), float)
    assert shown.shape == (256, 256, 3) and np.abs(shown - expected).mean() < 2.5
    assert np.abs(restretched - expected).mean() > 4 * np.abs(shown - expected).mean()


def test_an_encoder_for_other_bands_fails_clearly(workdir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="takes 3 bands .* this survey has 1 \\(r\\)"):
        adopt(workdir / "model.pt", ["r"], [0.1], tmp_path / "model.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a galsearch encoder"):
        adopt(tmp_path / "junk.pt", ["r"], [0.1], tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
