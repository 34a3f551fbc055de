"""galsearch: one command for every job, from a demo survey to a served gallery.

Every job reads and writes one workdir (``--workdir W``); ``survey.workdir`` names its files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from galsearch.settings import Settings
from survey.workdir import Workdir


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, with every flag given that names one of them (a flag's dest is the field's name)."""
    return Settings(**{k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None})


def _log(msg: str) -> None:
    print(f"[galsearch] {msg}", file=sys.stderr, flush=True)


def cmd_demo_survey(args: argparse.Namespace) -> None:
    from survey.generator import generate

    s = _settings(args)
    t0 = time.perf_counter()
    catalog = generate(args.n, s.seed, Path(args.out), workers=s.workers)
    _log(f"wrote {args.n} galaxies to {args.out} ({catalog}) in {time.perf_counter() - t0:.0f} s")


def cmd_ingest(args: argparse.Namespace) -> None:
    from survey.ingest import ingest
    from survey.store import REPORT

    meta = ingest(Path(args.catalog), Path(args.out), **_ingest_options(args))
    _log(f"packed {meta['count']} cutouts {tuple(meta['shape'])} into {args.out}; skipped {meta['skipped']}, masked "
         f"non-finite pixels in {meta['masked']} "
         f"(see {Path(args.out) / REPORT})")


def _packed(survey: Path) -> Path:
    """The packed store of ``survey``: a store itself, or a workdir's."""
    from survey.store import META

    for store in (survey, Workdir(survey).store):
        if (store / META).exists():
            return store
    raise FileNotFoundError(f"{survey} is neither a packed survey nor a workdir with one (run `galsearch ingest` or "
                            "`galsearch build` on it first)")


def _train(s: Settings, resume: bool, surveys: list[Path] | None = None) -> Path:
    from embedder.config import TrainConfig
    from embedder.train import train
    from survey.store import Store

    stores = [Store(_packed(survey)) for survey in surveys] if surveys else [Store(Workdir(s.workdir).store)]
    n = sum(len(store) for store in stores)
    if len(stores) > 1:
        _log(f"training one encoder on {len(stores)} surveys, {n} cutouts: "
             + ", ".join(f"{store.root} ({len(store)})" for store in stores))
    if n < s.min_train_cutouts:
        _log(f"warning: {n} cutouts are too few to train an encoder on: below about {s.min_train_cutouts} "
             "one trained on the survey alone did no better than an untrained one on real SDSS surveys (README, "
             "'Small surveys'). Training anyway; to reuse an encoder trained on a larger survey with the same "
             "bands, build with --model OTHER_WORKDIR/model.pt")
    t0 = time.perf_counter()
    path = train(stores, Workdir(s.workdir).model, s.part(TrainConfig), resume=resume,
                 on_epoch_end=lambda h: _log(f"epoch {h['epoch']}: loss {h['loss']:.3f}, "
                                             f"{h['images_per_s']:.0f} images/s"))
    _log(f"trained encoder -> {path} in {time.perf_counter() - t0:.0f} s")
    return path


def _install_encoder(s: Settings) -> None:
    """Make ``--encoder`` the workdir's encoder (copied or exported into it), checked against its survey."""
    from embedder.encoders import EncoderSpec, install
    from embedder.train import resolve_device
    from survey.store import Store

    wd = Workdir(s.workdir)
    store = Store(wd.store)
    identity = install(wd, EncoderSpec.parse(s.encoder), s.contract_flags(), s.encoder_weights,
                       resolve_device(s.device), store.noise, store.bands)
    if identity["kind"] != "own":
        _log(f"encoding with {identity['source']} ({identity['format']}, {identity['dim']}-d, sha256 "
             f"{identity['sha256'][:12]}…, input {identity['contract']})")


def _embed(s: Settings, ray: str | None = None, ray_actors: int | None = None) -> None:
    """Encode the workdir's store; ``ray`` ("" for a local cluster, else its address) spreads it over Ray."""
    from embedder.encode import embed
    from embedder.encoders import open_workdir, workdir_identity
    from embedder.train import resolve_device
    from survey.store import Store

    t0 = time.perf_counter()
    wd = Workdir(s.workdir)
    store = Store(wd.store)
    device = resolve_device(s.device)
    model = open_workdir(wd, device, store.noise)
    remote = None
    if ray is not None:
        from embedder.distributed import ray_encoder

        remote = ray_encoder(wd.store, wd.encoder, workdir_identity(wd), ray or None, actors=ray_actors)
    out = embed(store, model, s.workdir, device, pca_dim=s.pca, encode_chunks=remote,
                morphometry_weight=s.morphometry_weight)
    _log(f"embeddings -> {out} in {time.perf_counter() - t0:.0f} s")


def _index(s: Settings) -> None:
    from index_builder import anomaly, sky_cells, survey_map
    from index_builder.index import build

    manifest = build(s.workdir, s.index_type, s.seed, s.index_device, s.index_max_memory_mb)
    sky_cells.build_for_store(s.workdir)
    tuned = f", nprobe {manifest['nprobe']}" if "nprobe" in manifest else ""
    tuned += f", re-rank {manifest['refine']}x" if manifest.get("refine", 1) > 1 else ""
    _log(f"index {manifest['index_type']} over {manifest['count']} x {manifest['dim']}{tuned}: recall@50 "
         f"{manifest['recall_at_50']} in {manifest['build_s']} s -> {s.workdir}")
    summary = anomaly.build(s.workdir, s.seed, s.index_device)
    _log(f"anomaly scores (isolation forest + k-NN distance on PCA-{summary['pca_dim']}) -> "
         f"{s.workdir / anomaly.ANOMALY}")
    drawn = survey_map.build(s.workdir, s.seed, s.map_sample)
    _log(f"survey map (UMAP fitted on {drawn['fitted_on']} galaxies) in {drawn['build_s']} s -> "
         f"{s.workdir / survey_map.SURVEY_MAP}")


def cmd_add(args: argparse.Namespace) -> None:
    """Ingest a new batch of cutouts into a built workdir: append, embed the new rows, add them to the index."""
    import tempfile

    from embedder.encode import embed_appended
    from embedder.encoders import open_workdir
    from embedder.train import resolve_device
    from index_builder import anomaly, sky_cells, survey_map
    from index_builder.index import add
    from survey.ingest import ingest
    from survey.store import Store, append

    s = _settings(args)
    wd = Workdir(s.workdir)
    store_dir = wd.store
    if store_dir.is_symlink():
        raise ValueError(f"{store_dir} links to a packed survey elsewhere; build a workdir with a store of its own "
                         "before adding to it")
    start = len(Store(store_dir))
    with tempfile.TemporaryDirectory(dir=s.workdir) as tmp:
        meta = ingest(Path(args.catalog), Path(tmp) / "batch", **_ingest_options(args))
        added, duplicates = append(store_dir, Path(tmp) / "batch")
    if duplicates:
        _log(f"skipped {len(duplicates)} galaxies already in the survey (e.g. {', '.join(duplicates[:5])})")
    if added:
        store, device = Store(store_dir), resolve_device(s.device)
        embed_appended(store, open_workdir(wd, device, store.noise), s.workdir, device, start)
        manifest = add(s.workdir, start)
        sky_cells.build_for_store(s.workdir)
        anomaly.build(s.workdir, s.seed, s.index_device)
        survey_map.extend(s.workdir, start)
        _log(f"added {added} galaxies (skipped {meta['skipped']} unreadable): the index now holds "
             f"{manifest['count']}")


def cmd_train(args: argparse.Namespace) -> None:
    _train(_settings(args), args.resume, args.survey)


def cmd_embed(args: argparse.Namespace) -> None:
    s = _settings(args)
    if s.encoder is not None:
        _install_encoder(s)
    _embed(s, args.ray, args.ray_actors)


def cmd_index(args: argparse.Namespace) -> None:
    _index(_settings(args))


def cmd_shard(args: argparse.Namespace) -> None:
    from index_builder.shards import split

    s = _settings(args)
    info = split(s.workdir, args.shards)
    _log(f"{info['count']} galaxies in {info['shards']} shards of {info['index_type']} -> {s.workdir / 'shards'}")


def _catalog_in(survey: Path) -> Path:
    """The catalog of a survey folder (catalog.fits, .ecsv, .csv or .parquet), or ``survey`` itself if a file."""
    if not survey.is_dir():
        return survey
    names = ("catalog.fits", "catalog.ecsv", "catalog.csv", "catalog.parquet")
    for name in names:
        if (survey / name).exists():
            return survey / name
    raise FileNotFoundError(f"none of {', '.join(names)} in {survey}")


def _build(s: Settings, survey: Path, resume: bool = False, ingest_options: dict | None = None,
           model: Path | None = None) -> None:
    """ingest -> train (or adopt ``model``, or install ``--encoder``) -> embed -> index; a packed survey (has
    meta.json) is used in place."""
    from survey.ingest import ingest
    from survey.store import META

    s.workdir.mkdir(parents=True, exist_ok=True)
    store = Workdir(s.workdir).store
    if (survey / META).exists():
        if store.resolve() != survey.resolve():
            store.unlink(missing_ok=True)
            store.symlink_to(survey.resolve(), target_is_directory=True)
    else:
        meta = ingest(_catalog_in(survey), store, **(ingest_options or {}))
        _log(f"packed {meta['count']} cutouts; skipped {meta['skipped']}, masked {meta['masked']}")
    foreign = s.encoder not in (None, "own")
    if foreign and model is not None:
        raise ValueError("--model reuses an own encoder checkpoint and --encoder names another encoder: give one")
    if foreign:
        _install_encoder(s)
    elif model is None:
        _train(s, resume)
    else:
        from embedder.model import adopt
        from survey.store import Store

        packed = Store(store)
        cfg = adopt(model, packed.bands, packed.noise.tolist(), Workdir(s.workdir).model)
        _log(f"reusing the encoder in {model} (trained on {', '.join(cfg['adopted']['bands'] or ['?'])}) for "
             f"{', '.join(packed.bands)}")
    if not foreign:
        _install_encoder(s.model_copy(update={"encoder": "own"}))
    _embed(s)
    _index(s)


def cmd_build(args: argparse.Namespace) -> None:
    _build(_settings(args), Path(args.survey), args.resume, _ingest_options(args), args.model)


def cmd_export_encoder(args: argparse.Namespace) -> None:
    """Export a timm / Hugging Face hub model to a ``.pt2`` file (+ its contract) for ``--encoder file:PATH``."""
    from embedder.encoders import EncoderError, EncoderSpec, export_timm

    s = _settings(args)
    spec = EncoderSpec.parse(s.encoder or "")
    if spec.kind not in ("timm", "hf-hub"):
        raise EncoderError("export-encoder takes --encoder timm:NAME or hf-hub:REPO")
    out = Path(args.out)
    if out.suffix != ".pt2":
        raise EncoderError(f"{out}: the exported program's file must end in .pt2")
    contract = export_timm(spec, out, s.contract_flags(), s.encoder_weights)
    _log(f"exported {spec} -> {out} (input {contract.model_dump()}); use it with --encoder file:{out}")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    s = _settings(args)
    _log(f"serving {s.workdir} at http://{s.host}:{s.port}")
    uvicorn.run(create_app(s), host=s.host, port=s.port, log_level="info", access_log=s.access_log)


def cmd_demo(args: argparse.Namespace) -> None:
    from astropy.table import Table

    from survey.generator import VERSION, generate

    s = _settings(args)
    out = Path(args.out)
    catalog = out / "catalog.fits"
    existing = Table.read(catalog) if catalog.exists() else None
    if existing is not None and (len(existing), existing.meta.get("SEED"), existing.meta.get("GENVER")) == (
        args.n, s.seed, VERSION
    ):
        _log(f"reusing the demo survey in {out}")
    else:
        generate(args.n, s.seed, out, workers=s.workers)
    _build(s, out)
    if not args.no_serve:
        cmd_serve(args)


def _values(text: str) -> list[str]:
    return [v for v in (v.strip() for v in text.split(",")) if v]


def cmd_eval(args: argparse.Namespace) -> None:
    from galsearch.eval.anomaly import InterestSpec
    from galsearch.eval.evaluate import evaluate, write

    s = _settings(args)
    label_col = args.label_col
    if label_col is None:  # the first --label-col given at ingest, else the demo survey's classes
        from survey.store import META

        meta = json.loads((Workdir(s.workdir).store / META).read_text())
        label_col = (meta.get("label_columns") or ["morphology"])[0]
    interest = None
    if args.interesting_col or args.interesting or args.boring is not None:
        interest = InterestSpec(column=args.interesting_col or "interesting",
                                values=tuple(_values(args.interesting or "true")),
                                boring_column=args.boring_col or label_col, boring=tuple(_values(
                                    "artifact" if args.boring is None else args.boring)))
    result = evaluate(s.workdir, label_col=label_col, seed=s.seed, supervised=args.supervised,
                      supervised_epochs=args.supervised_epochs, device=s.device, figure=not args.no_figure,
                      map_method=args.map, interest=interest, raters=args.raters, tag_starts=args.tag_starts)
    path = write(result, s.workdir)
    if args.json:
        print(json.dumps(result))
        return
    b = result["baselines"]
    for name, r in [("learned", result), *b.items()]:
        if r is None:
            _log(f"{name:>18}: skipped (add --supervised to train it)")
            continue
        near = f"p@10 {r['precision_at_10']:.3f}  p@50 {r['precision_at_50']:.3f}  " if "precision_at_10" in r else ""
        probe = "  ".join(f"{float(f):.0%} {acc:.3f}" for f, acc in r["linear_probe"].items())
        _log(f"{name:>18}: {near:<30}linear probe {probe}")
    _log(f"rare-class recall@50: {result['rare_recall_at_50']}")
    for tag, r in result["tag_expansion"].items():
        found = "  ".join(f"{n}: {r['found'][n]['median']:.2f}/{r['found'][n]['worst']:.2f} "
                          f"(search {r['plain_search'][n]['median']:.2f}/{r['plain_search'][n]['worst']:.2f})"
                          for n in r["found"])
        _log(f"tag {tag}: members found after rounds of 20 decisions, median/worst {found}")
    if "anomaly" in result:
        a = result["anomaly"]
        shares = "  ".join(f"{n}: {a['active_learning'][n]['median']:.2f}/{a['active_learning'][n]['worst']:.2f} "
                           f"(look-alikes {a['look_alikes'][n]['median']:.2f}/{a['look_alikes'][n]['worst']:.2f})"
                           for n in a["active_learning"])
        _log(f"anomalies: interesting share of the top 100 by ratings given, median/worst of {a['raters']} raters "
             f"{shares}; unsupervised alone {a['unsupervised']:.2f}, at best {a['achievable']:.2f}")
    _log(f"details in {path}"
         + (f", figure {s.workdir / result['figure']}" if "figure" in result else ""))


def _index_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--index-type", choices=["auto", "flat", "ivf", "ivfpq"],
                    help="auto (default): exact below 100,000 galaxies, IVF with tuned nprobe above, IVF-PQ when "
                         "the raw vectors exceed --index-max-memory-mb")
    sp.add_argument("--index-device", choices=["auto", "cpu", "cuda"],
                    help="build on the GPU with the FAISS GPU package (auto: when one is seen)")
    sp.add_argument("--index-max-memory-mb", type=int, help="memory budget for the raw vectors (default 8192)")
    sp.add_argument("--map-sample", type=int, help="galaxies the survey map's UMAP is fitted on; the rest are "
                                                   "placed by its transform (default 20000)")


def _embed_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--pca", type=int, help="keep this many PCA components for search (default 0: all)")
    sp.add_argument("--morphometry-weight", type=float,
                    help="share of a search distance given to asymmetry, concentration, Gini, M20, size and colours, "
                         "appended to the learned embedding (default 0.7; 0: the learned embedding alone)")


def _floats(text: str) -> list[float]:
    return [float(v) for v in _values(text)]


def _encoder_flags(sp: argparse.ArgumentParser, choose: bool = True) -> None:
    if choose:
        sp.add_argument("--encoder", help="own (default: the encoder trained on this survey) | file:PATH (.pt2 "
                        "torch.export, .pt TorchScript, .onnx) | timm:NAME | hf-hub:REPO, e.g. "
                        "hf-hub:mwalmsley/zoobot-encoder-convnext_nano (needs galsearch[timm])")
    sp.add_argument("--encoder-weights", type=Path, help="a timm model's weights as a local file (no download)")
    sp.add_argument("--encoder-size", type=int, help="pixels a side the encoder takes (over its sidecar JSON)")
    sp.add_argument("--encoder-channels", type=_values,
                    help="the survey's bands in the order the encoder takes them, e.g. R,G,B for a JPEG survey")
    sp.add_argument("--encoder-scaling", choices=["unit", "asinh"],
                    help="unit: stored values (0-1 for PNG/JPEG); asinh: asinh(flux / 3 sigma_band)")
    sp.add_argument("--encoder-mean", type=_floats, help="per-channel mean subtracted after scaling, e.g. ImageNet's")
    sp.add_argument("--encoder-std", type=_floats, help="per-channel std divided by after the mean")


def _ingest_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--crop", type=float, default=1.0, help="keep this central fraction of each cutout")
    sp.add_argument("--size", type=int, help="resample cutouts to this many pixels a side")
    sp.add_argument("--images-dir", type=Path, help="folder the file column is relative to (default: the catalog's)")
    for name, default in (("id", "id"), ("file", "file"), ("hdu", "hdu"), ("ra", "ra"), ("dec", "dec")):
        sp.add_argument(f"--{name}-col", default=default, help=f"catalog column holding the {name} (default {default})")
    sp.add_argument("--label-col", action="append", default=[], help="a label column to check and keep (repeatable)")
    sp.add_argument("--bands", type=lambda text: [b.strip() for b in text.split(",") if b.strip()],
                    help="bands to keep, by name and in this order, e.g. g,r,z (default: all the cutouts have); "
                         "needed when the file column holds a {band} placeholder, one file per band")
    sp.add_argument("--images-dataset", default="images",
                    help="the image dataset of HDF5 files (default images); the catalog may be the HDF5 file itself")


def _ingest_options(args: argparse.Namespace) -> dict:
    from survey.catalogs import CatalogColumns

    columns = CatalogColumns(id=args.id_col, file=args.file_col, hdu=args.hdu_col, ra=args.ra_col, dec=args.dec_col,
                             labels=tuple(args.label_col))
    return {"crop": args.crop, "size": args.size, "columns": columns, "images_dir": args.images_dir,
            "bands": args.bands, "dataset": args.images_dataset}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="galsearch", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help: str, *, workdir: bool = True, training: bool = False, serving: bool = False):
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if workdir:
            sp.add_argument("--workdir", type=Path, help="working directory (default: work/demo)")
        sp.add_argument("--seed", type=int)
        if training:
            sp.add_argument("--method", choices=["simclr", "moco"], help="contrastive objective (default moco)")
            sp.add_argument("--epochs", type=int, help="default: 12 on a CPU, 200 on a GPU")
            sp.add_argument("--batch-size", type=int, help="default: 128 on a CPU, 256 on a GPU")
            sp.add_argument("--learning-rate", type=float)
            sp.add_argument("--input-size", type=int, help="pixels the encoder sees (cutouts are resampled)")
            sp.add_argument("--width", type=int, help="encoder width; the embedding has 4x this many dimensions")
            sp.add_argument("--arch", choices=["auto", "small", "large"],
                            help="encoder depth: small (1 block a stage), large (2, as ResNet-18); auto (default): "
                                 "small on a CPU, large on a GPU")
            sp.add_argument("--stem-stride", type=int, choices=[1, 2], help="2 halves the resolution in the stem")
            sp.add_argument("--augment", choices=["auto", "flux", "raster"],
                            help="views' augmentations: flux (FITS: reddening, flux noise), raster (PNG/JPEG: colour "
                                 "jitter, sky noise); auto (default) picks by the survey")
            sp.add_argument("--pretext", help="regress catalog columns too: 'auto' (mag_*, size) or 'col1,col2'")
            sp.add_argument("--compile", action="store_true", default=None, help="torch.compile the training step")
            sp.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                            help="auto: bfloat16 on a GPU or on a CPU with native bfloat16 instructions")
            sp.add_argument("--device", help="auto | cpu | cuda")
            sp.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
        if serving:
            sp.add_argument("--host")
            sp.add_argument("--port", type=int)
            sp.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite file in the workdir)")
            sp.add_argument("--access-log", action="store_true", default=None, help="log every request")
            sp.add_argument("--index-shards", metavar="RAY", help="answer look-alike searches from the index's "
                            "shards (galsearch shard) as Ray Serve deployments: 'local', 'auto' or ray://HOST:10001")
        return sp

    sp = add("demo-survey", cmd_demo_survey, "generate the synthetic demo survey", workdir=False)
    sp.add_argument("--n", type=int, default=5000)
    sp.add_argument("--out", type=Path, default=Path("data/demo"))
    sp.add_argument("--workers", type=int)

    sp = add("ingest", cmd_ingest, "pack a survey (catalog + cutouts) into a fast array store", workdir=False)
    sp.add_argument("--catalog", type=Path, required=True,
                    help="FITS, ECSV, CSV or Parquet table with id and file columns, or an HDF5 file holding "
                         "images and columns")
    sp.add_argument("--out", type=Path, required=True)
    _ingest_flags(sp)

    sp = add("add", cmd_add, "add a new batch of cutouts to a built workdir without rebuilding it")
    sp.add_argument("--catalog", type=Path, required=True, help="the new batch's catalog (as for ingest)")
    sp.add_argument("--device", help="auto | cpu | cuda")
    _ingest_flags(sp)

    sp = add("train", cmd_train, "train the self-supervised encoder on the packed survey", training=True)
    sp.add_argument("--survey", type=Path, action="append",
                    help="a packed survey or a workdir to train on (repeat to train one encoder on several, for "
                         "`build --model WORKDIR/model.pt` on small ones; default: the workdir's own)")
    sp = add("embed", cmd_embed, "encode every cutout into an embedding (resumes an interrupted run)")
    sp.add_argument("--device", help="auto | cpu | cuda")
    sp.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                    help="encode on a Ray cluster's GPUs: 'auto', ray://HOST:10001, or nothing for a local one; "
                         "the store must be on storage every node mounts")
    sp.add_argument("--ray-actors", type=int, help="encoder actors (default: one per GPU, else per CPU)")
    _embed_flags(sp)
    _encoder_flags(sp)
    sp = add("index", cmd_index, "build the FAISS index over the embeddings, and the anomaly scores")
    _index_flags(sp)
    sp = add("shard", cmd_shard, "split the built index into shards for `serve --index-shards` (a survey too "
             "large for one machine's index)")
    sp.add_argument("--shards", type=int, required=True, help="how many shards (contiguous rows each)")
    sp = add("build", cmd_build, "ingest -> train -> embed -> index for a survey directory", training=True)
    sp.add_argument("--model", type=Path, help="reuse this encoder checkpoint (model.pt of another workdir) instead "
                                               "of training; it must take as many bands as the survey has")
    sp.add_argument("--survey", type=Path, required=True,
                    help="survey folder (catalog + cutouts), its catalog file, or a packed store")
    _ingest_flags(sp)
    _index_flags(sp)
    _embed_flags(sp)
    _encoder_flags(sp)
    sp = add("export-encoder", cmd_export_encoder, "export a timm or Hugging Face hub model to a .pt2 file that "
             "--encoder file:PATH runs with torch alone (on a machine without timm or internet)", workdir=False)
    sp.add_argument("--encoder", required=True, help="timm:NAME or hf-hub:REPO")
    sp.add_argument("--out", type=Path, required=True, help="the .pt2 file to write (its contract beside it, .json)")
    _encoder_flags(sp, choose=False)
    add("serve", cmd_serve, "serve the gallery and API", serving=True)
    sp = add("demo", cmd_demo, "demo-survey + build + serve with the demo defaults", training=True, serving=True)
    sp.add_argument("--n", type=int, default=5000)
    sp.add_argument("--out", type=Path, default=Path("data/demo"))
    sp.add_argument("--workers", type=int)
    sp.add_argument("--no-serve", action="store_true", help="stop after building")
    _embed_flags(sp)
    sp = add("eval", cmd_eval, "score the embedding on labels against pixel-PCA, untrained and supervised baselines")
    sp.add_argument("--json", action="store_true", help="print the result as one JSON object")
    sp.add_argument("--label-col", help="catalog column holding the labels (default: the first --label-col given "
                    "at ingest, else morphology)")
    sp.add_argument("--device", help="auto | cpu | cuda (for the supervised baseline)")
    sp.add_argument("--supervised", action="store_true",
                    help="also train the supervised-from-scratch baseline (slow: three CNNs trained on the labels)")
    sp.add_argument("--supervised-epochs", type=int, default=30, help="epochs of the supervised-from-scratch CNN")
    sp.add_argument("--map", choices=["auto", "umap", "tsne"], default="auto", help="2-D map method for the figure")
    sp.add_argument("--no-figure", action="store_true", help="skip the PNG figure")
    sp.add_argument("--interesting-col", help="catalog column saying what the simulated anomaly hunter finds "
                    "interesting (default: interesting, the demo survey's flag)")
    sp.add_argument("--interesting", help="comma-separated values of --interesting-col that are interesting "
                    "(default: true)")
    sp.add_argument("--boring-col", help="catalog column of the boring anomalies (default: the label column)")
    sp.add_argument("--boring", help="comma-separated values of --boring-col rated 0, e.g. artifact,dont_know "
                    "(default: artifact)")
    sp.add_argument("--raters", type=int, default=10, help="simulated raters (seeds) per anomaly figure")
    sp.add_argument("--tag-starts", type=int, default=10, help="starting galaxies per simulated tag")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.fn(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        _log(f"error: {exc}")
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
