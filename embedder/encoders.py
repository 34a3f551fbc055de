"""The encoders a survey can be embedded with: its own contrastive encoder, or a model made elsewhere.

A foundation model trained on millions of galaxies (Zoobot, Walmsley et al. 2022; Stein et al. 2021) often finds
better look-alikes in a small survey than an encoder trained on that survey alone. ``--encoder SPEC`` says which:

- ``own`` — the survey's own checkpoint (``model.pt``, from ``galsearch train``);
- ``file:PATH`` — a model file mapping a ``(B, C, H, W)`` float tensor to ``(B, D)`` features: a ``torch.export``
  program (``.pt2``), a TorchScript file (``.pt``, ``.ts``, ``.jit``) or an ONNX file (``.onnx``, run by
  onnxruntime), with the input it expects described by its :class:`InputContract` (a JSON sidecar beside the file,
  ``PATH`` with ``.json`` for its suffix, and/or flags);
- ``timm:NAME`` / ``hf-hub:REPO`` — a timm model (``timm`` is an optional extra), exported once to a ``.pt2``
  program in the workdir (``export_timm``) so later jobs (``add``, ``embed --ray``) need neither timm nor the hub.

Every kind is opened into one :class:`FeatureModel`, which applies the contract to the packed store's pixels and
runs the network; ``embedder.encode`` never asks which kind it holds. A model is copied into the workdir with its
identity (kind, source, sha256, contract) in ``encoder.json`` (``survey.workdir.ENCODER_INFO``), which the
embeddings and the index manifest repeat.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from embedder.model import Encoder, load_encoder
from embedder.preprocess import resample, stretch
from survey.checksum import file_sha256
from survey.workdir import ENCODER_INFO, Workdir, atomic_path, write_text

KINDS = ("own", "file", "timm", "hf-hub")
FORMATS = {".pt2": "export", ".pt": "torchscript", ".ts": "torchscript", ".jit": "torchscript", ".onnx": "onnx"}
EXPORT_BATCH = 2  # the example batch a timm model is exported with (its batch dimension stays dynamic)


class EncoderError(ValueError):
    """A model that cannot encode this survey: unreadable, the wrong input or output shape, or a bad contract."""


class InputContract(BaseModel):
    """What a model expects as input, applied in this order to the store's pixels (bands first, as packed).

    ``channels`` picks and orders the store's bands by name (``["R", "G", "B"]`` for an ImageNet-style model on a
    colour-JPEG survey, packed blue first); ``scaling`` is ``unit`` (the stored values: 0-1 for PNG/JPEG) or
    ``asinh`` (galsearch's own stretch, ``asinh(flux / 3 sigma_band)``); ``mean``/``std`` then standardise each
    channel (ImageNet's, for instance); the result is resampled to ``size`` px a side (None: the stored size).
    """

    size: int | None = None
    channels: list[str] | None = None
    scaling: Literal["unit", "asinh"] = "unit"
    mean: list[float] | None = None
    std: list[float] | None = None

    def bands_of(self, store_bands: list[str]) -> list[int]:
        """The store rows the model's channels are, in its order; a clear error for a band the store lacks."""
        if self.channels is None:
            return list(range(len(store_bands)))
        lower = [b.lower() for b in store_bands]
        missing = [c for c in self.channels if c.lower() not in lower]
        if missing:
            raise EncoderError(f"the encoder takes bands {', '.join(self.channels)} but the survey has "
                               f"{', '.join(store_bands)} (no {', '.join(missing)}); set the contract's channels")
        return [lower.index(c.lower()) for c in self.channels]

    def check(self, channels: int) -> None:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) not in (1, channels):
                raise EncoderError(f"the input contract's {name} has {len(values)} values for {channels} channels")
        if self.std is not None and min(self.std) <= 0:
            raise EncoderError("the input contract's std must be positive")
        if self.size is not None and self.size < 1:
            raise EncoderError("the input contract's size must be a positive number of pixels")


@dataclass(frozen=True)
class EncoderSpec:
    """``--encoder``, parsed: its kind and what follows the colon (a path or a model name)."""

    kind: str
    target: str = ""

    @classmethod
    def parse(cls, text: str) -> EncoderSpec:
        text = text.strip()
        if text == "own":
            return cls("own")
        kind, sep, target = text.partition(":")
        if not sep or kind not in KINDS[1:] or not target:
            raise EncoderError(f"unknown encoder {text!r}: use own, file:PATH, timm:NAME or hf-hub:REPO")
        return cls(kind, target)

    def __str__(self) -> str:
        return self.kind if self.kind == "own" else f"{self.kind}:{self.target}"


class FeatureModel:
    """A network and the input contract it was made for: store pixels in, ``(B, dim)`` features out."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], contract: InputContract, in_channels: int,
                 identity: dict, noise: np.ndarray | None = None, batch: int | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.forward, self.contract, self.in_channels = forward, contract, in_channels
        self.identity, self.batch, self.device = identity, batch, torch.device(device)
        self.noise = None if noise is None else torch.as_tensor(np.asarray(noise, np.float32), device=self.device)
        contract.check(in_channels)
        self.dim = self._probe_dim()
        self.identity = {**identity, "dim": self.dim}

    def _probe_dim(self) -> int:
        size = self.contract.size or 32
        try:
            out = self._run(torch.zeros(self.batch or 1, self.in_channels, size, size, device=self.device))
        except Exception as exc:  # a foreign model may raise anything on a wrong input; name the model and why
            raise EncoderError(f"the encoder {self.identity.get('source', '')} failed on a "
                               f"({self.batch or 1}, {self.in_channels}, {size}, {size}) input (is that the number "
                               f"of bands and the size it takes? set them in its contract): {exc}") from exc
        if out.ndim != 2:
            raise EncoderError(f"the encoder {self.identity.get('source', '')} returns features of shape "
                               f"{tuple(out.shape)}; galsearch needs (batch, D): pool and flatten its output")
        return int(out.shape[1])

    def check_survey(self, store_bands: list[str]) -> list[int]:
        """The store rows to feed it, after checking the survey has as many bands as it takes."""
        rows = self.contract.bands_of(store_bands)
        if len(rows) != self.in_channels:
            raise EncoderError(f"the encoder {self.identity.get('source', '')} takes {self.in_channels} bands but "
                               f"the survey has {len(store_bands)} ({', '.join(store_bands)}): pick a model made "
                               f"for {len(store_bands)}-band cutouts, or name the bands it takes in its contract")
        return rows

    def prepare(self, flux: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Store pixels (B, bands, H, W) on the model's device -> the model's input, as its contract says."""
        c = self.contract
        x = flux[:, rows] if rows != list(range(flux.shape[1])) else flux
        if c.scaling == "asinh":
            if self.noise is None:
                raise EncoderError("an asinh contract needs the survey's per-band noise")
            x = stretch(x, self.noise[rows])
        x = resample(x, c.size)
        # Standardising after resampling is the same as before it (both are per channel, resampling linear).
        if c.mean is not None:
            x = x - torch.tensor(c.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        if c.std is not None:
            x = x / torch.tensor(c.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return x

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is None or len(x) == self.batch:
            return self.forward(x)
        # A model exported for one batch size: feed it whole batches, padding the last with zeros.
        pieces = []
        for start in range(0, len(x), self.batch):
            part = x[start : start + self.batch]
            pad = self.batch - len(part)
            if pad:
                part = torch.cat([part, part.new_zeros(pad, *part.shape[1:])])
            pieces.append(self.forward(part)[: self.batch - pad])
        return torch.cat(pieces)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


# --- opening each kind -------------------------------------------------------------------------------------------


def network_model(encoder: Encoder, input_size: int, noise: np.ndarray, identity: dict,
                  device: torch.device | str = "cpu") -> FeatureModel:
    """A live own-architecture encoder: asinh input in units of ``noise``, resampled to ``input_size``."""
    contract = InputContract(size=input_size, scaling="asinh")
    return FeatureModel(encoder.eval(), contract, encoder.in_channels, {**identity, "contract": contract.model_dump()},
                        noise, device=device)


def own_model(checkpoint: Path, device: torch.device | str = "cpu") -> FeatureModel:
    """The survey's own encoder, with the noise it was trained (or adopted) with."""
    encoder, cfg = load_encoder(checkpoint, device)
    identity = {"kind": "own", "source": str(checkpoint), "format": "checkpoint", "sha256": file_sha256(checkpoint)}
    return network_model(encoder, cfg["input_size"], np.asarray(cfg["noise"]), identity, device)


def untrained_model(in_channels: int, noise: np.ndarray, cfg: dict | None = None, seed: int = 0) -> FeatureModel:
    """The own encoder's architecture with random weights (``eval``'s yardstick), sized as ``cfg`` says."""
    cfg = cfg or {}
    torch.manual_seed(seed)
    encoder = Encoder.from_config({**cfg, "in_channels": in_channels}).eval()
    return network_model(encoder, cfg.get("input_size", 32), noise, {"kind": "untrained", "source": "random weights"})


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _open_export(path: Path, device: torch.device) -> tuple[Callable, int | None, int | None, int | None]:
    program = torch.export.load(str(path))
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"
                    and n.name in set(program.graph_signature.user_inputs)]
    if len(placeholders) != 1:
        raise EncoderError(f"{path} takes {len(placeholders)} inputs; galsearch feeds one (B, C, H, W) tensor")
    shape = placeholders[0].meta["val"].shape
    if len(shape) != 4:
        raise EncoderError(f"{path} takes a rank-{len(shape)} input; galsearch feeds (B, C, H, W)")
    module = program.module().to(device)
    return module, _static(shape[0]), _static(shape[1]), _static(shape[2])


def _open_onnx(path: Path, device: torch.device) -> tuple[Callable, int | None, int | None, int | None]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EncoderError("ONNX models need onnxruntime: pip install 'galsearch[onnx]'") from exc
    providers = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), providers=[p for p in providers if p in ort.get_available_providers()])
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise EncoderError(f"{path} takes {[tuple(i.shape) for i in inputs]}; galsearch feeds one (B, C, H, W) tensor")
    name, shape = inputs[0].name, inputs[0].shape

    def forward(x: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(None, {name: x.detach().float().cpu().numpy()})[:1]
        return torch.from_numpy(np.asarray(out)).to(x.device)

    return forward, _static(shape[0]), _static(shape[1]), _static(shape[2])


def _open_torchscript(path: Path, device: torch.device) -> tuple[Callable, int | None, int | None, int | None]:
    module = torch.jit.load(str(path), map_location=device).eval()
    return module, None, None, None


OPENERS = {"export": _open_export, "onnx": _open_onnx, "torchscript": _open_torchscript}


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EncoderError(f"{path}: a model file must end in {', '.join(FORMATS)} (torch.export program, "
                           "TorchScript or ONNX)")
    return fmt


def sidecar_of(path: Path) -> Path:
    """Where a model file's input contract lies: the same name with ``.json`` for its suffix."""
    return path.with_suffix(".json")


def read_contract(path: Path, overrides: dict | None = None) -> InputContract:
    """The contract of model file ``path``: its sidecar's (if any), with ``overrides`` (flags) on top."""
    data: dict = {}
    sidecar = sidecar_of(path)
    if sidecar.exists():
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EncoderError(f"{sidecar} is not a readable JSON input contract ({exc})") from exc
        if not isinstance(data, dict):
            raise EncoderError(f"{sidecar} must hold a JSON object (size, channels, scaling, mean, std)")
        data = data.get("contract", data)
    try:
        return InputContract(**{**data, **{k: v for k, v in (overrides or {}).items() if v is not None}})
    except (ValidationError, TypeError) as exc:
        raise EncoderError(f"bad input contract for {path}: {exc}") from exc


def file_model(path: Path, contract: InputContract, device: torch.device | str = "cpu",
               noise: np.ndarray | None = None, identity: dict | None = None,
               bands: int | None = None) -> FeatureModel:
    """Open a model file of any supported format; errors name the file and what is wrong with it. ``bands`` (the
    survey's count) is what a model that does not say how many it takes (TorchScript) is tried with."""
    path, device = Path(path), torch.device(device)
    if not path.is_file():
        raise EncoderError(f"no model file at {path}")
    fmt = format_of(path)
    try:
        forward, batch, channels, size = OPENERS[fmt](path, device)
    except EncoderError:
        raise
    except Exception as exc:  # corrupt or foreign bytes surface as many exception types, by format
        raise EncoderError(f"{path} could not be read as a {fmt} model ({type(exc).__name__}: {exc})") from exc
    if contract.size is None and size is not None:
        contract = contract.model_copy(update={"size": size})
    if channels is None:  # TorchScript does not say: the contract's channels, else the survey's band count
        channels = len(contract.channels) if contract.channels else bands
    if channels is None:
        raise EncoderError(f"{path} does not say how many bands it takes: name them in its contract's channels")
    identity = {"kind": "file", "source": str(path), "format": fmt, "sha256": file_sha256(path),
                **(identity or {}), "in_channels": channels, "contract": contract.model_dump()}
    return FeatureModel(forward, contract, channels, identity, noise, batch, device)


# --- a workdir's encoder -----------------------------------------------------------------------------------------


def workdir_identity(workdir: Workdir) -> dict:
    """``encoder.json`` of ``workdir``; a workdir without one is embedded with its own ``model.pt``."""
    path = workdir / ENCODER_INFO
    if path.exists():
        return json.loads(path.read_text())
    return {"kind": "own", "file": workdir.model.name, "format": "checkpoint"}


def open_workdir(workdir: Workdir | Path, device: torch.device | str = "cpu",
                 noise: np.ndarray | None = None) -> FeatureModel:
    """The encoder ``workdir`` is embedded with, ready to run on ``device``."""
    workdir = Workdir.of(workdir)
    if not workdir.encoder.exists():
        raise FileNotFoundError(f"no encoder in {workdir}: run `galsearch train`, or embed with --encoder")
    return reopen(workdir.encoder, workdir_identity(workdir), device, noise)


def reopen(path: Path, identity: dict, device: torch.device | str = "cpu",
           noise: np.ndarray | None = None) -> FeatureModel:
    """The model at ``path`` as ``identity`` (an ``encoder.json``) describes it."""
    if identity["kind"] == "own":
        return own_model(path, device)
    return file_model(path, InputContract(**identity["contract"]), device, noise,
                      {k: identity[k] for k in ("kind", "source") if k in identity}, identity.get("in_channels"))


def from_bytes(data: bytes, identity: dict, device: torch.device | str = "cpu",
               noise: np.ndarray | None = None) -> FeatureModel:
    """Reopen a model shipped as its file's bytes and identity (a Ray worker without the workdir's disk)."""
    suffix = ".pt" if identity["kind"] == "own" else Path(identity["file"]).suffix
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"encoder{suffix}"
        path.write_bytes(data)
        return reopen(path, identity, device, noise)


def _place(source: Path, target: Path) -> None:
    """``target`` holds ``source``'s bytes: a hard link where the filesystem allows (no second copy), else a copy."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def onnx_external_data(path: Path) -> list[str]:
    """The files an ONNX model keeps its weights in beside itself (large models, and torch's exporter by default),
    relative to its folder; none for other formats, or when the onnx package is not there to read them."""
    if format_of(path) != "onnx":
        return []
    try:
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    except ImportError:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({ExternalDataInfo(t).location for t in graph.initializer if uses_external_data(t)})


def merge_onnx(source: Path, target: Path) -> None:
    """Write ``source`` and its external weights as one self-contained ONNX file (a workdir's encoder is one file,
    shipped whole to Ray workers); protobuf caps such a file at 2 GB."""
    import onnx

    size = source.stat().st_size + sum((source.parent / n).stat().st_size for n in onnx_external_data(source))
    if size >= 2**31:
        raise EncoderError(f"{source} and its weights are {size / 2**30:.1f} GB, over ONNX's 2 GB single-file limit: "
                           "export the model as a .pt2 torch.export program instead")
    with atomic_path(target) as tmp:
        onnx.save(onnx.load(str(source)), str(tmp))


def install(workdir: Workdir | Path, spec: EncoderSpec, contract_flags: dict | None = None,
            weights: Path | None = None, device: torch.device | str = "cpu",
            noise: np.ndarray | None = None, store_bands: list[str] | None = None) -> dict:
    """Make ``spec`` the encoder of ``workdir``: check it opens and fits the survey, copy (or export) it into the
    workdir and write ``encoder.json``; returns that identity. ``own`` only records the workdir's ``model.pt``."""
    workdir = Workdir.of(workdir)
    workdir.root.mkdir(parents=True, exist_ok=True)
    if spec.kind == "own":
        (workdir / ENCODER_INFO).unlink(missing_ok=True)
        return workdir_identity(workdir)
    if spec.kind == "file":
        source = Path(spec.target).expanduser()
        contract = read_contract(source, contract_flags)
        model = file_model(source, contract, device, noise, bands=len(store_bands) if store_bands else None)
        target = workdir / f"encoder{source.suffix.lower()}"
        extra: dict = {"source_sha256": file_sha256(source)}  # differs from sha256 where ONNX weights were merged
    else:
        target = workdir / "encoder.pt2"
        contract = export_timm(spec, target, contract_flags, weights)
        model = file_model(target, contract, device, noise)
        extra = {"weights_sha256": file_sha256(weights)} if weights else {}
    if store_bands is not None:
        model.check_survey(store_bands)
    if spec.kind == "file" and onnx_external_data(source):
        merge_onnx(source, target)
        model = file_model(target, contract, device, noise, bands=len(store_bands) if store_bands else None)
    elif spec.kind == "file":
        _place(source, target)
    identity = {**model.identity, "kind": spec.kind, "source": str(spec), "file": target.name, **extra}
    write_text(workdir / ENCODER_INFO, json.dumps(identity, indent=2))
    return identity


# --- timm and the Hugging Face hub -------------------------------------------------------------------------------


def timm_contract(pretrained_cfg: dict, overrides: dict | None = None) -> InputContract:
    """A timm model's input as its pretrained config gives it: size, mean and std over 0-1 RGB pixels."""
    size = pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    base = {"size": int(size), "channels": ["R", "G", "B"], "scaling": "unit",
            "mean": [float(v) for v in pretrained_cfg.get("mean", ())] or None,
            "std": [float(v) for v in pretrained_cfg.get("std", ())] or None}
    return InputContract(**{**base, **{k: v for k, v in (overrides or {}).items() if v is not None}})


def export_timm(spec: EncoderSpec, out: Path, contract_flags: dict | None = None,
                weights: Path | None = None) -> InputContract:
    """Build ``spec`` (``timm:NAME`` or ``hf-hub:REPO``) with timm, headless, and save it as a ``torch.export``
    program at ``out`` with its contract in the sidecar. ``weights`` (a local file) replaces the download."""
    try:
        import timm
    except ImportError as exc:
        raise EncoderError(f"{spec} needs timm (and torchvision): pip install 'galsearch[timm]', or export the "
                           "model on a machine that has them (`galsearch export-encoder`) and use file:PATH") from exc
    name = spec.target if spec.kind == "timm" else f"hf-hub:{spec.target}"
    kwargs: dict = {"pretrained": True, "num_classes": 0}
    if weights is not None:
        if not Path(weights).is_file():
            raise EncoderError(f"no weights file at {weights}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        model = timm.create_model(name, **kwargs).eval()
    except Exception as exc:  # unknown names, no network, wrong weights: timm raises many kinds
        raise EncoderError(f"timm could not build {name} ({type(exc).__name__}: {exc})") from exc
    contract = timm_contract(dict(getattr(model, "pretrained_cfg", {}) or {}), contract_flags)
    channels = len(contract.channels or ["R", "G", "B"])
    export_module(model, out, channels, contract.size or 224, contract, {"source": str(spec)})
    return contract


def export_module(module: torch.nn.Module, out: Path, channels: int, size: int, contract: InputContract,
                  about: dict | None = None) -> Path:
    """Save ``module`` as a ``torch.export`` program at ``out`` (batch dimension dynamic) with its sidecar, the
    portable form of an encoder: it runs with torch alone, on any machine."""
    example = torch.zeros(EXPORT_BATCH, channels, size, size)
    program = torch.export.export(module.eval(), (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 16)},))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.export.save(program, str(tmp))
    write_text(sidecar_of(out), json.dumps({**(about or {}), "contract": contract.model_dump()}, indent=2))
    return out

