"""Contrastive self-supervised training (SimCLR / NT-Xent, as in Hayat et al. 2021) on the survey itself.

No labels are read. Each step draws two augmented views of every galaxy in a batch and pulls their
representations together while pushing apart those of other galaxies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from embedder.augment import augment
from embedder.model import Encoder, ProjectionHead
from embedder.preprocess import to_model_input
from embedder.store import Store


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    temperature: float = 0.2
    input_size: int = 32
    width: int = 32
    seed: int = 0
    device: str = "auto"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no GPU is available; use --device cpu")
    return torch.device(name)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy: each view must pick its partner among the 2B-1 others."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = z1.shape[0]
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def _batches(n: int, batch_size: int, g: torch.Generator) -> list[np.ndarray]:
    perm = torch.randperm(n, generator=g).numpy()
    # Drop the ragged last batch: BatchNorm and the contrastive loss want full, equal-size batches.
    return [np.sort(perm[i : i + batch_size]) for i in range(0, n - batch_size + 1, batch_size)] or [np.sort(perm)]


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a killed job never leaves a half-written checkpoint


def train(store: Store, out: Path, cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None) -> Path:
    """Train an encoder on ``store``; checkpoint to ``out`` after every epoch and return its path.

    ``on_epoch_end`` receives each epoch's summary once its checkpoint is safely on disk.
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    n = len(store)
    bands = store.meta["shape"][0]
    encoder, head = Encoder(bands, cfg.width), ProjectionHead(4 * cfg.width)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-4)
    batch_size = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps_per_epoch)) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    start_epoch, history = 0, []
    out = Path(out)
    if resume and out.exists():
        ckpt = torch.load(out, map_location="cpu", weights_only=False)
        encoder.load_state_dict(ckpt["encoder"])
        head.load_state_dict(ckpt["head"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
    encoder.to(device).train()
    head.to(device).train()
    encoder.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU alike
    noise = torch.from_numpy(store.noise).to(device)
    images = store.images
    config = {"in_channels": bands, "width": cfg.width, "input_size": cfg.input_size, "noise": store.noise.tolist(),
              "bands": store.bands, "seed": cfg.seed, "epochs": cfg.epochs, "temperature": cfg.temperature}
    for epoch in range(start_epoch, cfg.epochs):
        # Seeded per epoch so that a resumed run draws exactly the batches an uninterrupted one would.
        g_data = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        g_aug = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + epoch + 1)
        losses, t0, seen = [], time.perf_counter(), 0
        bar = tqdm(_batches(n, batch_size, g_data), desc=f"train {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress)
        for idx in bar:
            x = torch.from_numpy(np.ascontiguousarray(images[idx])).to(device, non_blocking=True)
            views = [to_model_input(augment(x, noise, g_aug), noise, cfg.input_size) for _ in range(2)]
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                z1, z2 = (head(encoder(v)) for v in views)
            loss = nt_xent(z1, z2, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            seen += len(idx)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "images_per_s": seen / (time.perf_counter() - t0)})
        _save(out, {"encoder": encoder.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": history, "config": config})
        if on_epoch_end is not None:
            on_epoch_end(history[-1])
    if not out.exists():  # nothing left to do on resume of a finished run
        raise RuntimeError(f"no checkpoint written to {out}")
    return out
