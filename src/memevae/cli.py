"""The ``memevae`` command line: thin wrappers that parse options and call the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .options import add_options, flag_names

EPILOG = """examples:
  memevae train --epochs 5                      # MEME on the shipped MNIST sample + textured digits
  memevae train --data-dir ~/data --dataset mnist-svhn --paired-fraction 0.25 --unpaired split
  memevae translate runs/meme-mnist-textured-f1-seed0 --from mnist --to textured --out grid.png
"""

def _add_model_options(group) -> dict[str, str]:
    """One option per field of every model's config (not the mappings: ``modalities`` and ``shapes``
    come from the data, per-modality weights from presets), typed, with its choices and its
    documented first sentence; the default shown per model. Returns {dest: field}."""
    import typing

    from .models import MODELS

    owners: dict[str, dict[str, object]] = {}
    dests, done = {}, set()
    for name, model in MODELS.items():
        hints = typing.get_type_hints(model.config_class)
        for f in dataclasses.fields(model.config_class):
            owners.setdefault(f.name, {})[name] = f.default
            if typing.get_origin(hints[f.name]) is dict:
                done.add(f.name)
    for name, model in MODELS.items():
        fields = [f.name for f in dataclasses.fields(model.config_class) if f.name not in done]
        done.update(fields)
        notes = {f: "/".join(m.upper() for m in owners[f]) + ":" for f in fields if len(owners[f]) < len(MODELS)}
        defaults = {f: "default " + ", ".join(f"{m.upper()} {v}" for m, v in owners[f].items())
                    for f in fields if len(set(map(str, owners[f].values()))) > 1}
        others = [f.name for f in dataclasses.fields(model.config_class) if f.name not in fields]
        dests.update(add_options(group, model.config_class, skip=others, defaults=defaults, notes=notes))
    return dests


def _add_rendering(group, default=None):
    from .data.textured import RENDERINGS

    group.add_argument("--rendering", choices=list(RENDERINGS), default=default,
                       help="mnist-textured, polymnist-textured: how textured digits are drawn: 'bright' strokes over "
                            "a darkened photo (default) or the hard 'inverted' strokes of early memevae 0.1.0")


def _add_data_options(group) -> dict[str, str]:
    """One option per setting of :class:`~memevae.data.DataConfig` and per own option of a data set
    (CUB's ``--features``, PolyMNIST's ``--modalities``; the data sets that take it named first),
    from the dataclasses' fields: their types, choices, defaults and documented first sentences.
    ``--seed`` is the training group's (it seeds the data too). Returns {dest: field}."""
    from .data import DataConfig, registry

    datasets = f"one of {', '.join(registry.names())}; default {DataConfig.dataset}"
    dests = add_options(group, DataConfig, skip=("seed",), defaults={"dataset": datasets})
    for cls in dict.fromkeys(DataConfig.option_classes().values()):
        takers = {f.name: ", ".join(name for name, spec in registry.datasets().items() if spec.takes(f.name)) + ":"
                  for f in dataclasses.fields(cls)}
        dests.update(add_options(group, cls, notes=takers))
    return dests


def _add_train_options(group) -> dict[str, str]:
    """One option per setting of :class:`~memevae.training.trainer.TrainConfig` that has one
    (:func:`memevae.options.flag_names`). Returns {dest: field}."""
    from .training.trainer import TrainConfig

    return add_options(group, TrainConfig, notes={"seed": "Training and data:"})


def _add_train(sub):
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a multimodal VAE. With no data options it trains MEME on the real MNIST sample "
                                   "shipped with memevae, paired with textured digits, offline.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="meme (default), mvae (Wu & Goodman 2018) or mmvae (Shi et al. 2019; paired data only)")
    p.add_argument("--out", type=Path, help="run directory: a new or empty folder (default runs/<model>-<dataset>-f<f>[-<unpaired>]-seed<seed>)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run in --out with its recorded settings; only {_resumable_flags()} may change "
                        f"(each change is recorded)")
    p.add_argument("--checkpoint", default="last", help="with --resume: the checkpoint to continue from (default last; "
                                                        "'previous' is the one before it)")
    data_options = _add_data_options(p.add_argument_group("data"))
    train_options = _add_train_options(t := p.add_argument_group("training"))
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    m = p.add_argument_group("model")
    p.set_defaults(func=_train, model_options=_add_model_options(m), data_options=data_options, train_options=train_options)
    m.add_argument("--preset", help=f"a named set of model options, which the options given override: {_presets()}; "
                                    f"recorded in config.json")
    m.add_argument("--modality-kind", action="append", metavar="MODALITY=KIND", default=[],
                   help="the networks of one modality: a modality kind's name, or the 'module:attribute' of a ModalityKind "
                        "of your own module, which is registered (the run records it; docs/architecture.md); repeatable, "
                        "e.g. --modality-kind mnist=my_networks:SMALL")


def _presets() -> str:
    from .models import MODELS

    offered = [f"{model} {name}" for model, cls in MODELS.items() for name in cls.config_class.presets]
    return ", ".join(offered) or "none"


def _resumable_flags() -> str:
    """The options a resumed run may change (TrainConfig's RESUMABLE fields that are CLI options)."""
    from .training.trainer import RESUMABLE, TrainConfig

    return ", ".join(flag for field, flag in flag_names(TrainConfig).items() if flag and field in RESUMABLE)


def _writes() -> bool:
    """Whether this process reports the run it trained: always, except the ranks > 0 of a torchrun run."""
    from .training.distributed import from_environment

    try:
        process = from_environment()
    except ValueError:  # torchrun's variables unreadable: the error is this process's to say
        return True
    return process is None or process.writes


def _train(args):
    from . import DataConfig, TrainConfig, resume, train
    from .options import given
    from .run import run_name
    from .runs import checkpoint_status
    from .training.rundir import RunDir, RunError
    from .training.trainer import RESUMABLE

    options = given(args, args.model_options)
    data_given, train_given = given(args, args.data_options), given(args, args.train_options)
    if args.seed is not None:
        data_given["seed"] = args.seed
    if args.resume:
        if args.out is None:
            raise RunError("--resume needs --out RUN, the run directory to continue")
        named = {**flag_names(TrainConfig), **DataConfig.flags()}
        refused = sorted({named[f] for f in [*data_given, *(f for f in train_given if f not in RESUMABLE)]}
                         | {"--" + f.replace("_", "-") for f in options} | ({"--model"} if args.model else set())
                         | ({"--preset"} if args.preset else set()) | ({"--modality-kind"} if args.modality_kind else set()))
        if refused:
            raise RunError(f"--resume continues {args.out} with its recorded model and data, so {', '.join(refused)} cannot "
                           f"be given; it may change {_resumable_flags()} (start a new run in another --out for the rest)")
        out = args.out
    else:
        data = DataConfig(**data_given)
        if args.modality_kind:
            options["modalities"] = _modality_kinds(args.modality_kind, data)
        out = args.out or Path("runs") / run_name(args.model or "meme", data)
    try:
        if args.resume:
            run = resume(out, progress=not args.quiet, checkpoint=args.checkpoint, **train_given)
        else:
            run = train(out, model=args.model, data=data, training=TrainConfig(**train_given), model_options=options,
                        progress=not args.quiet, preset=args.preset)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {checkpoint_status(RunDir(out))}") from None
    if not _writes():
        return
    print(f"run written to {run.path} (checkpoints/, metrics.jsonl, figures/)")
    last = run.history[-1] if run.history else {}
    coherence = {key.removeprefix("coherence/"): value for key, value in last.items() if key.startswith("coherence/")}
    if coherence:
        print(f"cross coherence after epoch {last['epoch']} ({run.config['train']['coherence_items']} test pairs; chance 0.10): "
              + ", ".join(f"{key} {value:.3f}" for key, value in coherence.items()))
    print(f"figures: {run.path / 'figures' / 'curves.png'}, {run.path / 'figures' / f'generation-epoch-{len(run.history):04d}.png'}")


def _modality_kinds(given: list[str], data) -> dict[str, str]:
    """{modality: kind} of ``data``'s modalities, each ``MODALITY=KIND`` of ``--modality-kind`` replacing
    the data set's default kind; a KIND "module:attribute" is registered (:func:`memevae.modalities.register`)."""
    from .modalities import register
    from .training.rundir import RunError

    kinds = data.kinds()
    for entry in given:
        modality, _, kind = entry.partition("=")
        if not modality or not kind:
            raise RunError(f"--modality-kind takes MODALITY=KIND (e.g. mnist=my_networks:SMALL), got {entry!r}")
        if modality not in kinds:
            raise RunError(f"--modality-kind {entry}: {data.dataset} has no modality {modality!r}; its modalities are "
                           f"{', '.join(kinds)}")
        kinds[modality] = register(kind).name if ":" in kind else kind
    return kinds


class Interrupted(Exception):
    """Ctrl-C during a command; the message says what was kept."""


def _add_features(sub):
    from .data import registry
    from .data.features.image_features import add_arguments

    having = [name for name, spec in registry.datasets().items() if spec.image_features]
    p = sub.add_parser("features", help=f"compute the image features of a data set once ({', '.join(having)})",
                       description="Compute the image feature vectors a data set's image modality uses (the paper's "
                                   "ImageNet ResNet-101 features, or the weight-free colour-hog descriptor) into a "
                                   "checksummed cache; resumable, and a finished cache is never recomputed.")
    p.add_argument("dataset", choices=having, help=f"a data set with image features: {', '.join(having)}")
    add_arguments(p)
    p.set_defaults(func=_features)


def _features(args) -> None:
    from .data import registry
    from .data.features.image_features import main

    features = registry.get(args.dataset).image_features
    main(args, features.images, features.cache)


DATA_DIR_OVERRIDE = "the run's data folder, when it is no longer where config.json records it (the same files)"


def _add_translate(sub):
    p = sub.add_parser("translate", help="cross-generate test examples with a trained run and save a PNG grid")
    p.add_argument("run", type=Path, help="a run directory")
    p.add_argument("--from", dest="source", required=True, help="source modality, e.g. mnist")
    p.add_argument("--to", dest="target", required=True, help="target modality, e.g. textured")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write (an existing file only if it is a PNG image)")
    p.add_argument("--count", type=int, default=10, help="test examples (default 10)")
    p.add_argument("--samples", type=int, default=3, help="latent samples per example (default 3)")
    p.add_argument("--checkpoint", default="last")
    p.add_argument("--seed", type=int, default=0, help="seeds the latent samples (default 0): the same grid every time")
    p.add_argument("--data-dir", type=Path, help=DATA_DIR_OVERRIDE)
    p.set_defaults(func=_translate)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_image_out(path: Path) -> None:
    """Refuse, before anything is computed, an --out that cannot be written or that holds a file
    other than a PNG image (which a rerun replaces)."""
    from .training.rundir import RunError, check_path, check_writable

    check_path(path, folder=False)
    if path.exists():
        with open(path, "rb") as handle:
            if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise RunError(f"--out {path} is an existing file that is not a PNG image; memevae replaces only an image "
                               f"(e.g. one it drew before): choose another --out")
    check_writable(path.parent, "choose another --out")


def _translate(args):
    import torch

    from . import load_run
    from .evaluation.figures import save_translation_grid
    from .evaluation.metrics.grids import one_per_class

    _check_image_out(args.out)
    run = load_run(args.run, checkpoint=args.checkpoint, data_dir=args.data_dir)
    for name in (args.source, args.target):
        run.model.modality(name)  # one-line error for an unknown modality
    test = run.load_data("test")
    x = test.batch(one_per_class(test, args.count)).data[args.source]
    save_translation_grid(run.model, x, args.source, args.target, args.out, samples=args.samples,
                          generator=torch.Generator().manual_seed(args.seed), show=test.show)
    print(f"wrote {args.out}")


def _add_snr(sub):
    from .evaluation.metrics.snr import SNROptions
    from .models import MEMEConfig

    p = sub.add_parser("snr", help="gradient SNR of MEME's stop-gradient vs full estimator (Fig. 10)",
                       description="Train MEME briefly twice from the same initialisation, once per estimator "
                                   "(App. B stop-gradient; Eq. 7 full), and measure along training the SNR |mean g| / std g "
                                   "of each network's gradients over --repeats estimates on one fixed batch (Fig. 10). "
                                   "Writes OUT/snr.json and OUT/snr.png.")
    p.add_argument("--out", type=Path, required=True, help="folder for snr.json and snr.png")
    p.add_argument("--dataset", help="mnist-textured (default) or mnist-svhn")
    p.add_argument("--data-dir", type=Path, help="folder with the official files (default: the shipped sample)")
    p.add_argument("--seed", type=int, default=0, help="seeds data, initialisation and noise (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    study = add_options(p.add_argument_group("study"), SNROptions, flags={"learning_rate": ["--lr", "--learning-rate"]})
    meme = add_options(p.add_argument_group("model (MEME)"), MEMEConfig, skip=("modalities", "estimator"))
    p.set_defaults(func=_snr, model_options=meme, study_options=study)


def _snr(args):
    from .data import DataConfig
    from .evaluation.metrics import snr
    from .models import build_config
    from .options import build, given

    settings = build(snr.SNROptions, given(args, args.study_options), "memevae snr")
    snr.check_arguments(settings.steps, settings.repeats, settings.every, settings.batch_size, settings.learning_rate)  # before loading
    data = DataConfig(**given(args, {"dataset": "dataset", "data_dir": "data_dir", "seed": "seed"}))
    config = build_config("meme", modalities=data.kinds(), **given(args, args.model_options))
    result = snr.study(config, data.load("train"), settings, seed=args.seed, progress=not args.quiet)
    paths = snr.write_snr(result, args.out)
    for estimator, groups in result["summary"].items():
        print(f"{estimator}: mean SNR " + ", ".join(f"{g} {v:.3g}" for g, v in groups.items()))
    print(f"wrote {paths['json']} and {paths['png']}")


def _add_judges(sub):
    p = sub.add_parser("judges", aliases=["classifiers"],
                       help="train the judges: digit classifiers that score generations (coherence); alias: classifiers")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    t = actions.add_parser("train", help="train one judge (digit classifier) per modality on the TRAIN split and save it",
                           description="Train a small CNN per digit modality of a data set on its train split, report its "
                                       "test accuracy, and save it with a sha256 of its weights. 'memevae evaluate' loads "
                                       "them from the default folder <data-dir or ~/.cache/memevae>/classifiers/<dataset>[/<rendering>]/.")
    t.add_argument("--dataset", default="mnist-textured", help="mnist-textured (default) or mnist-svhn")
    _add_rendering(t, default="bright")
    t.add_argument("--data-dir", type=Path, help="folder with the official files (default: the shipped sample)")
    t.add_argument("--out", type=Path, help="folder to write (default <data-dir or ~/.cache/memevae>/classifiers/<dataset>[/<rendering>]/)")
    t.add_argument("--modalities", help="comma-separated subset (default: every modality of the data set)")
    t.add_argument("--epochs", type=int, help="epochs (default: about 150k images seen; 5 on full MNIST, 30 on the sample)")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3, help="Adam peak learning rate, one-cycle schedule (default 1e-3)")
    t.add_argument("--seed", type=int, default=0, help="seeds the data set (textured rendering) and training")
    t.add_argument("--max-items", type=int, metavar="N", help="cap the training images per modality (quick checks only)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_judges_train)
    p.set_defaults(func=lambda args: p.print_help())


def _judges_train(args):
    from .evaluation.judges import default_judges_dir, train_judges
    from .data import DataConfig

    data = DataConfig(dataset=args.dataset, rendering=args.rendering, data_dir=args.data_dir, seed=args.seed)
    out = args.out or default_judges_dir(data.judges_variant, data.data_dir)
    modalities = [m.strip() for m in args.modalities.split(",")] if args.modalities else None
    train_judges(data, out, modalities=modalities, epochs=args.epochs, batch_size=args.batch_size,
                 learning_rate=args.lr, seed=args.seed, max_items=args.max_items, progress=not args.quiet)
    print(f"judges written to {out}")


def _add_evaluate(sub):
    from .evaluation.metric import default_metrics, metrics

    listing = "\n".join(f"  {name:<12} {m.description}" for name, m in metrics().items())
    p = sub.add_parser("evaluate", help="evaluate a run: coherence, latent accuracy, relatedness, t-SNE, grids, ...",
                       description="Evaluate a trained run and write RUN/evaluation/metrics.json (figures in "
                                   "RUN/evaluation/figures/), with each metric's wall time and the paper's MNIST-SVHN "
                                   "numbers alongside; results already there for the same checkpoint are kept, also "
                                   "those of an evaluation running at the same time.",
                       epilog=f"metrics:\n{listing}\n\nexamples:\n  memevae evaluate runs/meme-mnist-textured-f1-seed0\n"
                              "  memevae evaluate RUN --metrics coherence --judges judges/\n"
                              "  memevae evaluate RUN --metrics likelihood --likelihood-samples 100",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run directory")
    p.add_argument("--metrics", help=f"comma-separated, or 'all' (default {','.join(default_metrics())}; "
                                     f"'all' and the default leave out metrics that cannot measure the run's data)")
    p.add_argument("--judges", "--classifiers", dest="judges", type=Path, metavar="DIR",
                   help="folder of the judges (digit classifiers; default <data-dir or ~/.cache/memevae>/classifiers/<dataset>/)")
    p.add_argument("--checkpoint", default="last",
                   help="checkpoint name (default last; the results of any other go to metrics-<checkpoint>.json, "
                        "its figures to figures-<checkpoint>/)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write the results and figures into DIR instead of RUN/evaluation/ (e.g. for a run folder you "
                        "may not write): a new or empty folder, or one evaluate --out made before")
    p.add_argument("--seed", type=int, default=0, help="seeds the metrics' sampling (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--data-dir", type=Path, help=DATA_DIR_OVERRIDE)
    options = {}
    for name, metric in metrics().items():
        group = p.add_argument_group(f"{name} options", metric.description)
        options[name] = add_options(group, metric.Options, prefix=f"{name}-")
    p.set_defaults(func=_evaluate, metric_options=options)


def _evaluate(args):
    from . import load_run
    from .evaluation import evaluate
    from .evaluation.pipeline import headline, results_path
    from .options import given

    options = {name: given(args, dests) for name, dests in args.metric_options.items()}
    run = args.run if args.data_dir is None else load_run(args.run, checkpoint=args.checkpoint, data_dir=args.data_dir)
    results = evaluate(run, metrics=args.metrics, judges=args.judges, checkpoint=args.checkpoint,
                       options={name: values for name, values in options.items() if values}, seed=args.seed,
                       progress=not args.quiet, out=args.out)
    for name, entry in results["metrics"].items():
        shown = headline(name, entry["values"])
        print(f"{name} ({entry['wall_time_s']:.1f} s): " + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:8]))
    print(f"{results['dataset_label']} results written to {results_path(args.run, args.checkpoint, args.out)}")


def _add_curves(sub):
    p = sub.add_parser("curves", help="plot losses and per-epoch coherence of one or more runs side by side",
                       description="Draw the learning curves of runs (from each RUN/metrics.jsonl): losses on the left, "
                                   "the per-epoch cross coherence on the right with chance dashed; one colour per run.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write (an existing file only if it is a PNG image)")
    p.add_argument("--title", default="", help="figure title")
    p.set_defaults(func=_curves)


def _curves(args):
    from .evaluation.curves import plot_curves
    from .run import load_history

    histories = {}
    for run in args.runs:
        label = run.name if run.name not in histories else str(run)
        histories[label] = load_history(run)
    print(f"wrote {plot_curves(histories, args.out, title=args.title)}")


def _add_report(sub):
    p = sub.add_parser("report", help="tables (paper Tables 3, 4) and plots (Fig. 5, 7) over evaluated runs",
                       description="Group evaluated runs by (model, dataset, unpaired scheme, paired fraction) and write "
                                   "OUT/report.md with mean +- std over seeds beside the paper's numbers, plus "
                                   "coherence-vs-f and latent-accuracy-vs-f plots.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories (evaluated with 'memevae evaluate')")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md and its figures")
    p.add_argument("--strict", action="store_true", help="fail on a run without evaluation/metrics.json (default: list it)")
    p.set_defaults(func=_report)


def _report(args):
    from .evaluation.paper.report import write_report

    path = write_report(args.runs, args.out, strict=args.strict)
    print(f"wrote {path}")


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="train, evaluate and report a grid of runs from a TOML file (Tables 3-5, 7)",
                       description="Expand the grid of a sweep file (data sets x models x schemes x f x seeds), train the "
                                   "runs in parallel processes (finished ones skipped, interrupted ones resumed), evaluate "
                                   "each and write SWEEP/report/report.md. Examples ship with memevae: memevae sweep --list.",
                       epilog="examples:\n  memevae sweep table3 --epochs 2 --limit 512 --jobs 2   # a shipped example, "
                              "reduced budget\n  memevae sweep my-grid.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="a sweep file, or the name of a shipped example (see --list)")
    p.add_argument("--list", action="store_true", help="list the shipped example sweeps")
    p.add_argument("--epochs", type=int, help="epochs per run: a stated reduced budget (default: the file's)")
    p.add_argument("--limit", type=int, metavar="N", help="training rows per run: a stated reduced budget (default: the file's)")
    p.add_argument("--jobs", type=int, help="runs at once (default: the file's, else 1)")
    p.add_argument("--out", help="the sweep's folder (default sweeps/<name>)")
    p.add_argument("--data-dir", type=Path, help="folder with the official files for every run (default: the file's, else the shipped sample)")
    p.add_argument("--backend", choices=["local", "submitit"], help="local processes (default) or submitit (Slurm)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_sweep)


def _sweep(args):
    from . import sweeps

    if args.list:
        for name, path in sweeps.examples().items():
            print(f"{name:<14} {sweeps.describe(path)}")
        return
    if not args.config:
        raise ValueError("memevae sweep needs a sweep file or a shipped example's name (memevae sweep --list)")
    sweep = sweeps.load_sweep(sweeps.find(args.config), data_dir=args.data_dir, epochs=args.epochs, limit=args.limit, jobs=args.jobs, out=args.out,
                              backend=args.backend)
    result = sweeps.run_sweep(sweep, progress=not args.quiet)
    if result["report"]:
        print(f"report written to {result['report']} ({result['runs']} runs, {result['seconds'] / 60:.1f} min)")
    if result["failed"]:
        raise ValueError(f"{len(result['failed'])} run(s) failed: {', '.join(result['failed'])}; see "
                         f"{sweep.folder / 'logs'}; run the same command again to resume")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="memevae",
        description="MEME multimodal VAEs trained by mutual supervision (Joy et al., ICLR 2022): training, "
                    "partial-observation schemes and cross-generation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"memevae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_translate(sub)
    _add_features(sub)
    _add_judges(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_curves(sub)
    _add_snr(sub)
    _add_sweep(sub)
    return parser


def main(argv=None) -> int:
    """The ``memevae`` command. Run on the process's own command line (``argv`` None: the
    installed command, ``python -m memevae.cli``, a sweep's runs), memevae owns the process, so its
    training keeps malloc's freed memory (:func:`memevae.training.cpu.own_process`); called with an
    ``argv`` list from another program, it leaves that program's malloc as it is."""
    from .data import DataError
    from .training.rundir import RunError
    from .training.trainer import TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:
        from .training.cpu import own_process

        own_process()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        args.func(args)
    except (DataError, RunError, TrainingError, ValueError, FileNotFoundError) as error:
        print(f"memevae: error: {error}", file=sys.stderr)  # every rank of a torchrun run: any may fail first
        return 1
    except Interrupted as interrupted:
        print(f"memevae: {interrupted}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("memevae: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
