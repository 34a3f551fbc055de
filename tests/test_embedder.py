from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedder.augment import add_noise, augment, psf_blur, redden, rotate_flip_shift
from embedder.encode import dihedral_views, encode_array
from embedder.model import Encoder, ProjectionHead, load_encoder
from embedder.preprocess import to_model_input
from embedder.store import Store
from embedder.train import TrainConfig, nt_xent, train


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
               lambda g: add_noise(x, noise, g), lambda g: augment(x, noise, g)):
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
    noise = np.full(3, 0.1, np.float32)
    e = encode_array(enc, x, noise, 32, torch.device("cpu"))
    e_rot = encode_array(enc, np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3))), noise, 32, torch.device("cpu"))
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
