"""The ``nnunet-glacier`` command: one entry point with sub-commands.

Exit codes: 0 success, 1 bad input or a failed step (the message names the
file and the problem), 2 wrong usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_glacier import __version__
from nnunet_glacier.caffe import CaFFeError
from nnunet_glacier.experiments import EXPERIMENT_ORDER, ConfigError, profiles


def _add_work(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", type=Path, default=None,
                        help="work directory holding nnUNet_raw/, nnUNet_preprocessed/, nnUNet_results/ "
                             "(default: the nnUNet_* environment variables if set, else ./work)")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="paper", choices=profiles(),
                        help="size profile from configs/profiles (default: paper; tiny = CPU-sized)")


def _add_pixel_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pixel-size", type=float, default=None, metavar="METRES",
                        help="pixel size in metres for every image, overriding the resolution in the file names "
                             "(needed for downscaled copies such as caffe_256)")



def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="compute device (default: auto = CUDA if available, else CPU)")

def _experiment_choice(parser: argparse.ArgumentParser, *, many: bool) -> None:
    if many:
        parser.add_argument("--experiments", nargs="+", default=["all"], choices=[*EXPERIMENT_ORDER, "all"],
                            metavar="NAME", help=f"experiments: {', '.join(EXPERIMENT_ORDER)} or all (default)")
    else:
        parser.add_argument("--experiment", required=True, choices=EXPERIMENT_ORDER, metavar="NAME",
                            help=f"one of {', '.join(EXPERIMENT_ORDER)}")


def _cmd_export(args: argparse.Namespace) -> int:
    from nnunet_glacier.experiments import get_experiment
    from nnunet_glacier.nnunet.export import export_dataset
    from nnunet_glacier.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    folder = export_dataset(args.data, get_experiment(args.experiment, args.profile), workspace.raw,
                            pixel_size=args.pixel_size, num_workers=args.workers)
    print(f"wrote {folder}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from nnunet_glacier.synthetic import generate_caffe

    try:
        images = generate_caffe(args.out, n_train=args.n_train, n_test=args.n_test, size=tuple(args.size),
                                seed=args.seed, with_bounding_boxes=not args.no_bounding_boxes)
    except CaFFeError:
        raise  # the output folder holds other scenes: bad input, exit code 1 from main()
    except ValueError as err:  # counts or size out of range: wrong usage
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(images)} synthetic scenes to {args.out}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from nnunet_glacier.experiments import get_experiment
    from nnunet_glacier.nnunet.plans import plan_and_preprocess, write_configuration
    from nnunet_glacier.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    experiment = get_experiment(args.experiment, args.profile)
    if not (workspace.raw / experiment.dataset / "dataset.json").is_file():
        raise CaFFeError(workspace.raw / experiment.dataset, "no exported dataset: run `nnunet-glacier export` first")
    plan_and_preprocess(experiment, workspace, num_processes=args.processes, verify=not args.no_verify)
    configuration = write_configuration(experiment, workspace)
    print(f"{experiment.dataset}: configuration {experiment.configuration}, patch {configuration['patch_size']}, "
          f"batch {configuration['batch_size']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from nnunet_glacier.experiments import get_experiment
    from nnunet_glacier.nnunet.training import train_fold
    from nnunet_glacier.workspace import Workspace

    workspace = Workspace.resolve(args.work).activate()
    experiment = get_experiment(args.experiment, args.profile)
    for fold in args.fold:
        fold_dir = train_fold(experiment, fold, workspace, device=args.device, max_epochs=args.max_epochs,
                              iterations=args.iterations, val_iterations=args.val_iterations)
        print(f"{experiment.name} fold {fold}: {fold_dir}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from nnunet_glacier.experiments import get_experiment
    from nnunet_glacier.nnunet.predict import GlacierPredictor, list_images, predict_images
    from nnunet_glacier.nnunet.training import model_folder
    from nnunet_glacier.workspace import Workspace

    if args.model is None:
        workspace = Workspace.resolve(args.work).activate()
        args.model = model_folder(workspace, get_experiment(args.experiment, args.profile))
    predictor = GlacierPredictor(args.model, args.folds, device=args.device, step_size=args.step_size,
                                 mirroring=not args.no_mirroring)
    report = predict_images(predictor, list_images(args.input), args.output, per_fold=args.per_fold,
                            save_probabilities=args.save_probabilities)
    print(f"folds {predictor.folds}: {len(report.written)} predicted, {len(report.skipped)} already done, "
          f"{len(report.failed)} failed -> {args.output}")
    for path, problem in report.failed:
        print(f"error: {path}: {problem}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_plot_overlays(args: argparse.Namespace) -> int:
    from nnunet_glacier.caffe import discover
    from nnunet_glacier.plots import find_predictions, write_overlays

    samples = discover(args.data, (args.split,), require_labels=False)
    pairs = find_predictions(samples, args.predictions)
    written = write_overlays(pairs[:args.limit], args.out)
    print(f"wrote {len(written)} overlays to {args.out} ({len(samples) - len(pairs)} of {len(samples)} "
          f"{args.split} scenes have no predicted front)")
    return 0


def _cmd_plot_boxplot(args: argparse.Namespace) -> int:
    from nnunet_glacier.plots import mde_series, plot_mde_boxplot, save_figure

    csvs = dict(args.csv)
    if len(csvs) != len(args.csv):
        print("error: --csv labels must be unique", file=sys.stderr)
        return 2
    figure = plot_mde_boxplot(mde_series(csvs, args.by), by=args.by)
    print("wrote " + ", ".join(map(str, save_figure(figure, args.out, args.formats))))
    return 0


def _cmd_plot_timeline(args: argparse.Namespace) -> int:
    from nnunet_glacier.caffe import discover
    from nnunet_glacier.plots import plot_timeline, save_figure

    figure = plot_timeline(discover(args.data, tuple(args.split), require_labels=False))
    print("wrote " + ", ".join(map(str, save_figure(figure, args.out, args.formats))))
    return 0


def _cmd_plot_retreat(args: argparse.Namespace) -> int:
    from nnunet_glacier.caffe import discover
    from nnunet_glacier.plots import plot_label_retreat, save_figure

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


def _add_plot_commands(commands: argparse._SubParsersAction) -> None:
    from nnunet_glacier.caffe import SPLITS
    from nnunet_glacier.plots import FORMATS, GROUP_COLUMNS

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
    overlays.add_argument("--limit", type=int, default=None, metavar="N", help="at most N scenes (in stem order)")
    overlays.set_defaults(handler=_cmd_plot_overlays)

    boxplot = figures.add_parser("boxplot", help="box plots of per-image MDE by group, result sets side by side",
                                 description="Per-image MDE (m, log axis) from per_image.csv files, with the CaFFe "
                                             "baselines (753 m zones, 887 m fronts); images without a front are "
                                             "left out. A file holding several routes gives one box per route.")
    boxplot.add_argument("--csv", type=_labelled_csv, nargs="+", required=True, metavar="LABEL=PATH",
                         help="per_image.csv files with a label each (a bare PATH is labelled by its folder)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet-glacier",
        description="Calving-front detection and glacier-zone segmentation in SAR images with nnU-Net v2 "
                    "(Herrmann et al. 2023, CaFFe benchmark).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    export = commands.add_parser("export", help="turn a CaFFe root into an nnU-Net raw dataset for one experiment",
                                 description="Write imagesTr/labelsTr/imagesTs and dataset.json for one experiment.")
    export.add_argument("--data", type=Path, required=True, help="CaFFe root (sar_images/, zones/, fronts/)")
    _experiment_choice(export, many=False)
    _add_work(export)
    _add_profile(export)
    _add_pixel_size(export)
    export.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    export.set_defaults(handler=_cmd_export)

    synth = commands.add_parser("synth", help="write synthetic CaFFe-like scenes (for tests and the demo)",
                                description="Write seeded synthetic fjord scenes in the CaFFe layout and naming: "
                                            "sar_images/, zones/, fronts/ and bounding_boxes/.")
    synth.add_argument("--out", type=Path, required=True, help="output CaFFe root (empty or new folder)")
    synth.add_argument("--n-train", type=int, default=8, metavar="N", help="training scenes (default: 8)")
    synth.add_argument("--n-test", type=int, default=4, metavar="N", help="test scenes (default: 4)")
    synth.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
                       help="scene size in pixels, rows and columns (default: 128 128)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--no-bounding-boxes", action="store_true", help="do not write bounding_boxes/")
    synth.set_defaults(handler=_cmd_synth)

    plan = commands.add_parser("plan", help="nnU-Net planning and preprocessing, plus our plans edit",
                               description="Run nnU-Net's fingerprint, planner and 2d preprocessing for the "
                                           "experiment's dataset, then write the profile's configuration "
                                           "(patch, batch, architecture, schedule) into nnUNetPlans.json.")
    _experiment_choice(plan, many=False)
    _add_work(plan)
    _add_profile(plan)
    plan.add_argument("--processes", type=int, default=2, help="processes for nnU-Net (default: 2)")
    plan.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    plan.set_defaults(handler=_cmd_plan)

    train = commands.add_parser("train", help="train folds of an experiment (resumes interrupted runs)",
                                description="Train with nnU-Net v2 and our trainers; a finished fold is skipped, "
                                            "an interrupted one resumes from its newest checkpoint.")
    _experiment_choice(train, many=False)
    train.add_argument("--fold", type=int, nargs="+", required=True, choices=range(5), metavar="K",
                       help="fold(s) 0..4")
    _add_work(train)
    _add_profile(train)
    _add_device(train)
    train.add_argument("--max-epochs", type=int, default=None, help="override the plans' number of epochs")
    train.add_argument("--iterations", type=int, default=None, help="override training iterations per epoch")
    train.add_argument("--val-iterations", type=int, default=None, help="override validation iterations per epoch")
    train.set_defaults(handler=_cmd_train)

    predict = commands.add_parser("predict", help="predict scenes with one or several folds (mean-probability ensemble)",
                                  description="Sliding-window prediction; writes <stem>_zones.png, <stem>_front.png "
                                              "(and _boundary/_fused) in CaFFe pixel values.")
    model = predict.add_mutually_exclusive_group(required=True)
    model.add_argument("--experiment", choices=EXPERIMENT_ORDER, metavar="NAME",
                       help=f"a trained experiment of the work directory: {', '.join(EXPERIMENT_ORDER)}")
    model.add_argument("-m", "--model", type=Path, help="an nnU-Net results folder (holding fold_K/)")
    predict.add_argument("-i", "--input", type=Path, required=True, help="a PNG scene or a folder of them")
    predict.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    predict.add_argument("--folds", type=int, nargs="+", default=None, metavar="K",
                         help="folds to ensemble (default: all trained folds)")
    predict.add_argument("--per-fold", action="store_true", help="also write each fold's prediction to OUTPUT/fold_K")
    predict.add_argument("--save-probabilities", action="store_true",
                         help="also write <stem>_probabilities.npz (float16, per task)")
    predict.add_argument("--step-size", type=float, default=0.5,
                         help="sliding-window step as a fraction of the patch (default: 0.5)")
    predict.add_argument("--no-mirroring", action="store_true", help="disable test-time mirroring (4x faster)")
    _add_work(predict)
    _add_profile(predict)
    _add_device(predict)
    predict.set_defaults(handler=_cmd_predict)

    _add_plot_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CaFFeError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
