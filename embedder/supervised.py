"""A supervised CNN trained from scratch on labels: the yardstick a self-supervised encoder must beat.

Same architecture, input transform and augmentations as the contrastive encoder, plus a linear classifier,
trained with cross-entropy on the labelled rows only. Hayat et al. 2021 compare against exactly this to show
that self-supervised features need 2-4x fewer labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedder.augment import augment
from embedder.encode import encode_array
from embedder.encoders import network_model
from embedder.model import Encoder
from embedder.preprocess import to_model_input
from embedder.train import resolve_device, use_bf16
from survey.store import Store


def train_supervised(store: Store, rows: np.ndarray, labels: np.ndarray, arch: dict, epochs: int = 30,
                     batch_size: int = 128, seed: int = 0, device: str = "auto",
                     max_steps: int = 3000) -> tuple[Encoder, nn.Linear, list[str]]:
    """Fit encoder + linear classifier on ``store.images[rows]`` with ``labels`` (one per row).

    ``arch`` holds the encoder's constructor arguments and input size. The step count follows ``epochs`` over
    the labelled rows, with a floor of 3 steps per epoch so that 1 % of the labels still gets a real fit, and a
    ceiling so that 100 % of a large survey stays affordable.
    """
    dev = resolve_device(device)
    torch.manual_seed(seed)
    classes = sorted(set(labels.tolist()))
    y_all = torch.tensor([classes.index(v) for v in labels])
    encoder = Encoder.from_config(arch).to(dev)
    clf = nn.Linear(encoder.dim, len(classes)).to(dev)
    params = list(encoder.parameters()) + list(clf.parameters())
    steps = int(np.clip(epochs * len(rows) / batch_size, 3 * epochs, max_steps))
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    noise = torch.from_numpy(store.noise).to(dev)
    g = torch.Generator().manual_seed(seed)
    g_aug = torch.Generator(device=dev).manual_seed(seed + 1)
    encoder.train()
    for _ in range(steps):
        pick = torch.randint(len(rows), (min(batch_size, len(rows)),), generator=g).numpy()
        x = torch.from_numpy(np.ascontiguousarray(store.images[rows[pick]])).to(dev)
        x = to_model_input(augment(x, noise, g_aug), noise, arch["input_size"])
        y = y_all[pick].to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16(dev)):
            loss = F.cross_entropy(clf(encoder(x)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return encoder.eval(), clf.eval(), classes


@torch.no_grad()
def predict(encoder: Encoder, clf: nn.Linear, classes: list[str], store: Store, rows: np.ndarray,
            input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and the encoder's (rotation-averaged) features for ``store.images[rows]``."""
    dev = next(clf.parameters()).device
    model = network_model(encoder, input_size, store.noise, {"kind": "supervised", "source": "labels"}, dev)
    raw = encode_array(model, store.images[rows], normalise=False)
    pred = clf(torch.from_numpy(raw).to(dev)).argmax(1).cpu().numpy()
    return np.asarray(classes)[pred], raw / np.linalg.norm(raw, axis=1, keepdims=True).clip(1e-12)
