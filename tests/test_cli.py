from __future__ import annotations

import json
from pathlib import Path

import pytest

from galsearch.cli import main as cli


def test_eval_json_keys(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    cli(["eval", "--workdir", str(workdir), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 240
    for block in (result, result["baselines"]["pca_pixels"], result["baselines"]["random_init"]):
        assert 0.0 <= block["precision_at_10"] <= 1.0
    assert "elliptical" in result["per_class"]
    assert 0.0 <= result["per_class"]["elliptical"]["precision_at_10"] <= 1.0
    assert (workdir / "eval.json").exists()


def test_eval_unknown_label_column(workdir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(["eval", "--workdir", str(workdir), "--label-col", "nope"])
    assert exc.value.code == 2


def test_missing_workdir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(["embed", "--workdir", str(tmp_path)])
    assert exc.value.code == 2
    assert "galsearch ingest" in capsys.readouterr().err


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from galsearch.settings import Settings

    monkeypatch.setenv("GALSEARCH_EPOCHS", "7")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = Settings(workdir=tmp_path)
    assert s.epochs == 7 and s.resolved_database_url() == "postgresql+psycopg://u@h/db"
    monkeypatch.delenv("DATABASE_URL")
    assert Settings(workdir=tmp_path).resolved_database_url().startswith("sqlite:///")


def test_demo_reuses_a_matching_survey_and_builds(survey_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    w = tmp_path / "w"
    cli(["demo", "--no-serve", "--n", "240", "--seed", "3", "--out", str(survey_dir), "--workdir", str(w),
         "--epochs", "1", "--width", "8", "--batch-size", "64", "--device", "cpu"])
    assert "reusing the demo survey" in capsys.readouterr().err
    manifest = json.loads((w / "manifest.json").read_text())
    assert manifest["count"] == 240 and manifest["dim"] == 32
