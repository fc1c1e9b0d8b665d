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
