"""Contrastive self-supervised training on the survey itself (Hayat et al. 2021): MoCo v2 or SimCLR.

No morphological label is read. Each step draws two augmented views of every galaxy in a batch and pulls their
representations together while pushing apart those of other galaxies; optionally an auxiliary head also
regresses catalog properties (magnitudes, colours, size) from the representation.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from embedder.augment import augment
from embedder.config import TrainConfig
from embedder.model import Encoder
from embedder.objectives import METHODS, MoCo
from embedder.preprocess import to_model_input
from embedder.pretext import pretext_columns, pretext_targets
from survey.store import Store
from survey.workdir import atomic_path


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no GPU is available; use --device cpu")
    return torch.device(name)


def _cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), read from Linux's /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    """Whether training runs under bfloat16 autocast.

    ``auto`` uses it on a GPU and on a CPU with native bfloat16 instructions, where it measured 1.6x the fp32
    training throughput (2-core AVX512-BF16 machine). Other CPUs would emulate bfloat16, so they stay in fp32.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and _cpu_has_bf16())


def _batches(n: int, batch_size: int, g: torch.Generator) -> list[np.ndarray]:
    perm = torch.randperm(n, generator=g).numpy()
    # Drop the ragged last batch: BatchNorm and the contrastive loss want full, equal-size batches.
    return [np.sort(perm[i : i + batch_size]) for i in range(0, n - batch_size + 1, batch_size)] or [np.sort(perm)]


class TrainingSet:
    """The cutouts one encoder trains on: one survey's store, or several surveys' stores read as one.

    Training one encoder on several surveys lets a small survey reuse it (``build --model``) with more to have
    learned from. The surveys must have as many bands (the network's input) and be of one kind (calibrated flux,
    or PNG/JPEG colour composites: they are augmented differently); a survey cut at another size is resampled to
    the first's as it is read. Each galaxy keeps its own survey's per-band noise, which scales its pixels into
    the network's input.
    """

    def __init__(self, stores: Store | Sequence[Store]) -> None:
        self.stores = [stores] if isinstance(stores, Store) else list(stores)
        if not self.stores:
            raise ValueError("no survey to train on")
        first = self.stores[0]
        for other in self.stores[1:]:
            if len(other.bands) != len(first.bands):
                raise ValueError(f"{other.root} has {len(other.bands)} bands ({', '.join(other.bands)}) but "
                                 f"{first.root} has {len(first.bands)} ({', '.join(first.bands)}): one encoder "
                                 "trains on surveys with as many bands")
            if other.raster != first.raster:
                kinds = {True: "PNG/JPEG colour composites", False: "calibrated flux (FITS)"}
                raise ValueError(f"{other.root} holds {kinds[other.raster]} but {first.root} holds "
                                 f"{kinds[first.raster]}: train an encoder for each kind")
        self.bands, self.raster = first.bands, first.raster
        self.size = tuple(first.meta["shape"][1:])
        self.starts = np.cumsum([0] + [len(st) for st in self.stores])
        self.noise = np.concatenate([np.repeat(st.noise[None], len(st), 0) for st in self.stores])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """The cutouts at sorted ``rows`` (numbered across the surveys in order), at the first survey's size."""
        parts = []
        for st, lo, hi in zip(self.stores, self.starts[:-1], self.starts[1:]):
            local = rows[(rows >= lo) & (rows < hi)] - lo
            if len(local):
                x = torch.from_numpy(np.ascontiguousarray(st.images[local]))
                parts.append(x if tuple(x.shape[-2:]) == self.size else
                             F.interpolate(x, size=self.size, mode="bilinear", antialias=True))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def describe(self) -> list[dict]:
        """Each survey's store, size, bands and noise, as a checkpoint records them."""
        return [{"store": str(st.root.resolve()), "count": len(st), "bands": st.bands, "noise": st.noise.tolist()}
                for st in self.stores]


def load_batches(data: TrainingSet, batches: list[np.ndarray], device: torch.device) -> Iterator[torch.Tensor]:
    """Yield each batch on ``device``, reading the next one from the memmaps while the current one trains.

    On a GPU the host copy is pinned so the transfer overlaps compute (``non_blocking``).
    """
    pin = device.type == "cuda"

    def read(idx: np.ndarray) -> torch.Tensor:
        x = data.read(idx)
        return x.pin_memory() if pin else x

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, batches[0]) if batches else None
        for i in range(len(batches)):
            x = pending.result()
            pending = pool.submit(read, batches[i + 1]) if i + 1 < len(batches) else None
            yield x.to(device, non_blocking=pin)


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:  # a killed job never leaves a half-written checkpoint
        torch.save(state, tmp)


def _sources(surveys: list[dict]) -> list[tuple[str, int]]:
    return [(s["store"], s["count"]) for s in surveys]


def _resumable(settings: dict) -> dict:
    """The settings a resumed run must share with the checkpoint (where it runs and how may change)."""
    return {k: v for k, v in settings.items() if k not in ("device", "compile", "precision")}


def build_objective(cfg: TrainConfig, bands: int, n: int, batch_size: int, device_type: str = "cpu") -> nn.Module:
    encoder = Encoder(bands, cfg.width, cfg.stem_stride, cfg.resolved_arch(device_type))
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.method == "moco":
        # A queue longer than the survey would hold keys of the very galaxy being queried.
        queue = max(batch_size, min(cfg.queue_size, n // 2))
        return MoCo(encoder, cfg.temperature, queue_size=queue, momentum=cfg.momentum)
    return METHODS[cfg.method](encoder, cfg.temperature)


def train(stores: Store | Sequence[Store], out: Path, cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None) -> Path:
    """Train an encoder on ``stores`` (one survey, or several as one ``TrainingSet``); checkpoint to ``out`` after
    every epoch and return its path.

    ``on_epoch_end`` receives each epoch's summary once its checkpoint is safely on disk.
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = TrainingSet(stores)
    store = data.stores[0]
    n = len(data)
    if n < 2:
        raise ValueError(f"contrastive training needs at least 2 galaxies; the survey has {n}")
    bands = len(data.bands)
    settings = cfg.run_settings(device.type, n, data.raster)
    epochs = settings["epochs"]
    batch_size = min(settings["batch_size"], n)
    objective = build_objective(cfg, bands, n, batch_size, device.type)
    aux_names: list[str] = []
    targets = None
    if cfg.pretext:
        if len(data.stores) > 1:
            raise ValueError("--pretext regresses one survey's catalog columns; train on one survey to use it")
        y, aux_names = pretext_targets(store.catalog, pretext_columns(store.catalog, cfg.pretext))
        targets = torch.from_numpy(y)
    aux = nn.Linear(objective.encoder.dim, len(aux_names)) if aux_names else None
    params = [p for p in objective.parameters() if p.requires_grad] + (list(aux.parameters()) if aux else [])
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps_per_epoch)) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    start_epoch, history = 0, []
    surveys = data.describe()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)  # a workdir for a shared encoder need not exist yet
    if resume and out.exists():
        ckpt = torch.load(out, map_location="cpu", weights_only=False)
        if ckpt["config"]["in_channels"] != bands:
            raise ValueError(f"{out} was trained on {ckpt['config']['in_channels']} bands but this survey has {bands} "
                             f"({', '.join(store.bands)}); train afresh without --resume")
        recorded = ckpt["config"].get("surveys")  # absent from checkpoints of one survey made before it was kept
        if _resumable(ckpt["config"].get("train", {})) != _resumable(settings) or (
                recorded is not None and _sources(recorded) != _sources(surveys)):
            raise ValueError(f"{out} was trained with other settings; resume with the same ones or start afresh")
        objective.load_state_dict(ckpt["objective"])
        if aux is not None:
            aux.load_state_dict(ckpt["aux"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
    objective.to(device).train()
    objective.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU alike
    if aux is not None:
        aux.to(device)
    step = torch.compile(objective) if cfg.compile else objective
    noise = torch.from_numpy(data.noise).to(device)
    bf16 = use_bf16(device, cfg.precision)
    # The first survey's bands and noise are the encoder's own; another survey encodes with its own noise
    # (build --model adopts the checkpoint with it).
    config = {"in_channels": bands, "width": cfg.width, "stem_stride": cfg.stem_stride, "arch": settings["arch"],
              "input_size": cfg.input_size, "noise": store.noise.tolist(), "bands": store.bands,
              "pretext_targets": aux_names, "train": settings, "surveys": surveys}
    for epoch in range(start_epoch, epochs):
        # Seeded per epoch so that a resumed run draws exactly the batches an uninterrupted one would.
        g_data = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        g_aug = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + epoch + 1)
        torch.manual_seed(cfg.seed * 1000 + epoch + 2)  # MoCo's key shuffle
        losses, aux_losses, t0, seen = [], [], time.perf_counter(), 0
        batches = _batches(n, batch_size, g_data)
        bar = tqdm(zip(batches, load_batches(data, batches, device)), total=len(batches),
                   desc=f"train {epoch + 1}/{epochs}", unit="batch", disable=not progress)
        for idx, x in bar:
            sigma = noise[torch.from_numpy(idx).to(device)]
            views = [to_model_input(augment(x, sigma, g_aug, settings["augment"]), sigma, cfg.input_size)
                     for _ in range(2)]
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, h = step(*views)
                if aux is not None:
                    y = targets[idx].to(device)
                    known = torch.isfinite(y)
                    aux_loss = F.mse_loss(aux(h).float()[known], y[known]) if known.any() else h.sum() * 0
                    loss = loss + cfg.pretext_weight * aux_loss
                    aux_losses.append(aux_loss.item())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            seen += len(idx)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        summary = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                   "images_per_s": seen / (time.perf_counter() - t0)}
        if aux_losses:
            summary["pretext_loss"] = float(np.mean(aux_losses))
        history.append(summary)
        _save(out, {"encoder": objective.encoder.state_dict(), "objective": objective.state_dict(),
                    "aux": aux.state_dict() if aux is not None else None, "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": history, "config": config})
        if on_epoch_end is not None:
            on_epoch_end(history[-1])
    if not out.exists():  # nothing left to do on resume of a finished run
        raise RuntimeError(f"no checkpoint written to {out}")
    return out
