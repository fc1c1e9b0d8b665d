"""The ``nnunet-glacier`` command: one entry point with sub-commands.

Exit codes: 0 success, 1 bad input, configuration or model folder, a failed
step (:mod:`nnunet_glacier.errors`; the message names the file and the
problem) or an operating-system error (read-only or full disk, a file where a
folder is expected; one line naming the path), 2 wrong usage (option values
are checked when parsed: sizes positive and finite, counts >= 1, ...), 130
interrupted.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nnunet_glacier import __version__
from nnunet_glacier.data.caffe import SPLITS
from nnunet_glacier.data.experiments import base_evaluation, experiment_names, profiles, resolve_profile
from nnunet_glacier.data.synthetic import MIN_SIZE_PX
from nnunet_glacier.errors import ConfigError, GlacierError, InputError, os_error_message
from nnunet_glacier.evaluation.figure_options import FORMATS, GROUP_COLUMNS
from nnunet_glacier.evaluation.paper import CAFFE_BASELINES_M
from nnunet_glacier.field.quality import QualitySettings
from nnunet_glacier.nnunet.folds import FOLD_ALL, parse_fold
from nnunet_glacier.nnunet.workspace import DEFAULT_WORK
from nnunet_glacier.pipeline.reproduce import STEPS

if TYPE_CHECKING:
    from nnunet_glacier.data.experiments import Experiment
    from nnunet_glacier.nnunet.prediction_types import RunReport


def _add_work(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", type=Path, default=None,
                        help="work directory holding nnUNet_raw/, nnUNet_preprocessed/, nnUNet_results/ "
                             "(default: the nnUNet_* environment variables if set, else ./work)")


def _profile(text: str) -> str:
    """A profile's name or the path of a profile JSON file (see ``experiments.resolve_profile``)."""
    try:
        return resolve_profile(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _fold(text: str):
    """A fold: a number or ``all``."""
    try:
        return parse_fold(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


Number = TypeVar("Number", int, float)


def _checked(value: Number, holds: bool, requirement: str, text: str) -> Number:
    """``value`` if ``holds``, else the usage error ``must be <requirement>, got <text>``."""
    if not holds:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    """A finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    return _checked(value, math.isfinite(value), "a finite number", text)


def _whole_number(text: str) -> int:
    """A whole number as ``int`` reads it (``1.5`` and ``abc`` are refused)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _positive_finite_float(text: str) -> float:
    """A number > 0 and finite, e.g. a pixel size or a width in metres."""
    value = _finite_float(text)
    return _checked(value, value > 0, "a positive number", text)


def _non_negative_finite_float(text: str) -> float:
    """A number >= 0 and finite, e.g. a length threshold in metres."""
    value = _finite_float(text)
    return _checked(value, value >= 0, "a number >= 0", text)


def _fraction(text: str) -> float:
    """A number in 0..1 (both ends included)."""
    value = _finite_float(text)
    return _checked(value, 0 <= value <= 1, "a number in 0..1", text)


def _step_fraction(text: str) -> float:
    """A sliding-window step as a fraction of the patch: above 0, at most 1."""
    value = _finite_float(text)
    return _checked(value, 0 < value <= 1, "a fraction above 0 and at most 1", text)


def _factor(text: str) -> float:
    """A finite factor >= 1 (a ratio's allowed range is ``1/factor .. factor``)."""
    value = _finite_float(text)
    return _checked(value, value >= 1, "a number >= 1", text)


def _at_least_one(text: str) -> int:
    """A whole number >= 1, e.g. a count of processes, epochs or scenes."""
    value = _whole_number(text)
    return _checked(value, value >= 1, "a whole number >= 1", text)


def _non_negative_int(text: str) -> int:
    """A whole number >= 0, e.g. a count that may be zero."""
    value = _whole_number(text)
    return _checked(value, value >= 0, "a whole number >= 0", text)


def _scene_edge(text: str) -> int:
    """A synthetic scene's edge in pixels: a whole number >= ``synthetic.MIN_SIZE_PX``."""
    value = _whole_number(text)
    return _checked(value, value >= MIN_SIZE_PX, f"a whole number >= {MIN_SIZE_PX}", text)


def _device(text: str) -> str:
    """A ``--device`` choice; ``cuda`` only where torch sees a CUDA GPU (torch is imported only for ``cuda``,
    so that ``--help`` stays quick)."""
    if text == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError("cuda asked for, but torch finds no CUDA GPU here; use cpu or auto")
    return text


def _add_profile(parser: argparse.ArgumentParser, default: str = "paper") -> None:
    parser.add_argument("--profile", default=default, type=_profile, metavar="PROFILE",
                        help=f"size profile: {', '.join(profiles())} (configs/profiles; tiny = CPU-sized) or the path "
                             f"of a profile .json file of the same form (default: {default})")


def _add_pixel_size(parser: argparse.ArgumentParser, *, also_wins_over: str = "") -> None:
    """``--pixel-size``: in every command the size of every image, winning over what the data say."""
    parser.add_argument("--pixel-size", type=_positive_finite_float, default=None, metavar="METRES",
                        help=f"pixel size in metres of every image; it wins over the resolution in CaFFe names"
                             f"{also_wins_over} (needed for downscaled copies such as caffe_256)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", type=_device, choices=["auto", "cpu", "cuda"],
                        help="compute device (default: auto = CUDA if available, else CPU)")


def _shard(text: str) -> tuple[int, int]:
    """A shard ``K/N`` (:func:`nnunet_glacier.pipeline.slurm.parse_shard`)."""
    from nnunet_glacier.pipeline.slurm import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _add_predictor_options(parser: argparse.ArgumentParser) -> None:
    """Options of a trained model's predictor: folds, device, sliding-window step, mirroring."""
    parser.add_argument("--folds", type=_fold, nargs="+", default=None, metavar="K",
                        help=f"folds to ensemble, numbers or {FOLD_ALL} (nnU-Net's fold trained on every case; "
                             "default: every trained fold, fold_all included)")
    _add_device(parser)
    parser.add_argument("--step-size", type=_step_fraction, default=None,
                        help="sliding-window step as a fraction of the patch (default: 0.5; 0.75 with --fast)")
    parser.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (4x faster)")
    parser.add_argument("--fast", action="store_true",
                        help="the fast preset: no mirroring and a step of 0.75 (about 7x less network work; "
                             "its cost in accuracy is in the README)")
    parser.add_argument("--low-memory", action="store_true",
                        help="keep peak memory flat in the number of folds (about 3x slower on the CPU)")


def _predictor(args: argparse.Namespace):
    """The :class:`GlacierPredictor` of ``args.model`` with the options of :func:`_add_predictor_options`."""
    from nnunet_glacier.nnunet.predict import FAST_STEP_SIZE, GlacierPredictor

    step_size = args.step_size if args.step_size is not None else FAST_STEP_SIZE if args.fast else 0.5
    return GlacierPredictor(args.model, args.folds, device=args.device, step_size=step_size,
                            mirroring=not (args.no_mirroring or args.fast), low_memory=args.low_memory)


def _add_run_options(parser: argparse.ArgumentParser, *, default_work: Path = DEFAULT_WORK,
                     default_profile: str = "paper") -> None:
    parser.add_argument("--work", type=Path, default=None,
                        help=f"work directory for everything (default: {default_work}, with nnU-Net's folders "
                             "from the nnUNet_raw/nnUNet_preprocessed/nnUNet_results variables when all are set)")
    parser.set_defaults(default_work=default_work)
    _add_profile(parser, default_profile)
    parser.add_argument("--folds", type=_fold, nargs="+", default=None, choices=[*range(5), FOLD_ALL], metavar="K",
                        help=f"folds to train and ensemble: 0..4 or {FOLD_ALL} (trained on every training case, "
                             "as nnU-Net's fold all; default: the profile's)")
    _add_device(parser)
    _add_pixel_size(parser, also_wins_over=" and over the sizes export recorded")
    parser.add_argument("--no-mirroring", action="store_true", help="predict without test-time mirroring")
    parser.add_argument("--max-epochs", type=_at_least_one, default=None,
                        help="override the profile's number of epochs")
    parser.add_argument("--iterations", type=_at_least_one, default=None,
                        help="override training iterations per epoch")


def _add_seed(parser: argparse.ArgumentParser, *, default: int, seeds: str = "every fold's training") -> None:
    parser.add_argument("--seed", type=_non_negative_int, default=default,
                        help=f"seed of {seeds} (default: {default}); the same seed trains the same model")


def _experiment_choice(parser: argparse.ArgumentParser, *, many: bool) -> None:
    if many:
        parser.add_argument("--experiments", nargs="+", default=["all"], choices=[*experiment_names(), "all"],
                            metavar="NAME", help=f"experiments: {', '.join(experiment_names())}; all = the paper's "
                                                 "six (default)")
        parser.add_argument("--baseline", action="store_true",
                            help="also run the baseline experiments (nnU-Net's stock trainer on our datasets; "
                                 "role 'baseline' in configs/) and compare every experiment with them in the report")
    else:
        parser.add_argument("--experiment", required=True, choices=experiment_names(), metavar="NAME",
                            help=f"one of {', '.join(experiment_names())}")


def _cmd_export(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet.export import export_dataset
    from nnunet_glacier.nnunet.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    folder = export_dataset(args.data, get_experiment(args.experiment, args.profile), workspace.raw,
                            pixel_size=args.pixel_size, num_workers=args.workers)
    print(f"wrote {folder}")
    return 0


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    """``export``: a CaFFe root as an nnU-Net raw dataset of one experiment."""
    export = commands.add_parser("export", help="turn a CaFFe root into an nnU-Net raw dataset for one experiment",
                                 description="Write imagesTr/labelsTr/imagesTs and dataset.json for one experiment.")
    export.add_argument("--data", type=Path, required=True, help="CaFFe root (sar_images/, zones/, fronts/)")
    _experiment_choice(export, many=False)
    _add_work(export)
    _add_profile(export)
    _add_pixel_size(export)
    export.add_argument("--workers", type=_at_least_one, default=None,
                        help="parallel processes (default: all cores)")
    export.set_defaults(handler=_cmd_export)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nnunet_glacier.evaluation.evaluate import evaluate_predictions, format_tables

    evaluation = evaluate_predictions(args.predictions, args.data, split=args.split, out=args.out,
                                      pixel_size=args.pixel_size, dataset=args.dataset,
                                      save_fronts=not args.no_save_fronts, extra_routes=args.extra_routes,
                                      workers=args.workers)
    print(format_tables(evaluation.summary))
    used = evaluation.summary["settings"]
    print(f"pixel sizes from: {used['pixel_size_source']} {used.get('pixel_size_dataset') or ''}".rstrip())
    print(f"wrote {evaluation.out / 'summary.json'} and per_image.csv")
    return 0


def _extra_route(text: str) -> str:
    """An extra route's name, checked by :func:`~nnunet_glacier.evaluation.evaluate.check_extra_routes` (imported
    only when ``--extra-routes`` is given: it brings post-processing's imports)."""
    from nnunet_glacier.evaluation.evaluate import check_extra_routes

    try:
        check_extra_routes([text])
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def _add_evaluate_command(commands: argparse._SubParsersAction) -> None:
    """``evaluate``: CaFFe-exact evaluation of a predictions folder."""
    evaluate = commands.add_parser(
        "evaluate", help="post-process predictions and compute MDE and zone metrics (CaFFe-exact)",
        description="Evaluate every route present in a predictions folder (<stem>_zones.png, <stem>_front.png, "
                    "<stem>_fused.png) against a CaFFe split: post-processing, bounding boxes, MDE (pooled, mean, "
                    "median) and zone IoU/precision/recall/F1, with breakdowns. Writes summary.json, "
                    "per_image.csv and <stem>_front_post.png.")
    evaluate.add_argument("--predictions", type=Path, required=True, help="folder of prediction PNGs")
    evaluate.add_argument("--data", type=Path, required=True, help="CaFFe root (sar_images/, zones/, fronts/)")
    evaluate.add_argument("--split", default="test", choices=SPLITS, help="CaFFe split (default: test)")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output folder (default: PREDICTIONS/evaluation)")
    _add_pixel_size(evaluate, also_wins_over=" and over the sizes export recorded (--dataset)")
    evaluate.add_argument("--dataset", type=Path, default=None,
                          help="the nnU-Net raw dataset exported from DATA (e.g. "
                               "work/nnUNet_raw/Dataset506_CaFFeFused): use the pixel size export recorded for each "
                               "scene (default: the names' resolutions)")
    evaluate.add_argument("--no-save-fronts", action="store_true",
                          help="do not write the post-processed fronts <stem>_front_post.png")
    evaluate.add_argument("--extra-routes", type=_extra_route, nargs="+", default=[], metavar="ROUTE",
                          help="also evaluate routes beyond the benchmark's (options, never the default): "
                               "fused_split = the fused map's front band split down its middle, no glacier "
                               "dilation; fused_front = the fused map's front class through the front route")
    evaluate.add_argument("--workers", type=_at_least_one, default=None,
                          help="parallel processes (default: all cores)")
    evaluate.set_defaults(handler=_cmd_evaluate)


def _named_glob(text: str) -> tuple[str, str]:
    """``NAME=GLOB`` with both parts non-empty."""
    name, sep, pattern = text.partition("=")
    if not sep or not name or not pattern:
        raise argparse.ArgumentTypeError(f"expected NAME=GLOB, got {text!r}")
    return name, pattern


def _cmd_compare(args: argparse.Namespace) -> int:
    from nnunet_glacier.evaluation.compare import compare_runs, comparison_markdown, write_comparison

    runs = dict(args.runs)
    if len(runs) != len(args.runs):
        print("error: --runs names must be unique", file=sys.stderr)
        return 2
    comparison = compare_runs(runs)
    print(comparison_markdown(comparison), end="")
    print("wrote " + ", ".join(map(str, write_comparison(comparison, args.out))))
    return 0


def _add_compare_command(commands: argparse._SubParsersAction) -> None:
    """``compare``: experiments' fold results side by side."""
    compare = commands.add_parser(
        "compare", help="experiments' fold results side by side with Welch t-tests",
        description="Per experiment and route: mean ± std over folds of the pooled MDE and the macro zone IoU; "
                    "Welch t-tests between every pair on the fold-level MDE. Writes compare.json and compare.md.")
    compare.add_argument("--runs", type=_named_glob, nargs="+", required=True, metavar="NAME=GLOB",
                         help="an experiment's name and a glob matching its folds' summary.json files "
                              "(quote it, e.g. 'fused=work/evaluation/fused/fold_*/summary.json')")
    compare.add_argument("--out", type=Path, default=Path("."), help="output folder (default: .)")
    compare.set_defaults(handler=_cmd_compare)


def _cmd_synth(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.synthetic import generate_caffe

    try:
        images = generate_caffe(args.out, n_train=args.n_train, n_test=args.n_test, size=tuple(args.size),
                                seed=args.seed, with_bounding_boxes=not args.no_bounding_boxes)
    except InputError:
        raise  # the output folder holds other scenes: bad input, exit code 1 from main()
    except ValueError as err:  # scenes too small, or more of a glacier than it has dates for: wrong usage
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(images)} synthetic scenes to {args.out}")
    return 0


def _add_synth_command(commands: argparse._SubParsersAction) -> None:
    """``synth``: synthetic CaFFe-like scenes."""
    synth = commands.add_parser("synth", help="write synthetic CaFFe-like scenes (for tests and the demo)",
                                description="Write seeded synthetic fjord scenes in the CaFFe layout and naming: "
                                            "sar_images/, zones/, fronts/ and bounding_boxes/.")
    synth.add_argument("--out", type=Path, required=True, help="output CaFFe root (empty or new folder)")
    synth.add_argument("--n-train", type=_non_negative_int, default=8, metavar="N",
                       help="training scenes (default: 8)")
    synth.add_argument("--n-test", type=_non_negative_int, default=4, metavar="N", help="test scenes (default: 4)")
    synth.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
                       help="scene size in pixels, rows and columns (default: 128 128)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    synth.add_argument("--no-bounding-boxes", action="store_true", help="do not write bounding_boxes/")
    synth.set_defaults(handler=_cmd_synth)


def _cmd_plan(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet.plans import plan_and_preprocess, write_configuration
    from nnunet_glacier.nnunet.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    experiment = get_experiment(args.experiment, args.profile)
    if not (workspace.raw / experiment.dataset / "dataset.json").is_file():
        raise InputError(workspace.raw / experiment.dataset, "no exported dataset: run `nnunet-glacier export` first")
    plan_and_preprocess(experiment, workspace, num_processes=args.processes, verify=not args.no_verify)
    configuration = write_configuration(experiment, workspace)
    print(f"{experiment.dataset}: configuration {experiment.configuration}, patch {configuration['patch_size']}, "
          f"batch {configuration['batch_size']}")
    return 0


def _add_plan_command(commands: argparse._SubParsersAction) -> None:
    """``plan``: nnU-Net planning and preprocessing, plus our plans edit."""
    plan = commands.add_parser("plan", help="nnU-Net planning and preprocessing, plus our plans edit",
                               description="Run nnU-Net's fingerprint, planner and 2d preprocessing for the "
                                           "experiment's dataset, then write the profile's configuration "
                                           "(patch, batch, architecture, schedule) into nnUNetPlans.json.")
    _experiment_choice(plan, many=False)
    _add_work(plan)
    _add_profile(plan)
    plan.add_argument("--processes", type=_at_least_one, default=2, help="processes for nnU-Net (default: 2)")
    plan.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    plan.set_defaults(handler=_cmd_plan)


def _cmd_train(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet.training import train_fold
    from nnunet_glacier.nnunet.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    experiment = get_experiment(args.experiment, args.profile)
    for fold in args.fold:
        fold_dir = train_fold(experiment, fold, workspace, device=args.device, max_epochs=args.max_epochs,
                              iterations=args.iterations, val_iterations=args.val_iterations, seed=args.seed)
        print(f"{experiment.name} fold {fold}: {fold_dir}")
    return 0


def _add_train_command(commands: argparse._SubParsersAction) -> None:
    """``train``: training folds of an experiment."""
    train = commands.add_parser("train", help="train folds of an experiment (resumes interrupted runs)",
                                description="Train with nnU-Net v2 and our trainers; a finished fold is skipped, "
                                            "an interrupted one resumes from its newest checkpoint.")
    _experiment_choice(train, many=False)
    train.add_argument("--fold", type=_fold, nargs="+", required=True, choices=[*range(5), FOLD_ALL], metavar="K",
                       help=f"fold(s) 0..4 of nnU-Net's five-fold split, or {FOLD_ALL} to train on every training "
                            "case (nnU-Net's fold all)")
    _add_work(train)
    _add_profile(train)
    _add_device(train)
    train.add_argument("--max-epochs", type=_at_least_one, default=None,
                       help="override the plans' number of epochs")
    train.add_argument("--iterations", type=_at_least_one, default=None,
                       help="override training iterations per epoch")
    train.add_argument("--val-iterations", type=_at_least_one, default=None,
                       help="override validation iterations per epoch")
    _add_seed(train, default=0, seeds="the training (random, NumPy and torch)")
    train.set_defaults(handler=_cmd_train)


def _finish_run(report: RunReport, what: str, where: str) -> int:
    """Print a run's counts and failures; exit code 1 if any scene failed."""
    print(f"{what}: {len(report.written)} scenes written, {len(report.skipped)} already done, "
          f"{len(report.failed)} failed {where}")
    for path, problem in report.failed:
        print(f"error: {path}: {problem}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.field.geo import PNG_SUFFIXES, list_scenes
    from nnunet_glacier.nnunet.predict import predict_images
    from nnunet_glacier.nnunet.training import model_folder
    from nnunet_glacier.nnunet.workspace import Workspace

    if args.model is None:
        workspace = Workspace.resolve(args.work).activate()
        args.model = model_folder(workspace, get_experiment(args.experiment, args.profile))
    predictor = _predictor(args)
    report = predict_images(predictor, list_scenes(args.input, PNG_SUFFIXES), args.output,
                            per_fold=args.per_fold, save_probabilities=args.save_probabilities)
    return _finish_run(report, f"folds {predictor.folds}", f"-> {args.output}")


def _add_predict_command(commands: argparse._SubParsersAction) -> None:
    """``predict``: prediction of PNG scenes."""
    predict = commands.add_parser("predict", help="predict scenes with one or several folds (mean-probability ensemble)",
                                  description="Sliding-window prediction; writes <stem>_zones.png, <stem>_front.png "
                                              "(and _boundary/_fused) in CaFFe pixel values.")
    model = predict.add_mutually_exclusive_group(required=True)
    model.add_argument("--experiment", choices=experiment_names(), metavar="NAME",
                       help=f"a trained experiment of the work directory: {', '.join(experiment_names())}")
    model.add_argument("-m", "--model", type=Path, help="an nnU-Net results folder (holding fold_K/)")
    predict.add_argument("-i", "--input", type=Path, required=True, help="a PNG scene or a folder of them")
    predict.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    predict.add_argument("--per-fold", action="store_true", help="also write each fold's prediction to OUTPUT/fold_K")
    predict.add_argument("--save-probabilities", action="store_true",
                         help="also write <stem>_probabilities.npz (float16, per task)")
    _add_predictor_options(predict)
    _add_work(predict)
    _add_profile(predict)
    predict.set_defaults(handler=_cmd_predict)


def _cmd_plot_overlays(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.caffe import discover
    from nnunet_glacier.evaluation.plots import find_predictions, write_overlays

    samples = discover(args.data, (args.split,), require_labels=False)
    pairs = find_predictions(samples, args.predictions)
    written = write_overlays(pairs[:args.limit], args.out)
    print(f"wrote {len(written)} overlays to {args.out} ({len(samples) - len(pairs)} of {len(samples)} "
          f"{args.split} scenes have no predicted front)")
    return 0


def _cmd_plot_boxplot(args: argparse.Namespace) -> int:
    from nnunet_glacier.evaluation.plots import mde_series, no_front_series, plot_mde_boxplot, save_figure

    csvs = dict(args.csv)
    if len(csvs) != len(args.csv):
        print("error: --csv labels must be unique", file=sys.stderr)
        return 2
    figure = plot_mde_boxplot(mde_series(csvs, args.by), by=args.by, no_front=no_front_series(csvs, args.by),
                              baselines={} if args.no_baselines else CAFFE_BASELINES_M)
    print("wrote " + ", ".join(map(str, save_figure(figure, args.out, args.formats))))
    return 0


def _cmd_plot_timeline(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.caffe import discover
    from nnunet_glacier.evaluation.plots import plot_timeline, save_figure

    figure = plot_timeline(discover(args.data, tuple(args.split), require_labels=False))
    print("wrote " + ", ".join(map(str, save_figure(figure, args.out, args.formats))))
    return 0


def _cmd_plot_retreat(args: argparse.Namespace) -> int:
    from nnunet_glacier.data.caffe import discover
    from nnunet_glacier.evaluation.plots import plot_label_retreat, save_figure

    figure = plot_label_retreat(discover(args.data, tuple(args.split), require_labels=False), args.glacier,
                                where=args.data, background_stem=args.background, all_sensors=args.all_sensors)
    print("wrote " + ", ".join(map(str, save_figure(figure, args.out, args.formats))))
    return 0


def _labelled_csv(text: str) -> tuple[str, Path]:
    """``LABEL=PATH``, or a bare ``PATH`` labelled by its folder's name."""
    label, sep, path = text.partition("=")
    if not sep:
        return Path(text).resolve().parent.name, Path(text)
    if not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    return label, Path(path)


def _add_plot_command(commands: argparse._SubParsersAction) -> None:
    """``plot``: the figures, one sub-command each."""
    plot = commands.add_parser("plot", help="figures: overlays, MDE box plots, dataset timeline, retreat maps",
                               description="Matplotlib figures (PNG and PDF) and fast per-scene overlay PNGs.")
    figures = plot.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    overlays = figures.add_parser("overlays", help="per-scene PNGs of predicted vs label front on the SAR image",
                                  description="Write <stem>_overlay.png: label front blue, predicted front yellow, "
                                              "both magenta, bounding box cyan. Uses <stem>_front_post.png "
                                              "(post-processed) if present, else <stem>_front.png.")
    overlays.add_argument("--data", type=Path, required=True, help="CaFFe root (sar_images/, fronts/)")
    overlays.add_argument("--predictions", type=Path, required=True,
                          help="evaluation or prediction folder holding <stem>_front[_post].png")
    overlays.add_argument("--out", type=Path, required=True, help="output folder")
    overlays.add_argument("--split", default="test", choices=SPLITS, help="CaFFe split (default: test)")
    overlays.add_argument("--limit", type=_at_least_one, default=None, metavar="N",
                          help="at most N scenes (in stem order)")
    overlays.set_defaults(handler=_cmd_plot_overlays)

    boxplot = figures.add_parser("boxplot", help="box plots of per-image MDE by group, result sets side by side",
                                 description="Per-image MDE (m, log axis) from per_image.csv files, with the CaFFe "
                                             "baselines (" + ", ".join(f"{name} {metres:g} m" for name, metres
                                                                       in CAFFE_BASELINES_M.items()) + "); "
                                             "images without a front are counted above their group ('no front: "
                                             "n'); boxes of few images show each image. A file holding several "
                                             "routes gives one box per route.")
    boxplot.add_argument("--csv", type=_labelled_csv, nargs="+", required=True, metavar="LABEL=PATH",
                         help="per_image.csv files with a label each (a bare PATH is labelled by its folder)")
    boxplot.add_argument("--no-baselines", action="store_true",
                         help="leave out the CaFFe baselines (e.g. for results on synthetic data)")
    boxplot.add_argument("--by", default="glacier", choices=GROUP_COLUMNS, help="grouping (default: glacier)")

    timeline = figures.add_parser("timeline", help="acquisition dates per glacier and sensor",
                                  description="One row per glacier, colour and marker per sensor; "
                                              "training scenes filled, test scenes hollow.")
    timeline.add_argument("--data", type=Path, required=True, help="CaFFe root")

    retreat = figures.add_parser("retreat", help="all label fronts of one glacier coloured by date",
                                 description="Label fronts over the latest scene (or --background). CaFFe's images "
                                             "are not co-registered across sensors, so only fronts of the "
                                             "background's sensor are drawn unless --all-sensors.")
    retreat.add_argument("--data", type=Path, required=True, help="CaFFe root")
    retreat.add_argument("--glacier", required=True, help="glacier code (e.g. JAC) or full name")
    retreat.add_argument("--background", default=None, metavar="STEM", help="background scene (default: the latest)")
    retreat.add_argument("--all-sensors", action="store_true", help="draw the fronts of every sensor")

    for figure, handler in ((boxplot, _cmd_plot_boxplot), (timeline, _cmd_plot_timeline),
                            (retreat, _cmd_plot_retreat)):
        figure.add_argument("--out", type=Path, required=True,
                            help="output file; its .png/.pdf suffix is replaced by each format's")
        figure.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS,
                            help="formats to write (default: png pdf)")
        figure.set_defaults(handler=handler)
    for figure in (timeline, retreat):
        figure.add_argument("--split", nargs="+", default=list(SPLITS), choices=SPLITS,
                            help="CaFFe splits (default: train test)")


def _selected(args: argparse.Namespace) -> list[Experiment]:
    """The experiments of ``--experiments`` (and the baselines with ``--baseline``)."""
    from nnunet_glacier.data.experiments import baselines, select

    names = list(args.experiments)
    if getattr(args, "baseline", False):
        names += [b.name for b in baselines(args.profile)]
    return select(names, args.profile)


def _reproduction(args: argparse.Namespace, data: Path):
    from nnunet_glacier.pipeline.layout import RunLayout
    from nnunet_glacier.pipeline.reproduce import Reproduction

    return Reproduction(data=data, layout=RunLayout.resolve(args.work, args.default_work),
                        experiments=_selected(args), folds=args.folds,
                        device=args.device, pixel_size=args.pixel_size, mirroring=not args.no_mirroring,
                        max_epochs=args.max_epochs, iterations=args.iterations, seed=args.seed)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from nnunet_glacier.pipeline.reproduce import run_reproduction

    run = _reproduction(args, args.data)
    run_reproduction(run, args.steps)
    if "report" in args.steps:
        print(f"report: {run.layout.report_dir / 'report.md'}")
    return 0


def _add_reproduce_command(commands: argparse._SubParsersAction) -> None:
    """``reproduce``: the paper end to end."""
    reproduce = commands.add_parser(
        "reproduce", help="the paper end to end: export, plan, train, predict, ensemble, evaluate, report",
        description="Run the method's steps for the chosen experiments. Every step records what it was made from "
                    "(input files, settings, checkpoints, seed) and is skipped while that holds; a change redoes the "
                    "step and everything made from it, and re-running the command resumes an interrupted "
                    "reproduction.")
    reproduce.add_argument("--data", type=Path, required=True, help="CaFFe root (sar_images/, zones/, fronts/)")
    _experiment_choice(reproduce, many=True)
    reproduce.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, metavar="STEP",
                           help=f"steps to run, in this order: {', '.join(STEPS)} (default: all)")
    _add_run_options(reproduce)
    _add_seed(reproduce, default=0)
    reproduce.set_defaults(handler=_cmd_reproduce)


def _cmd_demo(args: argparse.Namespace) -> int:
    from nnunet_glacier.pipeline.reproduce import run_demo

    report = run_demo(_reproduction(args, args.data), n_train=args.n_train, n_test=args.n_test,
                      size=args.size, seed=args.seed)
    print(f"demo finished; report: {report}")
    return 0


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    """``demo``: the whole method on synthetic scenes."""
    demo = commands.add_parser("demo", help="see the whole method work on a laptop in minutes (no data, no GPU)",
                               description="Write synthetic CaFFe-like scenes (or use --data), train the fused-label "
                                           "model briefly, predict, evaluate and write a report with overlays.")
    demo.add_argument("--data", type=Path, default=None, help="a CaFFe root to use instead of synthetic scenes")
    demo.add_argument("--experiments", nargs="+", default=["fused"], choices=[*experiment_names(), "all"],
                      metavar="NAME", help="experiments to run (default: fused)")
    demo.add_argument("--n-train", type=_at_least_one, default=24, help="synthetic training scenes (default: 24)")
    demo.add_argument("--n-test", type=_at_least_one, default=6, help="synthetic test scenes (default: 6)")
    demo.add_argument("--size", type=_scene_edge, default=256, help="synthetic scene edge in pixels (default: 256)")
    _add_run_options(demo, default_work=Path("demo"), default_profile="demo")
    _add_seed(demo, default=1, seeds="the synthetic scenes and of training")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_detect(args: argparse.Namespace) -> int:
    from nnunet_glacier.field.detect import FRONTS_GPKG, OutputOptions, detect, write_summary
    from nnunet_glacier.field.geo import list_scenes
    from nnunet_glacier.field.models import resolve_model
    from nnunet_glacier.field.quality import QUALITY_CSV, QualitySettings
    from nnunet_glacier.pipeline.slurm import shard
    from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

    quality = QualitySettings(length_factor=args.length_factor, max_disagreement=args.max_disagreement)
    if args.merge_only:
        write_summary(args.output, quality)
        print(f"merged every scene record of {args.output} into {args.output / FRONTS_GPKG} and "
              f"{args.output / QUALITY_CSV}")
        return 0
    if args.model is None or args.input is None:
        print("error: detect needs -m/--model and -i/--input (unless --merge-only)", file=sys.stderr)
        return 2
    every_scene = list_scenes(args.input)
    context = list_scenes(args.context) if args.context is not None else []
    scenes = shard(every_scene, *args.shard) if args.shard is not None else every_scene
    args.model = resolve_model(args.model)
    predictor = _predictor(args)
    if predictor.temporal.enabled and args.shard is not None:  # other shards' scenes are this shard's context too
        in_shard = set(scenes)
        context = [*(scene for scene in every_scene if scene not in in_shard), *context]
    report = detect(predictor, scenes, args.output, pixel_size_m=args.pixel_size,
                    default_pixel_size_m=args.default_pixel_size, glacier=args.glacier,
                    settings=PostprocessSettings(min_length_m=args.min_length_m),
                    quality=quality, options=OutputOptions(uncertainty=args.uncertainty, rfc7946=args.rfc7946),
                    zero_border=not args.zeros_are_data, summary=not args.no_summary, context=context)
    return _finish_run(report, f"folds {predictor.folds}",
                       f"-> {args.output} (fronts: {args.output / FRONTS_GPKG}, flags: {args.output / QUALITY_CSV})")


def _add_detect_command(commands: argparse._SubParsersAction) -> None:
    """``detect``: fronts of new scenes."""
    defaults = QualitySettings()
    min_length_m = base_evaluation().front_min_length_m
    detect = commands.add_parser(
        "detect", help="fronts for new scenes: GeoTIFF/PNG in, COGs, fronts.gpkg, GeoJSON lines, quality flags",
        description="Run a trained model (the fold ensemble) over PNG or GeoTIFF scenes, no-data aware. Per "
                    "scene: zone and front rasters (Cloud-Optimized GeoTIFF with the input's CRS, nodata, colour "
                    "table and class names when georeferenced, else PNG), optionally an uncertainty raster, the "
                    "front as GeoJSON LineStrings in order along it, an overlay PNG; for the folder: fronts.gpkg "
                    "(every scene's front with its date, glacier and flags) and quality.csv flagging scenes to "
                    "check by hand. Scenes already done are skipped; a failing scene is reported (exit code 1) "
                    "and the others finish.")
    detect.add_argument("-m", "--model", default=None, metavar="MODEL",
                        help="a trained model: an nnU-Net results folder holding fold_K/checkpoint_final.pth, a "
                             "model zip (`nnunet-glacier model export`), the name of an installed model, or "
                             "URL#sha256=<hex> (downloaded once); required unless --merge-only")
    detect.add_argument("-i", "--input", type=Path, default=None,
                        help="a scene (.png, .tif, .tiff), a folder of them or a .txt list of scene paths (one a "
                             "line, relative to the list's folder); required unless --merge-only")
    detect.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    detect.add_argument("--context", type=Path, default=None, metavar="DIR",
                        help="for a model with temporal context: further acquisitions (a folder of scenes or a "
                             ".txt list) used only as context, never detected; each scene takes its nearest "
                             "earlier (and later) acquisitions of its glacier among the input scenes and these "
                             "(dates from CaFFe names, the file name or GeoTIFF metadata); quality.csv counts "
                             "them (context_found) and flags no_context")
    detect.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                        help="only shard K of N of the scenes (every N-th from the K-th; see slurm-detect)")
    detect.add_argument("--no-summary", action="store_true",
                        help="do not rebuild quality.csv and fronts.gpkg at the end (shards of one folder; "
                             "--merge-only builds them)")
    detect.add_argument("--merge-only", action="store_true",
                        help="detect nothing: rebuild quality.csv and fronts.gpkg from every scene record in the "
                             "output folder (after the shards of slurm-detect)")
    _add_predictor_options(detect)
    _add_pixel_size(detect, also_wins_over=" and over a GeoTIFF's transform (with a warning when they differ by "
                                           "more than 1 %%)")
    detect.add_argument("--default-pixel-size", type=_positive_finite_float, default=None, metavar="METRES",
                        help="pixel size in metres only for scenes that have none: neither georeferenced "
                             "(projected CRS) nor CaFFe-named")
    detect.add_argument("--glacier", default=None,
                        help="glacier name for scenes whose file name does not say it (default: unknown)")
    detect.add_argument("--min-length-m", type=_non_negative_finite_float, default=min_length_m,
                        help=f"drop front pieces of at most this length in metres (default: {min_length_m:g}, "
                             "the experiments' setting)")
    detect.add_argument("--length-factor", type=_factor, default=defaults.length_factor,
                        help="flag fronts longer or shorter than the glacier's median length by this factor "
                             f"(default: {defaults.length_factor:g})")
    detect.add_argument("--max-disagreement", type=_fraction, default=defaults.max_disagreement,
                        help="flag scenes whose folds disagree more than this along the front, 0..1 "
                             f"(default: {defaults.max_disagreement:g})")
    detect.add_argument("--uncertainty", action="store_true",
                        help="also write <stem>_uncertainty.tif: per pixel the normalised entropy of the "
                             "ensemble's class probabilities, 0 = certain .. 1 = all classes equally likely")
    detect.add_argument("--rfc7946", action="store_true",
                        help="write the per-scene GeoJSON as RFC 7946 (WGS84 longitude, latitude) instead of in "
                             "the scene's CRS (fronts.gpkg always keeps the scene's CRS)")
    detect.add_argument("--zeros-are-data", action="store_true",
                        help="keep zero-valued regions touching the image border as data (by default they are "
                             "the zero fill of swath borders, i.e. no-data)")
    detect.set_defaults(handler=_cmd_detect)


def _cmd_retreat(args: argparse.Namespace) -> int:
    from nnunet_glacier.field.retreat import retreat

    if args.centreline is not None and args.box_width is None:
        print("error: --centreline needs --box-width (the width of the box along it, metres)", file=sys.stderr)
        return 2
    written = retreat(args.out_dir, glacier=args.glacier, box=args.box, centreline=args.centreline,
                      box_width_m=args.box_width, dest=args.output)
    for glacier, paths in written.items():
        print(f"{glacier}: " + ", ".join(str(p) for p in paths))
    return 0


def _add_retreat_command(commands: argparse._SubParsersAction) -> None:
    """``retreat``: front time series of a detect folder."""
    retreat = commands.add_parser(
        "retreat", help="front time series of a detect folder: fronts by date, position change over time",
        description="Per glacier of a detect output folder: all fronts coloured by date over the latest scene "
                    "(map coordinates), and the front position change over time measured with the rectilinear "
                    "box method (--box, or --centreline with --box-width), else along the mean normal of the "
                    "front inside the fjord. Writes <glacier>_fronts.png/pdf, <glacier>_position.csv and "
                    "<glacier>_position.png/pdf.")
    retreat.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a folder written by `nnunet-glacier detect`")
    guide = retreat.add_mutually_exclusive_group()  # a box or a centre line (the library refuses both too)
    guide.add_argument("--box", type=Path, default=None, metavar="FILE",
                       help="a rectangle across the fjord whose first edge (first to second vertex) is its "
                            "upstream edge: the first Polygon of a vector file (GeoJSON, GeoPackage, ...) or a CSV "
                            "with x,y columns of its corners")
    guide.add_argument("--centreline", type=Path, default=None, metavar="FILE",
                       help="glacier centre line drawn from upstream towards the ocean (a LineString, or a CSV "
                            "with x,y columns): the box is the rectangle along it, --box-width wide")
    retreat.add_argument("--box-width", type=_positive_finite_float, default=None, metavar="METRES",
                         help="width of the box along --centreline, across the fjord (needed with --centreline)")
    retreat.add_argument("--glacier", default=None, help="only this glacier (code or name; default: all)")
    retreat.add_argument("-o", "--output", type=Path, default=None, help="output folder (default: OUT_DIR/retreat)")
    retreat.set_defaults(handler=_cmd_retreat)


def _cmd_model_export(args: argparse.Namespace) -> int:
    from nnunet_glacier.field.models import export_model

    card = export_model(args.model_dir, args.zip, folds=args.folds, name=args.name)
    print(f"wrote {args.zip}: model {card['name']!r}, folds {card['folds']}, tasks {', '.join(card['tasks'])}")
    return 0


def _cmd_model_install(args: argparse.Namespace) -> int:
    from nnunet_glacier.field.models import install_model, is_url, resolve_model

    source = str(args.source)
    folder = resolve_model(source) if is_url(source) else install_model(args.source, name=args.name,
                                                                         force=args.force)
    print(f"installed {folder.parent.parent.name} -> {folder}; use it with: nnunet-glacier detect "
          f"-m {folder.parent.parent.name}")
    return 0


def _cmd_model_list(args: argparse.Namespace) -> int:
    import json

    from nnunet_glacier.field.models import CARD_JSON, installed_models, models_dir

    installed = installed_models()
    print(f"{len(installed)} models installed in {models_dir()}")
    for name, folder in installed.items():
        card = json.loads((folder / CARD_JSON).read_text()) if (folder / CARD_JSON).is_file() else {}
        experiment = (card.get("experiment") or {}).get("name", "?")
        print(f"{name}: experiment {experiment}, tasks {', '.join(card.get('tasks', ['?']))}, "
              f"folds {card.get('folds', '?')}  ({folder})")
    return 0


def _cmd_model_import_v1(args: argparse.Namespace) -> int:
    from nnunet_glacier.field.v1_import import import_v1_model

    folder = import_v1_model(args.source, name=args.name, folds=args.folds, force=args.force)
    name = folder.parent.parent.name
    print(f"imported {args.source} as {name} -> {folder}; use it with: nnunet-glacier detect -m {name}")
    return 0


def _add_model_command(commands: argparse._SubParsersAction) -> None:
    """``model``: model zips and installed models, one sub-command each."""
    model = commands.add_parser(
        "model", help="share trained models: export to a zip with a model card, install, import nnU-Net v1 models, "
                      "list",
        description="Trained models as files, in nnU-Net's zip layout (nnUNetv2_install_pretrained_model_from_zip "
                    "reads them too) plus a model card. Installed models live in $NNUNET_GLACIER_HOME/models "
                    "(default ~/.cache/nnunet_glacier/models) and `detect -m NAME` finds them.")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write a trained model folder as an installable zip",
                                description="Write plans, dataset description, final checkpoints and validation "
                                            "summaries of MODEL_DIR, with model_card.json/.md, into a zip.")
    export.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                        help="the model's nnU-Net results folder, <results>/<Dataset>/<Trainer__Plans__Config>")
    export.add_argument("zip", type=Path, metavar="ZIP", help="the zip to write")
    export.add_argument("--folds", type=_non_negative_int, nargs="+", default=None, metavar="K",
                        help="folds to export (default: every trained fold)")
    export.add_argument("--name", default=None, help="the model's name (default: the zip's file name)")
    export.set_defaults(handler=_cmd_model_export)
    install = actions.add_parser("install", help="install a model zip (or URL#sha256=...) under a name",
                                 description="Check and unpack a model zip into the model store; installing the "
                                             "same zip again does nothing. A URL needs its checksum, "
                                             "URL#sha256=<hex>, and is downloaded once into the cache.")
    install.add_argument("source", metavar="ZIP_OR_URL", help="a model zip, or URL#sha256=<64 hex digits>")
    install.add_argument("--name", default=None,
                         help="install a zip under this name (default: the zip's file name; a URL's model is "
                              "installed as <file name>-<first 8 hex digits of its checksum>)")
    install.add_argument("--force", action="store_true", help="replace another model installed under the name")
    install.set_defaults(handler=_cmd_model_install)
    listing = actions.add_parser("list", help="the installed models", description="List the installed models.")
    listing.set_defaults(handler=_cmd_model_list)
    import_v1 = actions.add_parser(
        "import-v1", help="install a trained nnU-Net v1 model (such as the paper's) as an nnU-Net v2 model",
        description="Convert an nnU-Net v1 trained-model folder (nnUNetTrainerV2, 2-D, fused labels: the paper's "
                    "published model) or a zip of one into an nnU-Net v2 model with a model card, and install "
                    "it. The network is checked against the checkpoint's tensors and the plans; nothing in the "
                    "v1 files runs as code.")
    import_v1.add_argument("source", type=Path, metavar="SOURCE",
                           help="a v1 model folder (.../TaskNNN_Name/nnUNetTrainerV2__nnUNetPlansv2.1/, one of "
                                "its fold_K/ folders, or a folder holding one such model) or a zip of one")
    import_v1.add_argument("--name", default=None,
                           help="install under this name (default: the v1 task's name, e.g. "
                                "Task500_Glacier_zonefronts)")
    import_v1.add_argument("--folds", type=_non_negative_int, nargs="+", default=None, metavar="K",
                           help="folds to import (default: every trained fold; the authors predict with fold 0)")
    import_v1.add_argument("--force", action="store_true", help="replace another model installed under the name")
    import_v1.set_defaults(handler=_cmd_model_import_v1)


def _cluster_settings(args: argparse.Namespace, **hours: int):
    """The :class:`~nnunet_glacier.pipeline.slurm.ClusterSettings` of :func:`_add_cluster_options`."""
    from nnunet_glacier.pipeline.slurm import ClusterSettings

    return ClusterSettings(partition=args.partition, account=args.account, gpus_per_fold=args.gpus, cpus=args.cpus,
                           memory_gb=args.memory, setup=args.setup, **hours)


def _add_cluster_options(parser: argparse.ArgumentParser, *, gpus: str) -> None:
    """Site settings of SLURM jobs (:func:`_cluster_settings`)."""
    parser.add_argument("--partition", default=None, help="SLURM partition")
    parser.add_argument("--account", default=None, help="SLURM account")
    parser.add_argument("--gpus", type=_non_negative_int, default=1, help=f"{gpus} (default: 1; 0 for CPU jobs)")
    parser.add_argument("--cpus", type=_at_least_one, default=8, help="CPUs per job (default: 8)")
    parser.add_argument("--memory", type=_at_least_one, default=32, help="memory per job in GB (default: 32)")
    parser.add_argument("--setup", default="", help="shell run first in every job, e.g. 'module load cuda'")


def _cmd_slurm(args: argparse.Namespace) -> int:
    from nnunet_glacier.pipeline.slurm import write_slurm_jobs

    written = write_slurm_jobs(_selected(args), args.data, args.work or Path("work"), args.out,
                               _cluster_settings(args, train_hours=args.train_hours))
    print(f"wrote {len(written)} files to {args.out}; submit with: bash {args.out / 'submit_all.sh'}")
    return 0


def _add_slurm_command(commands: argparse._SubParsersAction) -> None:
    """``slurm``: SLURM job scripts of a reproduction."""
    slurm = commands.add_parser("slurm", help="write SLURM job scripts (fold arrays, dependencies) from the configs",
                                description="Per experiment: a prepare job, a job array over the folds and a "
                                            "finish job (predict, ensemble, evaluate); then a report job; and "
                                            "submit_all.sh chaining them with dependencies.")
    slurm.add_argument("--data", type=Path, required=True, help="CaFFe root as seen from the cluster nodes")
    slurm.add_argument("--out", type=Path, required=True, help="folder for the job scripts")
    _experiment_choice(slurm, many=True)
    _add_work(slurm)
    _add_profile(slurm)
    _add_cluster_options(slurm, gpus="GPUs per fold")
    slurm.add_argument("--train-hours", type=_at_least_one, default=48,
                       help="time limit of a fold's training (default: 48)")
    slurm.set_defaults(handler=_cmd_slurm)


def _cmd_slurm_detect(args: argparse.Namespace) -> int:
    import shlex

    from nnunet_glacier.field.geo import list_scenes
    from nnunet_glacier.pipeline.slurm import write_detect_jobs

    scenes = list_scenes(args.input)
    context = list_scenes(args.context) if args.context is not None else []
    written = write_detect_jobs(scenes, args.model, args.output, args.jobs, args.shards,
                                shlex.split(args.detect_options), _cluster_settings(args), hours=args.hours,
                                context=context)
    print(f"{len(scenes)} scenes in shards of {args.jobs / 'detect_shards.sbatch'}; wrote {len(written)} files; "
          f"submit with: bash {args.jobs / 'submit_detect.sh'}")
    return 0


def _add_slurm_detect_command(commands: argparse._SubParsersAction) -> None:
    """``slurm-detect``: SLURM jobs detecting an archive of scenes."""
    slurm_detect = commands.add_parser(
        "slurm-detect", help="write SLURM jobs that detect an archive of scenes on many nodes, then merge",
        description="Freeze the scene list, write a job array whose shard K of N runs `detect --shard K/N` into "
                    "the one output folder (resumable through the scene records; a lock per scene), and a merge "
                    "job after every shard that rebuilds quality.csv and fronts.gpkg (`detect --merge-only`); "
                    "submit_detect.sh chains them.")
    slurm_detect.add_argument("-m", "--model", required=True, metavar="MODEL",
                              help="the model as detect -m takes it, as seen from the cluster nodes")
    slurm_detect.add_argument("-i", "--input", type=Path, required=True,
                              help="a scene, a folder of scenes or a .txt list of scene paths")
    slurm_detect.add_argument("-o", "--output", type=Path, required=True, help="detect's output folder")
    slurm_detect.add_argument("--context", type=Path, default=None, metavar="DIR",
                              help="detect --context for every shard: acquisitions used only as context by a "
                                   "model with temporal context (a folder or .txt list; frozen into "
                                   "JOBS/context.txt)")
    slurm_detect.add_argument("--jobs", type=Path, required=True, help="folder for the job scripts")
    slurm_detect.add_argument("--shards", type=_at_least_one, default=10,
                              help="number of array jobs (default: 10; at most one per scene)")
    slurm_detect.add_argument("--detect-options", default="", metavar="OPTIONS",
                              help="further detect options for every shard, as one string, e.g. "
                                   "'--pixel-size 20 --uncertainty'")
    _add_cluster_options(slurm_detect, gpus="GPUs per shard")
    slurm_detect.add_argument("--hours", type=_at_least_one, default=12, help="time limit of a shard (default: 12)")
    slurm_detect.set_defaults(handler=_cmd_slurm_detect)


def _cmd_trainer_path(args: argparse.Namespace) -> int:
    from nnunet_glacier.nnunet.workspace import TRAINER_DIR

    print(TRAINER_DIR)
    return 0


def _add_trainer_path_command(commands: argparse._SubParsersAction) -> None:
    """``trainer-path``: the folder of our trainers for nnU-Net's own commands."""
    trainer_path = commands.add_parser(
        "trainer-path", help="print the folder to export as nnUNet_extTrainer for nnUNetv2_train -tr",
        description="Print the folder holding our trainers for nnU-Net's own commands: "
                    "export nnUNet_extTrainer=\"$(nnunet-glacier trainer-path)\", then e.g. "
                    "nnUNetv2_train 503 2d_paper 0 -tr nnUNetTrainerMTLLate.")
    trainer_path.set_defaults(handler=_cmd_trainer_path)


def build_parser() -> argparse.ArgumentParser:
    """The ``nnunet-glacier`` parser; its commands in the order ``--help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="nnunet-glacier",
        description="Calving-front detection and glacier-zone segmentation in SAR images with nnU-Net v2 "
                    "(Herrmann et al. 2023, CaFFe benchmark).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in (_add_export_command, _add_evaluate_command, _add_compare_command, _add_synth_command,
                        _add_plan_command, _add_train_command, _add_predict_command, _add_reproduce_command,
                        _add_demo_command, _add_slurm_command, _add_slurm_detect_command, _add_trainer_path_command,
                        _add_detect_command, _add_retreat_command, _add_model_command, _add_plot_command):
        add_command(commands)
    return parser


def help_requests(parser: argparse.ArgumentParser) -> list[list[str]]:
    """Every request for help the command line answers: ``--help``, ``--version``, each ``COMMAND --help`` and
    each ``COMMAND SUB --help`` (``plot FIGURE``); benchmarks and tests check that they stay quick."""
    def sub_parsers(of: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return {name: sub for action in of._actions if isinstance(action, argparse._SubParsersAction)
                for name, sub in action.choices.items()}

    requests = [["--help"], ["--version"]]
    for name, command in sub_parsers(parser).items():
        requests += [[name, "--help"], *([name, sub, "--help"] for sub in sub_parsers(command))]
    return requests


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file=None, line: str | None = None) -> None:
    """Warnings as one ``warning: ...`` line on stderr (they name the file and the problem)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            return args.handler(args)
    except GlacierError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a read-only or full disk, a file where a folder is expected, ...
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
