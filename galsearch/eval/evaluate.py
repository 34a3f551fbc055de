"""``galsearch eval``: how well the embedding groups galaxies that share a label, against its yardsticks.

For the learned embedding and each baseline: precision@10 and @50 (share of a galaxy's nearest neighbours,
itself excluded, with its label), rare-class recall@50, and a linear probe (logistic regression on the frozen
vectors) trained with 1 %, 10 % and 100 % of the training labels and scored on a fixed held-out 30 %.
Baselines, computed in the same run on the same galaxies: ``pca_pixels`` (PCA of the asinh-stretched pixels
to the embedding's dimension, Euclidean), ``random_init`` (the same encoder, untrained, encoded the same way)
and ``supervised_scratch`` (the same encoder trained from scratch on the labels: its test accuracy at each
label fraction; slow, so only with ``supervised=True``, else null); where the search vectors carry classical
morphometry, ``learned_alone`` (the learned part without it) and ``morphometry`` (the statistics alone) show
what each half brings. ``tag_expansion`` simulates tagging one galaxy of a class and expanding the tag three times
(``galsearch.eval.tags``) and ``anomaly`` researchers rating the anomaly ranking (``galsearch.eval.anomaly``), as
a researcher does in the app, each against what look-alike search alone finds. A PNG
figure (``eval.png``) shows label efficiency and a 2-D map of the embedding. A progress bar names each stage as
it runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from tqdm import tqdm

from embedder.config import TrainConfig
from embedder.encode import encode_array
from embedder.encoders import untrained_model
from embedder.model import load_encoder
from embedder.morphometry import to_normal
from embedder.preprocess import to_model_input
from embedder.supervised import predict, train_supervised
from galsearch.eval.anomaly import SEEDS as RATERS
from galsearch.eval.anomaly import Interest, InterestSpec
from galsearch.eval.anomaly import simulate as simulate_anomaly_search
from galsearch.eval.figures import anomaly_figure, eval_figure
from galsearch.eval.metrics import (
    LABEL_FRACTIONS,
    label_subset,
    linear_probe,
    neighbour_scores,
    split,
    tag_classes,
)
from galsearch.eval.tags import STARTS as TAG_STARTS
from galsearch.eval.tags import tag_expansion
from index_builder.anomaly import learned_part, rating_coordinates
from index_builder.anomaly import score as unsupervised_scores
from survey.store import Store
from survey.workdir import EMBEDDING_INFO, EMBEDDINGS, MORPHOMETRY, MORPHOMETRY_FILE, Workdir, write_text

PCA_FIT_MAX = 20_000
FIGURE = "eval.png"
ANOMALY_FIGURE = "eval_anomaly.png"


def pixel_pca(store: Store, dim: int, seed: int, batch: int = 2048) -> np.ndarray:
    """PCA of asinh-stretched pixels (the classic baseline); fitted on at most PCA_FIT_MAX galaxies."""
    noise = torch.from_numpy(store.noise)
    size = store.meta["shape"][-1]

    def flat(rows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(store.images[rows]))
        return to_model_input(x, noise, size).reshape(len(rows), -1).numpy()

    n = len(store)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, PCA_FIT_MAX), replace=False))
    pca = PCA(n_components=min(dim, len(fit_rows)), svd_solver="randomized", random_state=seed).fit(flat(fit_rows))
    return np.concatenate([pca.transform(flat(np.arange(s, min(n, s + batch)))) for s in range(0, n, batch)])


def labelled_rows(store: Store, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a usable label and their labels as strings; empty or masked labels are left out."""
    if label_col not in store.catalog.colnames:
        raise ValueError(f"catalog has no column {label_col!r}; choose one of {', '.join(store.catalog.colnames)}")
    col = store.catalog[label_col]
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), bool)
    labels = np.char.strip(np.asarray(getattr(col, "data", col)).astype(str))  # masked cells: excluded below
    rows = np.flatnonzero(~mask & (labels != "") & (labels != "nan"))
    if len(np.unique(labels[rows])) < 2:
        raise ValueError(f"column {label_col!r} needs at least two distinct labels to evaluate against")
    return rows, labels[rows]


def score(vectors: np.ndarray, labels: np.ndarray, metric: str, seed: int) -> dict:
    return {**neighbour_scores(vectors, labels, metric), "linear_probe": linear_probe(vectors, labels, seed)}


def morphometry_baselines(workdir: Path, search: np.ndarray, rows: np.ndarray, labels: np.ndarray,
                          seed: int) -> dict:
    """Scores of the learned part of the search vectors (``search``, the labelled ``rows``) alone and of the
    morphometry alone, where the workdir has them."""
    out = {}
    learned = learned_part(workdir, search)
    if learned is not search:
        out["learned_alone"] = score(np.asarray(learned), labels, "ip", seed)
    if (workdir / MORPHOMETRY).exists():
        with np.load(workdir / MORPHOMETRY_FILE) as saved:
            quantiles = saved["quantiles"]
        stats = np.load(workdir / MORPHOMETRY)[rows]
        out["morphometry"] = score(to_normal(stats, quantiles), labels, "l2", seed)
    return out


def supervised_scratch(store: Store, rows: np.ndarray, labels: np.ndarray, arch: dict, seed: int,
                       epochs: int, device: str) -> dict:
    """Test accuracy of the encoder trained from scratch with each fraction of the training labels."""
    train, test = split(labels, seed)
    accuracy = {}
    for f in tqdm(LABEL_FRACTIONS, desc="supervised baseline", unit="fraction", leave=False):
        part = label_subset(train, labels, f, seed)
        enc, clf, classes = train_supervised(store, rows[part], labels[part], arch, epochs=epochs, seed=seed,
                                             device=device)
        pred, _ = predict(enc, clf, classes, store, rows[test], arch["input_size"])
        accuracy[str(f)] = round(float((pred == labels[test]).mean()), 4)
    return {"linear_probe": accuracy, "epochs": epochs}


def anomaly_search(workdir: Workdir, interest: Interest, seeds: int, seed: int,
                   method: str = "classifier") -> dict:
    """Simulate researchers rating anomalies (``galsearch.eval.anomaly``): the ranking works on the learned part
    of the embeddings, as the app's does; look-alike search on the search vectors, as /similar does."""
    emb = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    learned = learned_part(workdir, emb)
    scores = unsupervised_scores(np.asarray(learned), seed)
    coords = rating_coordinates(emb, learned, scores, seed)
    return simulate_anomaly_search(coords, scores["combined"], np.asarray(emb, np.float32), interest, seeds,
                                   method=method)


def evaluate(workdir: Path, label_col: str = "morphology", seed: int = 0, supervised: bool = False,
             supervised_epochs: int = 30, device: str = "auto", figure: bool = True, map_method: str = "auto",
             progress: bool = True, interest: InterestSpec | None = None, raters: int = RATERS,
             tag_starts: int = TAG_STARTS) -> dict:
    """Every measure of the module docstring; ``interest`` says what the simulated researcher of the anomaly
    block likes (default: the demo survey's ``interesting`` flag; the block is skipped when the catalog lacks it),
    ``raters`` how many of them to simulate, ``tag_starts`` how many starting galaxies per tag."""
    t0 = time.perf_counter()
    workdir = Workdir.of(workdir)
    store = Store(workdir.store)
    workdir.check_aligned(store.ids)
    rows, labels = labelled_rows(store, label_col)
    emb = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    wanted = interest is not None
    interesting = (interest or InterestSpec()).of(store.catalog, required=wanted)
    anomaly = interesting is not None
    stages = ["learned", "pixel PCA", "untrained encoder", *(["supervised"] if supervised else []),
              "morphometry", "tag expansion", *(["anomaly search"] if anomaly else []), *(["figure"] if figure else [])]
    bar = tqdm(total=len(stages), desc="eval", unit="stage", disable=not progress)

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(0 if name == stages[0] else 1)

    stage("learned")
    learned_vecs = np.asarray(emb[rows], np.float32)
    learned = score(learned_vecs, labels, "ip", seed)
    stage("pixel PCA")
    baselines = {"pca_pixels": score(pixel_pca(store, emb.shape[1], seed)[rows], labels, "l2", seed)}
    stage("untrained encoder")
    # The own architecture, untrained: as the workdir's own encoder is sized, or by default for a foreign one.
    cfg = load_encoder(workdir.model)[1] if workdir.model.exists() else {
        "in_channels": len(store.bands), **TrainConfig().model_dump(include={"width", "stem_stride", "input_size"}),
        "arch": TrainConfig().resolved_arch("cpu")}
    untrained = untrained_model(cfg["in_channels"], store.noise, cfg, seed)
    baselines["random_init"] = score(encode_array(untrained, store.images[rows]), labels, "ip", seed)
    baselines["supervised_scratch"] = None
    if supervised:
        stage("supervised")
        baselines["supervised_scratch"] = supervised_scratch(store, rows, labels, cfg, seed, supervised_epochs,
                                                             device)
    stage("morphometry")
    baselines.update(morphometry_baselines(workdir, learned_vecs, rows, labels, seed))
    stage("tag expansion")
    result = {
        "n": int(len(rows)),
        "label": label_col,
        "dim": int(emb.shape[1]),
        "encoder": json.loads((workdir / EMBEDDING_INFO).read_text()).get("encoder"),
        **learned,
        "tag_expansion": tag_expansion(learned_vecs, labels, tag_classes(labels), seed, tag_starts),
        "baselines": baselines,
    }
    if anomaly:
        stage("anomaly search")
        result["anomaly"] = {"interesting_column": (interest or InterestSpec()).column,
                             **anomaly_search(workdir, interesting, raters, seed)}
    if figure:
        stage("figure")
        result["map"] = eval_figure(result, learned_vecs, labels, workdir / FIGURE, seed, map_method)
        result["figure"] = FIGURE
        if "anomaly" in result:
            anomaly_figure(result["anomaly"], workdir / ANOMALY_FIGURE)
            result["anomaly_figure"] = ANOMALY_FIGURE
    bar.update(1)
    bar.close()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def write(result: dict, workdir: Path) -> Path:
    path = Workdir.of(workdir).eval_result
    write_text(path, json.dumps(result, indent=2))
    return path
