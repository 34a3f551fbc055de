"""Contrastive objectives (Hayat et al. 2021 use MoCo v2; SimCLR is the simpler alternative).

Both take two augmented views of the same galaxies and return a loss that is low when each view's
representation picks out its partner among other galaxies. They own every trainable or stateful part
besides the encoder (projection heads, momentum encoder, queue), so a checkpoint of the objective resumes
training exactly.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from embedder.model import Encoder, ProjectionHead


def full_precision(x: torch.Tensor) -> torch.autocast:
    """Leave mixed precision for the similarity logits: bfloat16 keeps 3 significant digits, too coarse for
    cosines divided by a temperature of 0.2 that must tell a positive from thousands of close negatives."""
    return torch.autocast(x.device.type, enabled=False)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy: each view must pick its partner among the 2B-1 others."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    with full_precision(z):
        sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = z1.shape[0]
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(nn.Module):
    """Chen et al. 2020: negatives are the other galaxies of the same batch."""

    def __init__(self, encoder: Encoder, temperature: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.dim)
        self.temperature = temperature

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and the first view's representation (for any auxiliary head)."""
        h1, h2 = self.encoder(v1), self.encoder(v2)
        return nt_xent(self.head(h1), self.head(h2), self.temperature), h1


class MoCo(nn.Module):
    """He et al. 2020 / Chen et al. 2020 (v2): a slowly moving key encoder and a queue of past keys as negatives.

    The queue gives thousands of negatives at any batch size, which is what makes MoCo work on a GPU with
    small batches or on a CPU. Keys are computed on the shuffled batch split into groups with their own
    BatchNorm statistics (the single-device form of "shuffle BN"), so a query cannot find its key through
    shared batch statistics. The loss is symmetrised over the two views.
    """

    def __init__(self, encoder: Encoder, temperature: float, queue_size: int = 4096, momentum: float = 0.99,
                 bn_groups: int = 4) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.dim)
        self.key_encoder = copy.deepcopy(encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in list(self.key_encoder.parameters()) + list(self.key_head.parameters()):
            p.requires_grad_(False)
        self.temperature, self.momentum, self.bn_groups = temperature, momentum, bn_groups
        out_dim = self.head.net[-1].out_features
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self) -> None:
        online = list(self.encoder.parameters()) + list(self.head.parameters())
        target = list(self.key_encoder.parameters()) + list(self.key_head.parameters())
        torch._foreach_mul_(target, self.momentum)
        torch._foreach_add_(target, online, alpha=1 - self.momentum)
        for b_online, b_target in zip(self.encoder.buffers(), self.key_encoder.buffers()):
            b_target.copy_(b_online)

    @torch.no_grad()
    def _keys(self, v: torch.Tensor) -> torch.Tensor:
        perm = torch.randperm(len(v), device=v.device)
        groups = [self.key_head(self.key_encoder(chunk)) for chunk in v[perm].chunk(self.bn_groups)]
        k = F.normalize(torch.cat(groups).float(), dim=1)
        return k[torch.argsort(perm)]

    def _infonce(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        q = F.normalize(q.float(), dim=1)
        with full_precision(q):
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T.float()], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))

    @torch.no_grad()
    def _enqueue(self, k: torch.Tensor) -> None:
        size, ptr = len(self.queue), int(self.queue_ptr)
        k = k[-size:]
        self.queue[(ptr + torch.arange(len(k), device=k.device)) % size] = k
        self.queue_ptr.fill_((ptr + len(k)) % size)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1, h2 = self.encoder(v1), self.encoder(v2)
        self._momentum_update()
        k1, k2 = self._keys(v1), self._keys(v2)
        queue = self.queue.clone()  # the loss's backward needs the negatives as they were before this enqueue
        loss = (self._infonce(self.head(h1), k2, queue) + self._infonce(self.head(h2), k1, queue)) / 2
        self._enqueue(torch.cat([k1, k2]))
        return loss, h1


METHODS = {"simclr": SimCLR, "moco": MoCo}
