"""Benchmark: contrastive training, encoding and morphometry throughput of the embedder on CPU or GPU.

    python -m bench.embed --n 4096 --epochs 2 --device auto --json

Uses a packed store given by ``--store`` or builds a synthetic one of ``--n`` noisy elliptical blobs (content does
not change throughput). Prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import print_result
from embedder.encode import embed, encode_array
from embedder.encoders import own_model
from embedder.morphometry import measure_store
from embedder.train import TrainConfig, resolve_device, train
from survey.store import CATALOG, IMAGES, META, Store


def synthetic_store(folder: Path, n: int, bands: int, size: int, seed: int = 0) -> Store:
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    images = np.lib.format.open_memmap(folder / IMAGES, mode="w+", dtype=np.float32, shape=(n, bands, size, size))
    for start in range(0, n, 1024):
        m = min(1024, n - start)
        a = rng.uniform(2, 8, (m, 1, 1, 1))
        q = rng.uniform(0.3, 1, (m, 1, 1, 1))
        blob = np.exp(-(xx**2 + (yy / q) ** 2) / (2 * a**2)) * rng.uniform(0.5, 5, (m, bands, 1, 1))
        images[start : start + m] = blob + rng.normal(0, 0.03, (m, bands, size, size))
    images.flush()
    Table({"id": np.arange(n)}).write(folder / CATALOG)
    meta = {"count": n, "shape": [bands, size, size], "bands": [f"b{i}" for i in range(bands)],
            "noise": [0.03] * bands}
    (folder / META).write_text(json.dumps(meta))
    return Store(folder)


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = Store(args.store) if args.store else synthetic_store(tmp, args.n, args.bands, args.size)
        cfg = TrainConfig(method=args.method, epochs=args.epochs, batch_size=args.batch_size,
                          input_size=args.input_size, width=args.width, stem_stride=args.stem_stride,
                          compile=args.compile, precision=args.precision, device=str(device))
        t0 = time.perf_counter()
        ckpt = train(store, tmp / "model.pt", cfg, progress=False)
        train_s = time.perf_counter() - t0
        history = torch.load(ckpt, weights_only=False)["history"]
        model = own_model(ckpt, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        if args.ray is None:
            emb = encode_array(model, store.images, batch_size=args.encode_batch)
        else:  # the whole `embed --ray` job, Ray's start-up included
            from embedder.distributed import ray_encoder

            remote = ray_encoder(store.root, ckpt, model.identity, args.ray or None, args.encode_batch,
                                 args.ray_actors)
            emb = np.load(embed(store, model, tmp, device, args.encode_batch, progress=False, encode_chunks=remote))
        if device.type == "cuda":
            torch.cuda.synchronize()
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        measure_store(store, progress=False)
        morphometry_s = time.perf_counter() - t0
        return {
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
            "n": len(store),
            "method": args.method,
            "input_size": args.input_size,
            "width": args.width,
            "stem_stride": args.stem_stride,
            "batch_size": args.batch_size,
            "train_s": round(train_s, 2),
            # the first epoch carries warm-up; report the best steady-state epoch too
            "train_pairs_per_s": round(max(h["images_per_s"] for h in history), 1),
            "train_loss_last": round(history[-1]["loss"], 4),
            "encode_s": round(encode_s, 2),
            "encode_images_per_s": round(len(store) / encode_s, 1),
            "encode_views_per_galaxy": 8,
            "encode_on": "ray, morphometry included" if args.ray is not None else "this process",
            "morphometry_images_per_s": round(len(store) / morphometry_s, 1),  # one process, on the CPU
            "embedding_dim": int(emb.shape[1]),
            "gpu_peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, help="packed store to read (default: synthetic)")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--bands", type=int, default=3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--encode-batch", type=int, default=512)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--stem-stride", type=int, default=1)
    p.add_argument("--method", choices=["simclr", "moco"], default="moco")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="training precision")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="encode through `embed --ray` (a local "
                   "cluster, or the one at ADDRESS); the store must be on storage every node mounts")
    p.add_argument("--ray-actors", type=int, help="encoder actors (default: one per GPU, else per CPU)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    print_result(run(args), args.json)


if __name__ == "__main__":
    main()
