"""The evaluation figure: label efficiency of every representation, and a 2-D map of the learned embedding.

UMAP is used when umap-learn is installed (it keeps global structure better); otherwise scikit-learn's t-SNE.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a compute node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAP_MAX_POINTS = 5000


def project_2d(vectors: np.ndarray, seed: int, method: str = "auto") -> tuple[np.ndarray, str]:
    """2-D coordinates of ``vectors`` and the name of the method that made them."""
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise ValueError("umap-learn is not installed; pip install umap-learn or use --map tsne") from None
        else:
            reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed)
            with warnings.catch_warnings():  # a seeded UMAP runs single-threaded and says so at every call
                warnings.simplefilter("ignore", UserWarning)
                return reducer.fit_transform(vectors), "umap"
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(vectors) - 1) / 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors), "tsne"


def eval_figure(result: dict, vectors: np.ndarray, labels: np.ndarray, path: Path, seed: int = 0,
                method: str = "auto") -> str:
    """Write the two-panel PNG to ``path``; returns the map method used."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(labels), min(len(labels), MAP_MAX_POINTS), replace=False))
    xy, used = project_2d(np.asarray(vectors[rows], np.float32), seed, method)
    fig, (ax_probe, ax_map) = plt.subplots(1, 2, figsize=(13, 5.5))
    curves = {"learned (self-supervised)": result["linear_probe"]}
    curves.update({name: b["linear_probe"] for name, b in result["baselines"].items() if b and "linear_probe" in b})
    for name, probe in curves.items():
        fractions = sorted(probe, key=float)
        ax_probe.plot([100 * float(f) for f in fractions], [probe[f] for f in fractions], marker="o", label=name)
    ax_probe.set(xscale="log", xlabel="labels used for training (%)", ylabel="test accuracy",
                 title=f"Linear probe on '{result['label']}'")
    ax_probe.grid(alpha=0.3)
    ax_probe.legend()
    classes, counts = np.unique(labels[rows], return_counts=True)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i in np.argsort(-counts, kind="stable"):  # common classes first, so rare ones are drawn on top
        c = classes[i]
        sel = labels[rows] == c
        ax_map.scatter(xy[sel, 0], xy[sel, 1], s=4 if sel.sum() > 100 else 14, color=cmap(i % cmap.N), label=c)
    ax_map.set(title=f"Learned embedding ({used.upper()}), coloured by {result['label']}", xticks=[], yticks=[])
    ax_map.legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return used


def anomaly_figure(anomaly: dict, path: Path) -> None:
    """Interesting share of the top 100 against the ratings given: median over the simulated raters, the band
    down to the worst of them, beside the unsupervised ranking alone and the best achievable share."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for key, label in (("active_learning", f"active learning ({anomaly['method'].replace('_', ' ')})"),
                       ("look_alikes", "look-alikes of the galaxies rated interesting")):
        n = sorted(anomaly[key], key=int)
        x = [int(c) for c in n]
        line, = ax.plot(x, [anomaly[key][c]["median"] for c in n], marker="o", label=f"{label}, median")
        ax.fill_between(x, [anomaly[key][c]["worst"] for c in n], [anomaly[key][c]["median"] for c in n],
                        color=line.get_color(), alpha=0.2, label="… down to the worst rater")
    ax.axhline(anomaly["unsupervised"], color="grey", ls="--", label="unsupervised ranking alone")
    ax.axhline(anomaly["achievable"], color="black", ls=":", label="best achievable")
    ax.set(xlabel="ratings given", ylabel="interesting share of the top 100", ylim=(0, 1.02),
           title=f"Anomaly search, {anomaly['raters']} simulated raters")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
