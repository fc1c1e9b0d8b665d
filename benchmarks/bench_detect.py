"""Whole scenes through ``detect``: wall time, peak memory, network share and Mpx/s, ours against nnU-Net's.

For every scene size (Mpx, square synthetic scenes written as PNG) and fold
count, three cases run, each in a fresh subprocess (so that peak memory is the
case's own: the child's ``ru_maxrss``):

- ``ours``: :func:`nnunet_glacier.field.detect.detect` on the scene file — reading,
  no-data mask, nnU-Net's preprocessing, the streamed sliding window over
  every fold, ensemble, uncertainty, post-processing, rasters, GeoJSON,
  overlay, record;
- ``predict``: our ``GlacierPredictor.predict`` alone on the image read from
  the file (the ensemble's class maps, disagreement and uncertainty of the
  route's task): the same work as nnU-Net's below;
- ``nnunet``: nnU-Net's own ``nnUNetPredictor.predict_single_npy_array`` on
  the same model, folds and image (read from the same PNG): its class map
  only, no post-processing or writing.

``--network standin`` (default) builds an untrained model folder of
``--experiment`` with ``--patch`` and installs the cheap stand-in network of
:mod:`standin` in both predictors (everything else real: it measures the
overhead around the network); ``--network model PATH`` uses a trained
results folder as it is. "network" is the time spent inside the network's
forward calls. Prints a Markdown table and the ratios ours / nnU-Net.

Examples::

    python benchmarks/bench_detect.py                       # 1, 9, 36 Mpx; 1 and 5 folds; stand-in
    python benchmarks/bench_detect.py --network model work/results/Dataset503/...  --sizes 1
    python benchmarks/bench_detect.py --quick               # a check that it runs (well under 2 minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_def_n_proc", "1")

import numpy as np  # noqa: E402
import standin  # noqa: E402

TOOLS = ("ours", "predict", "nnunet")
PIXEL_SIZE_M = 10.0
CASE_TIMEOUT_S = 3 * 3600


class NetworkClock:
    """Seconds spent in a module's forward calls (forward hooks; they survive ``load_state_dict``)."""

    def __init__(self, network) -> None:
        self.seconds, self._start = 0.0, 0.0
        network.register_forward_pre_hook(self._begin)
        network.register_forward_hook(self._end)

    def _begin(self, *_) -> None:
        self._start = time.perf_counter()

    def _end(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start


def scene_file(folder: Path, mpx: float) -> Path:
    """A square synthetic scene of ``mpx`` megapixels as PNG in ``folder`` (written once)."""
    from nnunet_glacier.utilities.atomic import write_png

    side = int(round(np.sqrt(mpx * 1e6)))
    path = folder / f"scene_{side}px.png"
    if not path.is_file():
        write_png(path, standin.scene((side, side)))
    return path


def run_case(case: dict) -> dict:
    """Run one case in this process; returns its measurements (seconds, GB, Mpx/s)."""
    import torch

    from nnunet_glacier.data.caffe import read_grey
    from nnunet_glacier.nnunet.predict import NNUNET_SPACING, GlacierPredictor

    model, folds, scene = Path(case["model"]), list(range(case["folds"])), Path(case["scene"])
    start = time.perf_counter()
    if case["tool"] in ("ours", "predict"):
        from nnunet_glacier.postprocessing.postprocess import choose_route

        predictor = GlacierPredictor(model, folds, device=case["device"], mirroring=case["mirroring"],
                                     tile_progress=False, low_memory=case["low_memory"])
        nnunet = predictor.nnunet
    else:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        nnunet = nnUNetPredictor(use_mirroring=case["mirroring"], device=torch.device(case["device"]),
                                 allow_tqdm=False)
        nnunet.initialize_from_trained_model_folder(str(model), tuple(folds), "checkpoint_final.pth")
    if case["standin"]:
        standin.install_standin(nnunet)
    clock = NetworkClock(nnunet.network)
    started = time.perf_counter()
    if case["tool"] == "ours":
        from nnunet_glacier.field.detect import detect

        report = detect(predictor, [scene], Path(case["out"]), pixel_size_m=PIXEL_SIZE_M, progress=False)
        if report.failed:
            raise RuntimeError(f"detect failed: {report.failed}")
        shape = read_grey(scene).shape
    elif case["tool"] == "predict":
        image = read_grey(scene)
        shape = image.shape
        predictor.predict(image, measure=[choose_route([task.name for task in predictor.tasks])])
    else:
        image = read_grey(scene)
        shape = image.shape
        nnunet.predict_single_npy_array(image[None, None].astype(np.float32), {"spacing": NNUNET_SPACING})
    seconds = time.perf_counter() - started
    mpx = shape[0] * shape[1] / 1e6
    return {"seconds": seconds, "setup_s": started - start, "network_s": clock.seconds,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, "mpx": mpx,
            "mpx_per_s": mpx / seconds}


def run_in_subprocess(case: dict) -> dict:
    """Run a case in a fresh interpreter (its own peak memory); returns its measurements."""
    done = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                          timeout=CASE_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"case {case['tool']} {case['mpx']} Mpx {case['folds']} folds failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[tuple[dict, dict]]) -> str:
    """The Markdown table of the results, with ours / nnU-Net ratios per size and fold count."""
    lines = ["| Mpx | folds | tool | wall s | peak GB | network share | Mpx/s | wall ours/nnU-Net | memory ours/nnU-Net |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    by_key = {(c["mpx"], c["folds"], c["tool"]): r for c, r in results}
    for case, result in results:
        other = by_key.get((case["mpx"], case["folds"], "nnunet"))
        ratios = ("", "")
        if case["tool"] != "nnunet" and other is not None:
            ratios = (f"{result['seconds'] / other['seconds']:.2f}", f"{result['peak_gb'] / other['peak_gb']:.2f}")
        lines.append(f"| {result['mpx']:.1f} | {case['folds']} | {case['tool']} | {result['seconds']:.1f} | "
                     f"{result['peak_gb']:.2f} | {100 * result['network_s'] / result['seconds']:.0f} % | "
                     f"{result['mpx_per_s']:.2f} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def fold_ratios(results: list[tuple[dict, dict]]) -> list[str]:
    """Peak memory of our most folds over our fewest, per size (the goal: <= 1.2)."""
    lines = []
    ours = [(c, r) for c, r in results if c["tool"] == "ours"]
    for mpx in sorted({c["mpx"] for c, _ in ours}):
        runs = sorted((c["folds"], r["peak_gb"]) for c, r in ours if c["mpx"] == mpx)
        if len(runs) > 1:
            lines.append(f"ours at {mpx:g} Mpx: peak memory {runs[-1][0]} folds / {runs[0][0]} fold(s) = "
                         f"{runs[-1][1] / runs[0][1]:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 9, 36], help="scene sizes in Mpx (default 1 9 36)")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5], help="fold counts (default 1 5)")
    parser.add_argument("--network", nargs="+", default=["standin"], metavar="standin|model PATH",
                        help="'standin' (default) or 'model PATH' (a trained results folder with fold_0.. )")
    parser.add_argument("--experiment", default="mtl_late", help="experiment of the stand-in model (default mtl_late)")
    parser.add_argument("--patch", type=int, nargs=2, default=[1024, 896],
                        help="patch of the stand-in model, pixels (default the paper's MTL 1024 896)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--no-mirroring", action="store_true", help="predict without test-time mirroring")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--low-memory", action="store_true",
                        help="our predictor with low_memory=True (peak memory flat in the folds, slower)")
    parser.add_argument("--quick", action="store_true", help="0.25 Mpx, 1 and 2 folds, 256 px patch: a check that it runs")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if args.quick:
        args.sizes, args.folds, args.patch = [0.25], [1, 2], [256, 256]
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as tmp:
        tmp = Path(tmp)
        if args.network[0] == "standin":
            model = standin.random_model(tmp / "model", args.experiment, range(max(args.folds)), patch=args.patch)
        elif args.network[0] == "model" and len(args.network) == 2:
            model = Path(args.network[1])
        else:
            parser.error("--network takes 'standin' or 'model PATH'")
        results = []
        for mpx in args.sizes:
            scene = scene_file(tmp, mpx)
            for folds in args.folds:
                for tool in args.tools:
                    case = {"tool": tool, "mpx": mpx, "folds": folds, "model": str(model), "scene": str(scene),
                            "out": str(tmp / f"out_{mpx}_{folds}"), "standin": args.network[0] == "standin",
                            "mirroring": not args.no_mirroring, "device": args.device,
                            "low_memory": args.low_memory}
                    results.append((case, run_in_subprocess(case)))
                    print(f"{tool} {mpx:g} Mpx {folds} fold(s): {results[-1][1]['seconds']:.1f} s, "
                          f"{results[-1][1]['peak_gb']:.2f} GB", flush=True)
        print(table(results))
        print("\n".join(fold_ratios(results)))


if __name__ == "__main__":
    main()
