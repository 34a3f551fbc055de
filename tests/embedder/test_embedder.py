from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedder.augment import add_noise, augment, colour_jitter, psf_blur, redden, rotate_flip_shift
from embedder.encode import dihedral_views, embed, encode_array
from embedder.encoders import network_model
from embedder.model import Encoder, ProjectionHead, load_encoder
from embedder.morphometry import NAMES
from embedder.objectives import MoCo, nt_xent
from embedder.preprocess import stretch, to_model_input
from embedder.pretext import pretext_columns, pretext_targets
from embedder.train import TrainConfig, TrainingSet, train, use_bf16
from survey.ingest import ingest
from survey.store import Store


def _galaxy_batch(b: int = 4) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    blob = torch.exp(-((xx - 31.5) ** 2 / 40 + (yy - 31.5) ** 2 / 10))
    return blob.expand(b, 3, 64, 64).clone()


@pytest.mark.parametrize("bands,size,width", [(3, 32, 16), (1, 64, 8), (5, 48, 16)])
def test_encoder_shapes(bands: int, size: int, width: int) -> None:
    enc = Encoder(bands, width)
    h = enc(torch.randn(6, bands, size, size))
    assert h.shape == (6, 4 * width) == (6, enc.dim)
    assert ProjectionHead(enc.dim)(h).shape == (6, 64)


def test_augmentations_keep_shape_and_are_seeded() -> None:
    x = _galaxy_batch()
    noise = torch.full((3,), 0.03)
    for fn in (lambda g: redden(x, g), lambda g: rotate_flip_shift(x, g), lambda g: psf_blur(x, g),
               lambda g: add_noise(x, noise, g), lambda g: augment(x, noise, g), lambda g: colour_jitter(x, g),
               lambda g: augment(x, noise, g, "raster")):
        a, b = fn(torch.Generator().manual_seed(1)), fn(torch.Generator().manual_seed(1))
        assert a.shape == x.shape and torch.equal(a, b)
        assert not torch.equal(a, fn(torch.Generator().manual_seed(2)))


def test_blur_and_rotation_conserve_flux_of_a_centred_source() -> None:
    x = _galaxy_batch()
    g = torch.Generator().manual_seed(0)
    assert psf_blur(x, g).sum((1, 2, 3)) == pytest.approx(x.sum((1, 2, 3)), rel=1e-3)
    rot = rotate_flip_shift(x, g, max_shift=0.0, zoom=(1.0, 1.0))
    assert rot.sum((1, 2, 3)) == pytest.approx(x.sum((1, 2, 3)), rel=2e-2)
    assert not torch.allclose(rot, x, atol=1e-3)  # the elongated blob was actually turned


def test_noise_has_the_sky_and_shot_variance() -> None:
    noise = torch.tensor([0.02, 0.03, 0.06])
    flux = torch.tensor([0.0, 1.0, 4.0]).view(1, 3, 1, 1).expand(2, 3, 128, 128).clone()
    shot = add_noise(flux, noise, torch.Generator().manual_seed(0), max_extra=0.0, poisson=0.05) - flux
    expected = 0.05 * noise * torch.tensor([0.0, 1.0, 4.0])
    assert shot.mean((0, 2, 3)).abs().max() < 0.01
    assert shot.var((0, 2, 3)) == pytest.approx(expected, rel=0.05, abs=1e-9)
    sky = add_noise(torch.zeros(64, 3, 64, 64), noise, torch.Generator().manual_seed(0), max_extra=2.0).std((2, 3))
    assert (sky <= 2.0 * noise * 1.05).all() and sky.std(0).min() > 0  # a random level per image, up to 2x


def test_colour_jitter_keeps_a_red_galaxy_red_and_raster_noise_has_no_flux_term() -> None:
    red = torch.tensor([0.1, 0.3, 0.6]).view(1, 3, 1, 1).expand(256, 3, 8, 8).clone()  # B, G, R: a red galaxy
    out = colour_jitter(red, torch.Generator().manual_seed(0))
    assert (out >= 0).all() and torch.isfinite(out).all()
    b, g, r = out[:, 0, 0, 0], out[:, 1, 0, 0], out[:, 2, 0, 0]
    assert (r > g).all() and (g > b).all()  # gains within 10 % and a common gamma cannot swap the colours
    assert (r / b).std() > 0.05 and (out.mean((1, 2, 3)).std() > 0.02)  # ... but colour and brightness vary
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(red, torch.full((3,), 0.01), torch.Generator(), "jpeg")
    bright, faint = torch.ones(1, 3, 128, 128), torch.zeros(1, 3, 128, 128)
    noise = torch.full((3,), 0.02)
    spread = [float((add_noise(x, noise, torch.Generator().manual_seed(3), poisson=0.0) - x).std())
              for x in (bright, faint)]
    assert spread[0] == pytest.approx(spread[1], rel=1e-5)  # sky noise alone, whatever the pixel value


def test_each_image_may_carry_its_own_noise() -> None:
    x = _galaxy_batch(2)
    noise = torch.tensor([0.02, 0.03, 0.06])
    assert torch.equal(stretch(x, noise), stretch(x, noise.expand(2, 3)))
    own = stretch(x, torch.stack([noise, 2 * noise]))
    assert torch.equal(own[0], stretch(x[:1], noise)[0]) and torch.equal(own[1], stretch(x[1:], 2 * noise)[0])
    sky = add_noise(torch.zeros(2, 3, 128, 128), torch.stack([noise, 4 * noise]), torch.Generator().manual_seed(0),
                    max_extra=1.0, poisson=0.0).std((2, 3))
    assert (sky[1] > 2 * sky[0]).all()


def _raster_store(root: Path, n: int = 70, size: int = 48) -> Store:
    """A survey of ``n`` random RGB PNG cutouts, packed."""
    from astropy.table import Table
    from PIL import Image

    rng = np.random.default_rng(1)
    root.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"{i}.png")
    Table({"id": np.arange(n), "file": [f"{i}.png" for i in range(n)]}).write(root / "catalog.csv")
    ingest(root / "catalog.csv", root / "store", progress=False)
    return Store(root / "store")


def test_training_set_reads_several_surveys_as_one(workdir: Path, survey_dir: Path, tmp_path: Path) -> None:
    a = Store(workdir / "store")
    ingest(survey_dir / "catalog.fits", tmp_path / "small", progress=False, size=32)
    b = Store(tmp_path / "small")  # the same galaxies cut at 32 px, read back at the first survey's 64
    data = TrainingSet([a, b])
    n = len(a)
    assert len(data) == 2 * n and data.noise.shape == (2 * n, 3)
    assert np.array_equal(data.noise[n], b.noise) and np.array_equal(data.noise[0], a.noise)
    x = data.read(np.array([0, n - 1, n, 2 * n - 1]))
    assert x.shape == (4, 3, 64, 64)
    assert torch.equal(x[:2], torch.from_numpy(a.images[[0, n - 1]]))
    coarse = torch.nn.functional.avg_pool2d(x[[0, 2]], 4).flatten(1)  # one galaxy, cut at 64 px and at 32 px
    assert torch.corrcoef(coarse)[0, 1] > 0.9 and float(coarse[1].mean()) == pytest.approx(float(coarse[0].mean()),
                                                                                            rel=0.05)
    assert [s["count"] for s in data.describe()] == [n, n]
    with pytest.raises(ValueError, match="train an encoder for each kind"):
        TrainingSet([a, _raster_store(tmp_path / "png")])
    ingest(survey_dir / "catalog.fits", tmp_path / "two", progress=False, bands=["g", "r"])
    with pytest.raises(ValueError, match="as many bands"):
        TrainingSet([a, Store(tmp_path / "two")])


def test_a_png_survey_trains_with_the_raster_augmentations(tmp_path: Path) -> None:
    store = _raster_store(tmp_path / "png")
    assert store.raster
    cfg = TrainConfig(epochs=1, batch_size=32, width=8, device="cpu")
    ckpt = torch.load(train(store, tmp_path / "m.pt", cfg, progress=False), weights_only=False)
    assert ckpt["config"]["train"]["augment"] == "raster" and ckpt["config"]["arch"] == "small"
    forced = TrainConfig(epochs=1, batch_size=32, width=8, device="cpu", augment="flux", arch="large")
    ckpt = torch.load(train(store, tmp_path / "f.pt", forced, progress=False), weights_only=False)
    assert ckpt["config"]["train"]["augment"] == "flux"
    enc, _ = load_encoder(tmp_path / "f.pt")
    assert len(enc.stages) == 8 and enc.dim == 32  # two blocks a stage, the same embedding size
    assert TrainConfig().resolved_arch("cuda") == "large" and TrainConfig().resolved_arch("cpu") == "small"


def test_bf16_precision_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16(cuda) and use_bf16(cpu, "bf16") and not use_bf16(cuda, "fp32")
    with pytest.raises(ValueError, match="precision"):
        use_bf16(cpu, "fp16")


def test_contrastive_losses_agree_under_bf16_autocast() -> None:
    """The similarity logits stay in float32 under mixed precision: the loss moves by rounding, not more."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(64, 16), torch.randn(64, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = nt_xent(z1, z2, 0.2)
    assert mixed.dtype == torch.float32 and mixed.item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), rel=1e-5)


def test_reddening_dims_blue_more_than_red() -> None:
    x = torch.ones(64, 3, 8, 8)
    y = redden(x, torch.Generator().manual_seed(0), brightness=0.0)
    ratio = (y / x).mean((0, 2, 3))
    assert ratio[0] < ratio[1] < ratio[2] <= 1.0


def test_nt_xent_prefers_matching_pairs() -> None:
    z = torch.randn(32, 16)
    assert nt_xent(z, z + 0.01 * torch.randn_like(z), 0.2) < nt_xent(z, torch.randn(32, 16), 0.2)


def test_embedding_is_normalised_and_rotation_invariant() -> None:
    torch.manual_seed(0)
    enc = Encoder(3, 8)
    x = np.abs(np.random.default_rng(0).normal(size=(5, 3, 32, 32))).astype(np.float32)
    model = network_model(enc, 32, np.full(3, 0.1, np.float32), {"kind": "test"})
    e = encode_array(model, x)
    e_rot = encode_array(model, np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3))))
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.allclose(e, e_rot, atol=1e-4)
    assert len(dihedral_views(torch.from_numpy(x))) == 8


def test_model_input_scales_by_noise_and_resizes() -> None:
    x = torch.full((2, 3, 64, 64), 0.3)
    y = to_model_input(x, torch.tensor([0.1, 0.1, 0.1]), 32)
    assert y.shape == (2, 3, 32, 32)
    assert torch.allclose(y, torch.asinh(torch.tensor(1.0)))


class _Killed(Exception):
    pass


def _kill_after_first_epoch(summary: dict) -> None:
    if summary["epoch"] == 1:
        raise _Killed


def test_killed_training_resumes_to_the_same_weights(workdir: Path, tmp_path: Path) -> None:
    store = Store(workdir / "store")
    cfg = TrainConfig(epochs=2, batch_size=64, width=8, seed=4, device="cpu")
    full = torch.load(train(store, tmp_path / "full.pt", cfg, progress=False), weights_only=False)
    with pytest.raises(_Killed):
        train(store, tmp_path / "part.pt", cfg, progress=False, on_epoch_end=_kill_after_first_epoch)
    assert torch.load(tmp_path / "part.pt", weights_only=False)["epoch"] == 1
    resumed = torch.load(train(store, tmp_path / "part.pt", cfg, resume=True, progress=False), weights_only=False)
    assert resumed["epoch"] == 2
    for name, tensor in full["encoder"].items():
        assert torch.allclose(tensor.float(), resumed["encoder"][name].float(), atol=1e-5), name
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-5)
    enc, saved = load_encoder(tmp_path / "full.pt")
    assert saved["in_channels"] == 3 and enc.dim == 32


def test_moco_queue_and_momentum_encoder() -> None:
    torch.manual_seed(0)
    moco = MoCo(Encoder(3, 8), temperature=0.2, queue_size=48, momentum=0.9)
    key_before = [p.clone() for p in moco.key_encoder.parameters()]
    queue_before = moco.queue.clone()
    x = torch.randn(16, 3, 32, 32)
    loss, h = moco(x, x + 0.05 * torch.randn_like(x))
    assert torch.isfinite(loss) and h.shape == (16, moco.encoder.dim)
    loss.backward()
    assert all(p.grad is None for p in moco.key_encoder.parameters())  # keys carry no gradient
    assert int(moco.queue_ptr) == 32 and not torch.equal(moco.queue[:32], queue_before[:32])
    assert torch.equal(moco.queue[32:], queue_before[32:])
    assert torch.allclose(moco.queue.norm(dim=1), torch.ones(48), atol=1e-5)
    torch.optim.SGD(moco.encoder.parameters(), lr=0.5).step()
    moco(x, x)
    assert any(not torch.equal(a, b) for a, b in zip(key_before, moco.key_encoder.parameters()))
    moco(x, x)  # a third batch wraps around the queue
    assert int(moco.queue_ptr) == (3 * 32) % 48


def test_pretext_targets_from_the_demo_catalog(workdir: Path) -> None:
    catalog = Store(workdir / "store").catalog
    cols = pretext_columns(catalog, "auto")
    assert cols == ["mag_g", "mag_r", "mag_z", "r50"]
    catalog = catalog.copy()
    catalog["mag_g"][0] = np.nan
    y, names = pretext_targets(catalog, cols)
    assert names == ["mag_g", "mag_r", "mag_z", "r50", "g-r", "r-z"]
    assert y.shape == (len(catalog), 6) and np.isnan(y[0, 0]) and np.isnan(y[0, 4])
    assert np.nanmean(y, axis=0) == pytest.approx(np.zeros(6), abs=1e-5)
    with pytest.raises(ValueError, match="not in the catalog"):
        pretext_columns(catalog, "mag_g,nope")
    with pytest.raises(ValueError, match="no mag_"):
        pretext_columns(catalog[["id", "ra"]], "auto")


def test_a_checkpoint_records_the_run_so_set_and_default_schedules_resume_alike(workdir: Path,
                                                                               tmp_path: Path) -> None:
    store = Store(workdir / "store")
    set_by_hand = TrainConfig(epochs=2, batch_size=64, width=8, seed=4, device="cpu")
    with pytest.raises(_Killed):
        train(store, tmp_path / "m.pt", set_by_hand, progress=False, on_epoch_end=_kill_after_first_epoch)
    recorded = torch.load(tmp_path / "m.pt", weights_only=False)["config"]["train"]
    assert (recorded["epochs"], recorded["batch_size"]) == (2, 64) and "epochs_cpu" not in recorded
    device_default = TrainConfig(epochs_cpu=2, batch_size_cpu=64, min_train_steps=6, width=8, seed=4, device="cpu")
    assert torch.load(train(store, tmp_path / "m.pt", device_default, resume=True, progress=False),
                      weights_only=False)["epoch"] == 2


def test_moco_with_pretext_head_trains_and_refuses_a_mismatched_resume(workdir: Path, tmp_path: Path) -> None:
    store = Store(workdir / "store")
    cfg = TrainConfig(method="moco", epochs=1, batch_size=64, width=8, seed=2, device="cpu", pretext="auto")
    ckpt = torch.load(train(store, tmp_path / "m.pt", cfg, progress=False), weights_only=False)
    assert ckpt["config"]["pretext_targets"][-2:] == ["g-r", "r-z"]
    assert np.isfinite(ckpt["history"][0]["pretext_loss"]) and ckpt["aux"] is not None
    assert "queue" in ckpt["objective"]
    enc, _ = load_encoder(tmp_path / "m.pt")  # the encoder alone, projection and pretext heads dropped
    assert enc.dim == 32
    with pytest.raises(ValueError, match="other settings"):
        train(store, tmp_path / "m.pt", TrainConfig(epochs=2, batch_size=64, width=8, device="cpu"), resume=True,
              progress=False)
    ckpt["config"]["in_channels"] = 5
    torch.save(ckpt, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="trained on 5 bands but this survey has 3"):
        train(store, tmp_path / "m.pt", cfg, resume=True, progress=False)


def test_unknown_method_is_a_clear_error(workdir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        train(Store(workdir / "store"), tmp_path / "x.pt", TrainConfig(method="byol", device="cpu"), progress=False)


def _stop_after_first_chunk(start: int, end: int) -> None:
    if start == 0:
        raise _Killed


def test_embed_resumes_after_a_kill_and_reduces_with_pca(workdir: Path, tmp_path: Path) -> None:
    store = Store(workdir / "store")
    ckpt = workdir / "model.pt"
    reference = np.load(workdir / "embeddings.npy")  # built with the default morphometry weight, 0.7
    with pytest.raises(_Killed):
        embed(store, ckpt, tmp_path, torch.device("cpu"), progress=False, chunk_rows=100,
              on_chunk=_stop_after_first_chunk, morphometry_weight=0.7)
    assert json.loads((tmp_path / "embeddings.progress.json").read_text())["done"] == 100
    starts: list[int] = []
    embed(store, ckpt, tmp_path, torch.device("cpu"), progress=False, chunk_rows=100,
          on_chunk=lambda s, e: starts.append(s), morphometry_weight=0.7)
    assert starts == [100, 200]  # the first chunk was not encoded again
    assert np.allclose(np.load(tmp_path / "embeddings.npy"), reference, atol=1e-5)
    assert not (tmp_path / "embeddings.progress.json").exists()
    learned = reference[:, : -len(NAMES)] / np.linalg.norm(reference[:, : -len(NAMES)], axis=1, keepdims=True)

    embed(store, ckpt, tmp_path, torch.device("cpu"), progress=False, pca_dim=8)
    reduced, info = np.load(tmp_path / "embeddings.npy"), json.loads((tmp_path / "embeddings.json").read_text())
    assert reduced.shape == (len(store), 8) and info["dim"] == 8 and info["full_dim"] == learned.shape[1]
    assert np.allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5)
    assert 0 < info["pca"]["explained_variance"] <= 1
    assert np.allclose(np.load(tmp_path / "embeddings_full.npy"), learned, atol=1e-5)
    pca = np.load(tmp_path / "pca.npz")
    z = (learned - pca["mean"]) @ pca["components"].T
    assert np.allclose(z / np.linalg.norm(z, axis=1, keepdims=True), reduced, atol=1e-4)


def test_embed_refuses_a_checkpoint_for_other_bands(workdir: Path, tmp_path: Path) -> None:
    ckpt = torch.load(workdir / "model.pt", weights_only=False)
    ckpt["config"]["in_channels"] = 5
    ckpt["encoder"]["stem.0.weight"] = torch.zeros(16, 5, 3, 3)
    torch.save(ckpt, tmp_path / "five.pt")
    with pytest.raises(ValueError, match="5 bands but the survey has 3 \\(g, r, z\\)"):
        embed(Store(workdir / "store"), tmp_path / "five.pt", tmp_path, torch.device("cpu"), progress=False)
