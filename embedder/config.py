"""The knobs of the embedder's jobs, torch-free: the CLI's settings extend these types without loading torch."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class TrainConfig(BaseModel):
    """Every knob of a training run (the CLI's settings extend this type, so each is set once, by name)."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    method: str = "moco"  # moco | simclr (measured on the demo: MoCo 0.809 vs SimCLR 0.789 precision@10)
    epochs: int | None = None  # None: epochs_cpu or epochs_gpu, whichever device trains, or more (min_train_steps)
    epochs_cpu: int = 12
    epochs_gpu: int = 200  # a GPU trains ~50x faster: spend it on a longer schedule
    batch_size: int | None = None  # None: batch_size_cpu or batch_size_gpu, whichever device trains
    # A CPU's short schedule gets twice the optimiser steps from the same images/s at 128 (measured, 12 epochs,
    # demo seeds 0 and 1: precision@10 0.832 -> 0.838 and 0.833 -> 0.838, #merger second expansion +0.02, +0.04).
    batch_size_cpu: int = 128
    batch_size_gpu: int = 256  # a GPU is busier with larger batches, and 200 epochs are steps enough
    learning_rate: float = 2e-3
    temperature: float = 0.2
    input_size: int = 32  # the encoder sees cutouts resampled to this size (CPU throughput; see embedder/model.py)
    width: int = 32
    stem_stride: int = 1  # 2 lets a 64 px input cost about what a 32 px one does
    arch: Literal["auto", "small", "large"] = "auto"  # embedder.model.ARCHS; auto: small on a CPU, large on a GPU
    queue_size: int = 4096  # MoCo negatives (capped below the survey size)
    momentum: float = 0.99  # MoCo key-encoder EMA
    # The views' augmentations (embedder/augment.py): flux (FITS: reddening, flux-dependent noise), raster
    # (PNG/JPEG: colour jitter, sky noise alone), or auto, which picks by how the survey was ingested.
    augment: Literal["auto", "flux", "raster"] = "auto"
    pretext: str = ""  # auxiliary regression of catalog columns: "" off, "auto", or "col1,col2"
    pretext_weight: float = 0.5
    compile: bool = False  # torch.compile the training step
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on a GPU or a CPU with native bf16
    # Below this many cutouts the encoder trained on the survey alone learns next to nothing (README, "Small
    # surveys"): training still runs, with a warning that suggests reusing a larger survey's encoder (--model).
    min_train_cutouts: int = 500
    # With the default schedule a survey smaller than the demo gets as many optimiser steps as the demo's 12 CPU
    # epochs (5,000 / 128 x 12 = 468), so at most the demo's training time: a 2,000-galaxy survey trains 32 epochs,
    # not 12 (README, "How the embedding is made": measured on gz2-spirals).
    min_train_steps: int = 468

    def resolved_epochs(self, device_type: str, n: int | None = None) -> int:
        """The epochs to train ``n`` galaxies for: as set, else the device's default, raised for a small survey
        until it makes ``min_train_steps`` optimiser steps."""
        epochs = _per_device(self.epochs, self.epochs_cpu, self.epochs_gpu, device_type)
        if self.epochs is not None or n is None:
            return epochs
        steps_per_epoch = max(1, n // min(self.resolved_batch_size(device_type), n))
        return max(epochs, -(-self.min_train_steps // steps_per_epoch))

    def resolved_batch_size(self, device_type: str) -> int:
        return _per_device(self.batch_size, self.batch_size_cpu, self.batch_size_gpu, device_type)

    def resolved_arch(self, device_type: str) -> str:
        return self.arch if self.arch != "auto" else "large" if device_type == "cuda" else "small"

    def resolved_augment(self, raster: bool) -> str:
        """The augmentations for a survey of colour composites (``raster``) or of calibrated flux."""
        return self.augment if self.augment != "auto" else "raster" if raster else "flux"

    def run_settings(self, device_type: str, n: int | None = None, raster: bool = False) -> dict:
        """What one run of ``n`` galaxies on ``device_type`` trains with, as its checkpoint records it: the schedule
        and augmentations resolved, and none of the per-device defaults or the small-survey thresholds, which do
        not change what is trained."""
        unused = {"epochs_cpu", "epochs_gpu", "batch_size_cpu", "batch_size_gpu", "min_train_cutouts",
                  "min_train_steps"}
        return {**self.model_dump(exclude=unused), "epochs": self.resolved_epochs(device_type, n),
                "batch_size": self.resolved_batch_size(device_type), "augment": self.resolved_augment(raster),
                "arch": self.resolved_arch(device_type)}


def _per_device(value: int | None, cpu: int, gpu: int, device_type: str) -> int:
    """The value set, else the training device's default: a GPU's cheap steps buy a longer schedule."""
    return value if value is not None else gpu if device_type == "cuda" else cpu


class EmbedConfig(BaseModel):
    """The embedding job's knobs (the CLI's settings extend this type)."""

    pca: int = 0  # reduce embeddings to this many PCA components for search (0 = keep all)
    # Share of a search distance given to classical morphometry (asymmetry, concentration, Gini, M20, size,
    # colours; see embedder/morphometry.py), appended to the learned embedding; 0 searches the learned embedding
    # alone. Measured on the demo survey: 0.7 lifts rare-class recall@50 (rings 0.28 -> 0.64, mergers 0.17 -> 0.28).
    morphometry_weight: float = Field(default=0.7, ge=0, le=10)
    # What encodes the cutouts (embedder/encoders.py): own | file:PATH | timm:NAME | hf-hub:REPO. None keeps the
    # workdir's (its encoder.json), else its own trained model.pt.
    encoder: str | None = None
    encoder_weights: Path | None = None  # a timm model's weights as a local file, instead of a download
    # The input contract of a foreign encoder, over its sidecar JSON's (embedder.encoders.InputContract).
    encoder_size: int | None = None
    encoder_channels: list[str] | None = None
    encoder_scaling: Literal["unit", "asinh"] | None = None
    encoder_mean: list[float] | None = None
    encoder_std: list[float] | None = None

    def contract_flags(self) -> dict:
        """The contract fields set here, by the contract's names."""
        return {name: getattr(self, f"encoder_{name}") for name in ("size", "channels", "scaling", "mean", "std")}
