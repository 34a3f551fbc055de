"""``--encoder file:PATH``: a small CNN built here, exported as a torch.export program, TorchScript and ONNX, embeds
a survey with its own features; ``add``, ``eval`` and ``embed --ray`` use it too; bad models are clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from astropy.table import Table
from torch import nn

from embedder.encode import dihedral_views
from embedder.encoders import EncoderError, EncoderSpec, InputContract, export_module, file_model, read_contract
from galsearch.cli import main as cli
from survey.checksum import file_sha256
from survey.store import Store

SIZE = 24
# Reversed bands (as an RGB model takes a blue-first JPEG survey), a unit scaling and a per-channel standardisation.
CONTRACT = InputContract(size=SIZE, channels=["z", "r", "g"], scaling="unit", mean=[0.1, 0.0, -0.1],
                         std=[2.0, 1.0, 0.5])


class TinyNet(nn.Module):
    """A CNN of the shape foundation models have: convolutions, a global pool, a (B, D) feature vector."""

    def __init__(self, bands: int = 3, dim: int = 12, pool: bool = True) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, dim, 3, stride=2))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.mean(dim=(2, 3)) if self.pool else y


def export(net: nn.Module, path: Path, bands: int = 3, contract: InputContract = CONTRACT) -> Path:
    """``net`` written to ``path`` in the format its suffix names, its contract in the sidecar."""
    net = net.eval()
    example = torch.randn(2, bands, SIZE, SIZE)
    if path.suffix == ".pt2":
        return export_module(net, path, bands, SIZE, contract)
    if path.suffix == ".pt":
        torch.jit.trace(net, example).save(str(path))
    else:
        torch.onnx.export(net, (example,), str(path), input_names=["pixels"], dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    path.with_suffix(".json").write_text(json.dumps(contract.model_dump()))
    return path


def expected_features(net: nn.Module, images: np.ndarray) -> np.ndarray:
    """The module's own features under the contract, averaged over the 8 rotations/flips and L2-normalised: what
    the embeddings must hold."""
    x = torch.from_numpy(np.asarray(images, np.float32))[:, [2, 1, 0]]
    x = (x - torch.tensor(CONTRACT.mean).view(1, 3, 1, 1)) / torch.tensor(CONTRACT.std).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(SIZE, SIZE), mode="area")
    with torch.no_grad():
        h = torch.stack([net.eval()(v) for v in dihedral_views(x)]).mean(0)
    return F.normalize(h, dim=1).numpy()


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(7)
    return TinyNet().eval()


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_a_workdir_built_with_an_exported_model_holds_its_own_features(net: nn.Module, workdir: Path,
                                                                        tmp_path: Path, suffix: str) -> None:
    model = export(net, tmp_path / f"tiny{suffix}")
    w = tmp_path / "w"
    cli(["build", "--survey", str(workdir / "store"), "--workdir", str(w), "--encoder", f"file:{model}",
         "--morphometry-weight", "0", "--device", "cpu"])
    store = Store(w / "store")
    emb = np.load(w / "embeddings.npy")
    assert emb.shape == (len(store), 12)
    assert np.allclose(emb, expected_features(net, store.images[:]), atol=1e-4)
    assert not (w / "model.pt").exists()  # nothing was trained
    identity = json.loads((w / "encoder.json").read_text())
    manifest = json.loads((w / "manifest.json").read_text())
    fmt = {".pt2": "export", ".pt": "torchscript", ".onnx": "onnx"}[suffix]
    assert identity["format"] == manifest["encoder"]["format"] == fmt
    assert identity["sha256"] == manifest["model_sha256"] == file_sha256(w / identity["file"])
    assert identity["source_sha256"] == file_sha256(model)
    # torch's ONNX exporter keeps the weights in a file beside the model: the workdir's copy holds them itself
    assert (identity["sha256"] == identity["source_sha256"]) == (suffix != ".onnx")
    assert sorted(p.name for p in w.glob("encoder*")) == ["encoder.json", f"encoder{suffix}"]
    assert manifest["encoder"]["contract"] == CONTRACT.model_dump() and manifest["encoder"]["dim"] == 12
    assert identity["source"] == f"file:{model}"


def test_add_eval_and_ray_use_the_workdir_s_foreign_encoder(net: nn.Module, survey_dir: Path, workdir: Path,
                                                             tmp_path: Path) -> None:
    model = export(net, tmp_path / "tiny.onnx")
    w = tmp_path / "w"
    cli(["build", "--survey", str(survey_dir), "--workdir", str(w), "--encoder", f"file:{model}",
         "--morphometry-weight", "0", "--device", "cpu"])
    model.unlink()  # the workdir holds its own copy: later jobs need not find the original
    before = np.load(w / "embeddings.npy")

    batch = Table.read(survey_dir / "catalog.fits")[:5]
    batch["file"] = [str((survey_dir / f).resolve()) for f in batch["file"]]
    batch["id"] += 9_000_000
    batch.write(tmp_path / "batch.fits")
    cli(["add", "--catalog", str(tmp_path / "batch.fits"), "--workdir", str(w), "--device", "cpu"])
    after = np.load(w / "embeddings.npy")
    assert np.allclose(after[-5:], expected_features(net, Store(w / "store").images[-5:]), atol=1e-4)
    assert np.allclose(after[-5:], before[:5], atol=1e-5)  # the same pixels under new ids

    cli(["eval", "--workdir", str(w), "--no-figure", "--raters", "1", "--tag-starts", "1"])
    result = json.loads((w / "eval.json").read_text())
    assert result["encoder"]["format"] == "onnx" and 0 <= result["precision_at_10"] <= 1
    assert 0 <= result["baselines"]["random_init"]["precision_at_10"] <= 1  # the own architecture, untrained

    pytest.importorskip("ray")
    copy = tmp_path / "ray"
    shutil.copytree(w, copy, ignore=shutil.ignore_patterns("embeddings*"))
    cli(["embed", "--workdir", str(copy), "--ray", "--ray-actors", "1", "--device", "cpu",
         "--morphometry-weight", "0"])
    assert np.allclose(np.load(copy / "embeddings.npy"), after, atol=1e-5)


def _fails(args: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as stop:
        cli(args)
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_a_model_for_other_bands_is_a_clear_error(workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  suffix: str) -> None:
    five = InputContract(size=SIZE, scaling="unit")
    model = export(TinyNet(bands=5), tmp_path / f"five{suffix}", bands=5, contract=five)
    err = _fails(["build", "--survey", str(workdir / "store"), "--workdir", str(tmp_path / "w"),
                  "--encoder", f"file:{model}", "--device", "cpu"], capsys)
    # TorchScript does not say what it takes: it is tried with the survey's 3 bands and its failure says so
    assert ("takes 5 bands but the survey has 3 (g, r, z)" in err if suffix != ".pt"
            else "is that the number of bands and the size it takes?" in err)
    assert not (tmp_path / "w" / "embeddings.npy").exists()


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_a_model_without_a_feature_vector_is_a_clear_error(tmp_path: Path, suffix: str) -> None:
    model = export(TinyNet(pool=False), tmp_path / f"maps{suffix}")
    with pytest.raises(EncoderError, match=r"returns features of shape \(1, 12, 11, 11\); galsearch needs"):
        file_model(model, read_contract(model), bands=3)


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_a_corrupt_model_file_is_a_clear_error(workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                               suffix: str) -> None:
    model = tmp_path / f"broken{suffix}"
    model.write_bytes(b"PK\x03\x04 not a model" * 50)
    err = _fails(["embed", "--workdir", str(workdir), "--encoder", f"file:{model}", "--device", "cpu"], capsys)
    assert f"{model} could not be read as a" in err
    assert not (workdir / "encoder.json").exists()  # the workdir keeps its own encoder


def test_bad_specs_and_contracts_are_clear_errors(net: nn.Module, tmp_path: Path) -> None:
    for spec in ("zoobot", "file:", "torchhub:resnet"):
        with pytest.raises(EncoderError, match="use own, file:PATH, timm:NAME or hf-hub:REPO"):
            EncoderSpec.parse(spec)
    assert EncoderSpec.parse("hf-hub:mwalmsley/zoobot-encoder-convnext_nano") == EncoderSpec(
        "hf-hub", "mwalmsley/zoobot-encoder-convnext_nano")
    with pytest.raises(EncoderError, match="must end in .pt2"):
        file_model(_touch(tmp_path / "model.bin"), CONTRACT)
    with pytest.raises(EncoderError, match="no model file"):
        file_model(tmp_path / "absent.pt2", CONTRACT)
    model = export(net, tmp_path / "tiny.pt2")
    model.with_suffix(".json").write_text("{not json")
    with pytest.raises(EncoderError, match="not a readable JSON input contract"):
        read_contract(model)
    model.with_suffix(".json").write_text(json.dumps({"scaling": "log"}))
    with pytest.raises(EncoderError, match="bad input contract"):
        read_contract(model)
    model.with_suffix(".json").unlink()
    assert read_contract(model, {"size": SIZE, "mean": [0.5]}) == InputContract(size=SIZE, mean=[0.5])
    with pytest.raises(EncoderError, match="mean has 2 values for 3 channels"):
        file_model(model, InputContract(size=SIZE, mean=[0.1, 0.2]))
    with pytest.raises(EncoderError, match=r"takes bands R, G, B but the survey has g, r, z \(no B\)"):
        file_model(model, InputContract(size=SIZE, channels=["R", "G", "B"])).check_survey(["g", "r", "z"])


def test_a_program_exported_for_one_batch_size_is_fed_whole_batches(net: nn.Module, tmp_path: Path) -> None:
    program = torch.export.export(net, (torch.randn(4, 3, SIZE, SIZE),))  # batch fixed at 4
    torch.export.save(program, str(tmp_path / "fixed.pt2"))
    model = file_model(tmp_path / "fixed.pt2", InputContract())
    assert (model.batch, model.contract.size, model.in_channels) == (4, SIZE, 3)  # read from the program itself
    x = torch.randn(7, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-5)


def test_timm_models_are_exported_once_and_run_without_timm(workdir: Path, tmp_path: Path) -> None:
    """``timm:NAME`` with local weights (no hub here): the workdir gets a .pt2 program and timm's input contract."""
    timm = pytest.importorskip("timm")
    weights = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False, num_classes=0).state_dict(), weights)
    w = tmp_path / "w"
    cli(["build", "--survey", str(workdir / "store"), "--workdir", str(w), "--encoder", "timm:resnet10t",
         "--encoder-weights", str(weights), "--encoder-size", "32", "--encoder-channels", "z,r,g", "--device", "cpu"])
    identity = json.loads((w / "encoder.json").read_text())
    assert identity["file"] == "encoder.pt2" and identity["kind"] == "timm"
    assert identity["contract"]["size"] == 32 and identity["contract"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert identity["weights_sha256"] == file_sha256(weights)
    assert np.load(w / "embeddings.npy").shape[0] == len(Store(w / "store"))

    # export-encoder: the same program and contract as a file another machine runs with torch alone
    cli(["export-encoder", "--encoder", "timm:resnet10t", "--encoder-weights", str(weights), "--encoder-size", "32",
         "--encoder-channels", "z,r,g", "--out", str(tmp_path / "resnet10t.pt2")])
    exported = file_model(tmp_path / "resnet10t.pt2", read_contract(tmp_path / "resnet10t.pt2"))
    assert exported.contract.model_dump() == identity["contract"] and exported.dim == identity["dim"]


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path
