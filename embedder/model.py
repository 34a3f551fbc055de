"""A small ResNet encoder for multi-band cutouts, plus the SimCLR projection head used only in training.

Adapted to small stamps as in Hayat et al. 2021: the first convolution takes any number of bands and there is
no early max-pool, so a 32-64 px cutout keeps its spatial detail in the stem.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from survey.workdir import atomic_path


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


# Residual blocks in each stage: small keeps a CPU's training within the demo's time budget; large (a ResNet-18's
# two blocks a stage) is the GPU's default, where compute is cheap (TrainConfig.arch).
ARCHS = {"small": 1, "large": 2}


class Encoder(nn.Module):
    """Cutout (B, bands, size, size) -> representation (B, 4*width)."""

    def __init__(self, in_channels: int, width: int = 32, stem_stride: int = 1, arch: str = "small") -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown encoder architecture {arch!r}; choose one of {', '.join(ARCHS)}")
        depth = ARCHS[arch]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        blocks = []
        for cin, cout in ((width, width), (width, 2 * width), (2 * width, 4 * width)):
            # Downsampling from the first block: a full-resolution stage costs 4x the compute on a CPU
            # for little gain on 32 px inputs.
            blocks += [BasicBlock(cin, cout, stride=2)] + [BasicBlock(cout, cout) for _ in range(depth - 1)]
        self.stages = nn.Sequential(*blocks, *(BasicBlock(4 * width, 4 * width) for _ in range(depth)))
        self.dim, self.in_channels = 4 * width, in_channels

    @classmethod
    def from_config(cls, cfg: dict) -> Encoder:
        """The (untrained) network a checkpoint's or an eval's ``cfg`` describes."""
        return cls(cfg["in_channels"], cfg.get("width", 32), cfg.get("stem_stride", 1), cfg.get("arch", "small"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)


class ProjectionHead(nn.Module):
    """The MLP on which the contrastive loss acts; dropped at encoding time (Chen et al. 2020)."""

    def __init__(self, dim: int, out: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def load_encoder(path: Path, device: torch.device | str = "cpu") -> tuple[Encoder, dict]:
    """Rebuild the encoder from a checkpoint written by ``train``; returns it in eval mode with its config."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    cfg = ckpt["config"]
    enc = Encoder.from_config(cfg)
    enc.load_state_dict(ckpt["encoder"])
    return enc.to(device).eval(), cfg


def adopt(checkpoint: Path, bands: list[str], noise: list[float], out: Path) -> dict:
    """Reuse an encoder trained on another survey for this one: write ``out``, a copy of ``checkpoint``.

    A survey of a few hundred cutouts is too small to train on alone. The encoder resamples any cutout to its
    input size, so only the number of bands must agree (a clear ValueError otherwise). The copy takes this
    survey's per-band noise, which scales pixels into the network's input (signal-to-noise units), so the model
    sees this survey's cutouts on the scale it learnt; the original's bands and file are kept under ``adopted``.
    """
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        cfg = ckpt["config"]
        theirs = int(cfg["in_channels"])
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{checkpoint} is not a galsearch encoder checkpoint ({exc})") from exc
    if theirs != len(bands):
        raise ValueError(f"the encoder in {checkpoint} takes {theirs} bands ({', '.join(cfg.get('bands', []))}) but "
                         f"this survey has {len(bands)} ({', '.join(bands)}): pick a model trained on "
                         f"{len(bands)}-band cutouts, or train one on this survey")
    ckpt["config"] = {**cfg, "bands": list(bands), "noise": [float(x) for x in noise],
                      "adopted": {"from": str(checkpoint), "bands": cfg.get("bands"), "noise": cfg.get("noise")}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return ckpt["config"]
