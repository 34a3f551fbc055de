"""Encode every cutout of a store into an L2-normalised float32 embedding, written in chunks.

Embeddings are averaged over the eight 90-degree rotations and flips of each cutout: a galaxy seen upside
down is the same galaxy, and averaging makes the embedding exactly invariant to those symmetries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from embedder.checksum import file_sha256
from embedder.model import Encoder, load_encoder
from embedder.preprocess import to_model_input
from embedder.store import Store

EMBEDDINGS = "embeddings.npy"
IDS = "embedding_ids.npy"
INFO = "embeddings.json"


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(v, k, dims=(-2, -1)) for v in (x, torch.flip(x, dims=(-1,))) for k in range(4)]


@torch.no_grad()
def encode_array(encoder: Encoder, images: np.ndarray, noise: np.ndarray, input_size: int,
                 device: torch.device, batch_size: int = 512, out: np.ndarray | None = None,
                 progress: bool = False) -> np.ndarray:
    """Embed ``images`` (N, C, H, W flux) batch by batch into ``out`` (or a new array); rows L2-normalised."""
    encoder.eval()
    n = images.shape[0]
    out = np.empty((n, encoder.dim), np.float32) if out is None else out
    noise_t = torch.from_numpy(np.asarray(noise, np.float32)).to(device)
    for start in tqdm(range(0, n, batch_size), desc="embed", unit="batch", disable=not progress):
        x = torch.from_numpy(np.array(images[start : start + batch_size], dtype=np.float32)).to(device)
        x = to_model_input(x, noise_t, input_size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = torch.stack([encoder(v).float() for v in dihedral_views(x)]).mean(0)
        out[start : start + len(x)] = F.normalize(h, dim=1).cpu().numpy()
    return out


def embed(store: Store, checkpoint: Path, workdir: Path, device: torch.device, batch_size: int = 512,
          progress: bool = True) -> Path:
    """Write ``embeddings.npy`` (memmap, filled in chunks), ``embedding_ids.npy`` and ``embeddings.json``."""
    encoder, cfg = load_encoder(checkpoint, device)
    workdir = Path(workdir)
    if cfg["in_channels"] != store.meta["shape"][0]:
        raise ValueError(f"encoder expects {cfg['in_channels']} bands, survey has {store.meta['shape'][0]}")
    tmp = workdir / (EMBEDDINGS + ".partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(store), encoder.dim))
    encode_array(encoder, store.images, np.asarray(cfg["noise"]), cfg["input_size"], device, batch_size, out,
                 progress)
    out.flush()
    del out
    tmp.replace(workdir / EMBEDDINGS)
    np.save(workdir / IDS, store.ids)
    info = {"model_sha256": file_sha256(checkpoint), "dim": encoder.dim, "count": len(store),
            "normalised": True, "tta": "dihedral8"}
    (workdir / INFO).write_text(json.dumps(info, indent=2))
    return workdir / EMBEDDINGS
