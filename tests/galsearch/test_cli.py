from __future__ import annotations

import json
from pathlib import Path

import pytest

from galsearch.cli import main as cli


def test_eval_json_keys(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    cli(["eval", "--workdir", str(workdir), "--json", "--supervised", "--supervised-epochs", "2", "--map", "tsne"])
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 240 and result["map"] == "tsne"
    baselines = result["baselines"]
    counts = {c: v["count"] for c, v in result["per_class"].items()}
    rare = {c for c in ("ring", "merger", "lens", "artifact") if counts.get(c, 0) >= 2}  # one lens has no partner
    assert rare >= {"ring", "merger", "artifact"}
    for block in (result, baselines["pca_pixels"], baselines["random_init"]):
        assert 0.0 <= block["precision_at_10"] <= 1.0 and 0.0 <= block["precision_at_50"] <= 1.0
        assert set(block["linear_probe"]) == {"0.01", "0.1", "1.0"}
        assert set(block["rare_recall_at_50"]) == rare
    assert set(baselines["supervised_scratch"]["linear_probe"]) == {"0.01", "0.1", "1.0"}
    assert all(0.0 <= v <= 1.0 for v in baselines["supervised_scratch"]["linear_probe"].values())
    assert 0.0 <= result["per_class"]["elliptical"]["precision_at_50"] <= 1.0
    assert json.loads((workdir / "eval.json").read_text()) == result
    png = (workdir / "eval.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    anomaly = result["anomaly"]
    assert anomaly["interesting_column"] == "interesting" and anomaly["raters"] == 10
    assert anomaly["method"] == "classifier" and len(anomaly["active_learning"]["200"]["seeds"]) == 10
    assert (workdir / "eval_anomaly.png").read_bytes().startswith(b"\x89PNG")
    ring = result["tag_expansion"]["#ring"]
    assert len(ring["found"]["3"]["seeds"]) == min(10, counts["ring"]) and "round2_precision_at_50" in ring


def test_eval_hunts_what_it_is_told_is_interesting(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    cli(["eval", "--workdir", str(workdir), "--no-figure", "--interesting-col", "morphology", "--interesting",
         "ring,lens", "--boring", "artifact", "--raters", "3", "--tag-starts", "2"])
    err = capsys.readouterr().err
    result = json.loads((workdir / "eval.json").read_text())
    a = result["anomaly"]
    assert a["interesting_column"] == "morphology" and a["raters"] == 3
    assert a["interesting_count"] == sum(result["per_class"][c]["count"] for c in ("ring", "lens"))
    assert a["boring_count"] == result["per_class"]["artifact"]["count"]
    assert all(len(t["found"]["1"]["seeds"]) <= 2 for t in result["tag_expansion"].values())
    assert "median/worst of 3 raters" in err and "look-alikes" in err
    with pytest.raises(SystemExit):
        cli(["eval", "--workdir", str(workdir), "--no-figure", "--interesting-col", "nope"])


def test_eval_on_any_label_column_skips_the_slow_baseline_and_shows_progress(
        workdir: Path, capsys: pytest.CaptureFixture) -> None:
    cli(["eval", "--workdir", str(workdir), "--json", "--label-col", "host_morphology", "--no-figure"])
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["label"] == "host_morphology" and "artifact" not in result["per_class"]
    assert "figure" not in result
    assert result["baselines"]["supervised_scratch"] is None  # the key stays, null: not trained without --supervised
    for stage in ("pixel PCA", "untrained encoder", "tag expansion"):
        assert stage in out.err  # the progress bar names each stage as it runs


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


def test_training_schedule_follows_the_device_unless_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from galsearch.settings import Settings

    s = Settings(workdir=tmp_path)
    assert (s.resolved_epochs("cpu"), s.resolved_batch_size("cpu")) == (s.epochs_cpu, s.batch_size_cpu)
    assert (s.resolved_epochs("cuda"), s.resolved_batch_size("cuda")) == (s.epochs_gpu, s.batch_size_gpu)
    assert s.batch_size_cpu != s.batch_size_gpu
    monkeypatch.setenv("GALSEARCH_BATCH_SIZE", "96")
    assert Settings(workdir=tmp_path, epochs=3).resolved_batch_size("cuda") == 96
    assert Settings(workdir=tmp_path, epochs=3).resolved_epochs("cuda") == 3


def test_a_small_survey_trains_as_many_steps_as_the_demo(tmp_path: Path) -> None:
    from galsearch.settings import Settings

    s = Settings(workdir=tmp_path)
    assert s.resolved_epochs("cpu", 5000) == s.epochs_cpu == 12  # the demo: 39 steps an epoch, 468 in all
    assert s.resolved_epochs("cpu", 2000) == 32  # 15 steps an epoch
    assert s.resolved_epochs("cpu", 100) == 468  # one (short) batch an epoch
    assert s.resolved_epochs("cuda", 2000) == s.epochs_gpu  # 200 x 7 steps: already more
    assert Settings(workdir=tmp_path, epochs=5).resolved_epochs("cpu", 100) == 5  # a set count is kept


def test_add_a_batch_without_rebuilding(workdir: Path, survey_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    import shutil

    import numpy as np
    from astropy.table import Table

    from index_builder.index import load

    w = tmp_path / "w"
    shutil.copytree(workdir, w, ignore=shutil.ignore_patterns("thumbs", "*.db*"))
    before = json.loads((w / "manifest.json").read_text())
    batch = Table.read(survey_dir / "catalog.fits")[:12]
    batch["file"] = [str((survey_dir / f).resolve()) for f in batch["file"]]
    twins = [str(i + 9_000_000) for i in batch["id"][:10]]
    batch["id"][:10] += 9_000_000  # 10 new ids (same pixels as old galaxies) and 2 already in the survey
    batch.write(tmp_path / "batch.fits")
    cli(["add", "--catalog", str(tmp_path / "batch.fits"), "--workdir", str(w), "--device", "cpu"])
    assert "skipped 2 galaxies already in the survey" in capsys.readouterr().err
    index = load(w)
    assert index.manifest["count"] == before["count"] + 10 == len(np.load(w / "embeddings.npy"))
    assert index.manifest["added_since_build"] == 10
    original = str(Table.read(survey_dir / "catalog.fits")["id"][0])
    hits = index.similar(twins[0], 3)
    assert hits[0][0] == original and hits[0][1] > 0.999  # the same pixels under a new id: its own twin
    assert len(np.load(w / "anomaly.npz")["combined"]) == before["count"] + 10
    stats = np.load(w / "morphometry.npy")  # the twins' pixels are rows 0-9's: so are their measurements
    assert len(stats) == before["count"] + 10 and np.allclose(stats[-10:], stats[:10], equal_nan=True)


def test_train_precision_flag_reaches_the_checkpoint(workdir: Path, tmp_path: Path) -> None:
    import torch

    (tmp_path / "store").symlink_to((workdir / "store").resolve())
    cli(["train", "--workdir", str(tmp_path), "--epochs", "1", "--width", "8", "--batch-size", "64",
         "--precision", "fp32", "--device", "cpu"])
    assert torch.load(tmp_path / "model.pt", weights_only=False)["config"]["train"]["precision"] == "fp32"
    with pytest.raises(SystemExit):
        cli(["train", "--workdir", str(tmp_path), "--precision", "fp16"])


def test_one_encoder_trains_on_several_surveys_and_a_small_one_reuses_it(workdir: Path, survey_dir: Path,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    import torch

    cli(["ingest", "--catalog", str(survey_dir / "catalog.fits"), "--out", str(tmp_path / "b"), "--size", "32"])
    small = ["--epochs", "1", "--width", "8", "--batch-size", "64", "--device", "cpu"]
    cli(["train", "--workdir", str(tmp_path / "shared"), "--survey", str(workdir), "--survey", str(tmp_path / "b"),
         *small])
    ckpt = torch.load(tmp_path / "shared" / "model.pt", weights_only=False)
    assert [s["count"] for s in ckpt["config"]["surveys"]] == [240, 240]
    assert ckpt["config"]["train"]["epochs"] == 1 and ckpt["history"][0]["epoch"] == 1
    cli(["build", "--survey", str(tmp_path / "b"), "--workdir", str(tmp_path / "small"), "--model",
         str(tmp_path / "shared" / "model.pt"), "--device", "cpu"])
    info = json.loads((tmp_path / "small" / "manifest.json").read_text())
    assert info["count"] == 240
    capsys.readouterr()
    for survey in ([tmp_path / "nothing"], [workdir, tmp_path / "b"]):
        with pytest.raises(SystemExit):
            cli(["train", "--workdir", str(tmp_path / "x"), *(f"--survey={path}" for path in survey), "--pretext",
                 "auto", *small])
    err = capsys.readouterr().err
    assert "neither a packed survey nor a workdir" in err and "one survey's catalog columns" in err
    assert not (tmp_path / "x" / "model.pt").exists()


def test_training_on_a_tiny_survey_warns_and_suggests_a_reused_encoder(workdir: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "store").symlink_to(workdir / "store", target_is_directory=True)  # the 240-galaxy test survey
    cli(["train", "--workdir", str(tmp_path), "--epochs", "1", "--width", "8", "--batch-size", "64",
         "--device", "cpu"])
    err = capsys.readouterr().err
    assert "240 cutouts are too few" in err and "--model" in err and (tmp_path / "model.pt").exists()
