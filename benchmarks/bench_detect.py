"""Whole scenes through ``detect``: wall time, peak memory, network share and Mpx/s, ours against nnU-Net's.

For every scene size (Mpx, square synthetic scenes written as PNG) and fold
count, three cases run, each in a fresh subprocess (so that peak memory is the
case's own: the child's ``VmHWM``, :mod:`peak_memory`; its ``ru_maxrss`` would
start at this process's size):

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

The network (one of):

- the stand-in (default): an untrained model folder of ``--experiment``
  with ``--patch`` (written once into the work directory) whose network is
  replaced in both predictors by the cheap stand-in of :mod:`standin`
  (everything else real): it measures the overhead around the network;
- ``--model SPEC``: a trained model as ``detect -m`` takes it (a results
  folder, a model zip, an installed model's name, ``URL#sha256=...``);
- ``--train-caffe ROOT``: a real model of ``--experiment`` trained on the
  training split of the CaFFe root ``ROOT`` (e.g. ``caffe_256``) with
  ``bench_accuracy.py``'s machinery at its budget (``--train-epochs``,
  ``--train-iterations``, ... — the same defaults; 128 px patches), folds
  0..N-1 for the largest ``--folds`` N, seed 0, in the work directory
  (bench_accuracy's layout: a work directory of ``bench_accuracy.py`` or
  ``bench_fast.py`` with the same budget shares its trained folds; a killed
  training resumes from its checkpoint).

"network" is the time spent inside the network's forward calls. Prints a
Markdown table and the ratios ours / nnU-Net, and writes them
(``detect_results_<network>.md`` and ``.json``, ``<network>`` = ``standin``
or the model folder's name) into ``<work>/detect/``.

Before the run, the budget is estimated and printed: our predictor's seconds
per tile (one network call's worth of tiles through ``predict``, mirroring
as set) times each case's tiles and folds, for the three tools (detect's
writing not included); with ``--train-caffe`` and folds still to train, two
short probe trainings (``bench_fast.probing``) estimate the training too.
``--estimate-only`` stops there. A real network at 128 px patches makes
36 Mpx scenes expensive on a CPU: choose ``--sizes`` and ``--folds``.

Resuming (``--work``, default ``./bench_detect_work``): each finished case
is kept in ``<work>/detect/cases/<network>/`` with what it measured and is not run
again while its settings (tool, size, folds, model and its checkpoints'
stamps, mirroring, device, low memory) are the same; ``--fresh`` runs every
case again.

Examples::

    python benchmarks/bench_detect.py                          # 1, 9, 36 Mpx; 1 and 5 folds; stand-in
    python benchmarks/bench_detect.py --train-caffe ../shared/data/caffe_256 --sizes 1 9 --folds 1 5
    python benchmarks/bench_detect.py --model caffe_fused --sizes 1 --folds 1 --estimate-only
    python benchmarks/bench_detect.py --smoke                  # a check that it runs (stand-in, tiny)
    python benchmarks/bench_detect.py --smoke --train-caffe ../shared/data/caffe_256   # tiny real training too
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_def_n_proc", "1")

import numpy as np  # noqa: E402
import standin  # noqa: E402
from peak_memory import peak_rss_bytes  # noqa: E402

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


def scene_side(mpx: float) -> int:
    """The edge (px) of the square scene of ``mpx`` megapixels."""
    return int(round(np.sqrt(mpx * 1e6)))


def scene_file(folder: Path, mpx: float) -> Path:
    """A square synthetic scene of ``mpx`` megapixels as PNG in ``folder`` (written once)."""
    from nnunet_glacier.utilities.atomic import write_png

    side = scene_side(mpx)
    path = folder / f"scene_{side}px.png"
    if not path.is_file():
        write_png(path, standin.scene((side, side)))
    return path


def run_case(case: dict) -> dict:
    """Run one case in this process; returns its measurements (seconds, GB, Mpx/s)."""
    import torch

    from nnunet_glacier.data.caffe import read_grey
    from nnunet_glacier.nnunet.predict import NNUNET_SPACING, GlacierPredictor

    model, folds, scene = Path(case["model"]), list(case["fold_ids"]), Path(case["scene"])
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
            "peak_gb": peak_rss_bytes() / 1024 ** 3, "mpx": mpx,
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


# --- the estimate ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TileCost:
    """Our predictor's wall seconds per tile of one fold (network, mirroring, preprocessing, assembly), its patch
    and step."""

    seconds: float
    patch: tuple[int, int]
    step_size: float

    def tiles(self, mpx: float) -> int:
        """nnU-Net's tiles over the square scene of ``mpx`` megapixels."""
        from nnunet_glacier.nnunet.window import tile_starts

        side = scene_side(mpx)
        rows, cols = tile_starts((max(side, self.patch[0]), max(side, self.patch[1])), self.patch, self.step_size)
        return len(rows) * len(cols)


def tile_cost(model: Path, fold: int | str, *, device: str, mirroring: bool, low_memory: bool, use_standin: bool,
              repeats: int = 2) -> TileCost:
    """Time our ``predict`` on one network call's worth of tiles (one tile row; the faster of ``repeats`` calls
    after a warm-up) and divide by its tiles."""
    import torch

    from nnunet_glacier.nnunet.predict import GlacierPredictor
    from nnunet_glacier.nnunet.window import tile_starts, tiles_per_batch

    torch.set_num_threads(os.cpu_count() or 1)  # as in the cases' processes (a probe training may have set fewer)
    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's messages on loading a model
        predictor = GlacierPredictor(model, [fold], device=device, mirroring=mirroring, tile_progress=False,
                                     low_memory=low_memory)
    if use_standin:
        standin.install_standin(predictor.nnunet)
    patch = tuple(int(p) for p in predictor.nnunet.configuration_manager.patch_size)
    width = patch[1] + int((tiles_per_batch(patch) - 1) * patch[1] * predictor.step_size)
    rows, cols = tile_starts((patch[0], width), patch, predictor.step_size)
    image = standin.scene((patch[0], width))
    predictor.predict(image)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(image)
        best = min(best, time.perf_counter() - start)
    return TileCost(best / (len(rows) * len(cols)), patch, predictor.step_size)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 5400 \
        else f"{seconds / 3600:.1f} h"


def print_estimate(cost: TileCost, cases: Sequence[dict], train_s: float = 0.0) -> float:
    """Print the estimated time of the cases to run (and of training); returns the total in seconds."""
    lines, total = [], train_s
    for case in cases:
        seconds = cost.tiles(case["mpx"]) * case["folds"] * cost.seconds
        total += seconds
        lines.append(f"  {case['tool']:8s} {case['mpx']:g} Mpx, {case['folds']} fold(s): {cost.tiles(case['mpx'])} "
                     f"tiles x {case['folds']} x {cost.seconds * 1e3:.1f} ms = {duration(seconds)}")
    print(f"estimate: {cost.seconds * 1e3:.2f} ms per tile and fold ({cost.patch[0]} x {cost.patch[1]} px patches, "
          f"step {cost.step_size}), measured through our predictor; detect's writing not included\n"
          + "\n".join(lines or ["  every case already measured"])
          + (f"\n  training: {duration(train_s)}" if train_s else "")
          + f"\n  total: about {duration(total)} wall", flush=True)
    return total


# --- models ----------------------------------------------------------------------------------------------------

def standin_model(folder: Path, experiment: str, n_folds: int, patch: Sequence[int]) -> Path:
    """The stand-in's untrained model folder of ``experiment`` and ``patch`` in ``folder`` (written once)."""
    model = folder / f"standin_{experiment}_{patch[0]}x{patch[1]}"
    if not all((model / f"fold_{k}" / "checkpoint_final.pth").is_file() for k in range(n_folds)):
        standin.random_model(model, experiment, range(n_folds), patch=patch)
    return model


def model_stamp(model: Path, folds: Sequence[int | str]) -> list[list[Any]]:
    """The checkpoints a case reads: path, size and modification time (a retrained fold is another model)."""
    from nnunet_glacier.nnunet.folds import fold_member

    stamps = []
    for fold in folds:
        checkpoint = model / fold_member(fold) / "checkpoint_final.pth"
        stat = checkpoint.stat()
        stamps.append([str(checkpoint), stat.st_size, stat.st_mtime_ns])
    return stamps


@dataclasses.dataclass
class CaffeTraining:
    """``--train-caffe``: the jobs training folds 0..N-1 of one experiment at bench_accuracy's budget, seed 0."""

    jobs: list
    budget: Any

    @classmethod
    def prepare(cls, args: argparse.Namespace, work: Path, n_folds: int) -> CaffeTraining:
        import bench_accuracy
        import bench_fast

        data = bench_fast.smoke_data(args.train_caffe, work / "smoke_data") if args.smoke else args.train_caffe
        budget = bench_accuracy.budget_from_args(args, data, mirroring=True)
        paths = bench_accuracy.Paths(work)
        print(bench_accuracy.describe_budget(budget, [0]) + f"; folds 0..{n_folds - 1}", flush=True)
        bench_accuracy.check_budget(paths, budget, ignore=("mirroring",))
        bench_fast.prepare_logged(paths, budget, [args.experiment])
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        return cls([bench_accuracy.Job(args.experiment, 0, budget, paths, args.device, threads, fold=k)
                    for k in range(n_folds)], budget)

    @property
    def model(self) -> Path:
        return self.jobs[0].model

    def to_train(self) -> list:
        import bench_fast

        return [job for job in self.jobs if not bench_fast.is_trained_job(job)]

    def train(self, workers: int) -> None:
        import bench_fast

        bench_fast.train_all(self.jobs, workers)


# --- command line ----------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 9, 36], help="scene sizes in Mpx (default 1 9 36)")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5], help="fold counts (default 1 5)")
    network = parser.add_mutually_exclusive_group()
    network.add_argument("--model", metavar="SPEC",
                         help="a trained model (folder, zip, installed name or URL#sha256=...) instead of the stand-in")
    network.add_argument("--train-caffe", type=Path, metavar="ROOT",
                         help="train a real model of --experiment on this CaFFe root (folds 0..N-1, bench_accuracy's "
                              "budget: --train-* options) and measure it instead of the stand-in")
    parser.add_argument("--experiment", default="mtl_late",
                        help="experiment of the stand-in model or of --train-caffe (default mtl_late)")
    parser.add_argument("--patch", dest="standin_patch", type=int, nargs=2, default=[1024, 896], metavar=("ROWS", "COLS"),
                        help="patch of the stand-in model, pixels (default the paper's MTL 1024 896)")
    parser.add_argument("--work", type=Path, default=None,
                        help="work directory (default ./bench_detect_work; with --smoke <tmp>/bench_detect_smoke)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--no-mirroring", action="store_true", help="predict without test-time mirroring")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--low-memory", action="store_true",
                        help="our predictor with low_memory=True (peak memory flat in the folds, slower)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="--train-caffe: training worker processes (default: cores)")
    parser.add_argument("--estimate-only", action="store_true", help="print the estimated budget and stop")
    parser.add_argument("--fresh", action="store_true", help="measure every case again (default: keep finished ones)")
    parser.add_argument("--smoke", action="store_true",
                        help="a check that it runs: 0.1 Mpx, 1 and 2 folds, a 256 px stand-in patch; with "
                             "--train-caffe a tiny training (10 training scenes, 2 iterations, a 3-stage U-Net)")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # the former name of --smoke
    group = parser.add_argument_group("--train-caffe budget (bench_accuracy.py's options and defaults)")
    _add_budget_arguments(group)
    args = parser.parse_args(argv)
    args.smoke = args.smoke or args.quick
    if args.smoke:
        args.sizes, args.folds, args.standin_patch = [0.1], [1, 2], [256, 256]
        if args.train_caffe:
            from bench_fast import SMOKE_BUDGET

            for key, value in SMOKE_BUDGET.items():
                setattr(args, key, value)
    if args.work is None:
        args.work = Path(tempfile.gettempdir()) / "bench_detect_smoke" if args.smoke else Path("bench_detect_work")
    return args


def _add_budget_arguments(group) -> None:
    from bench_accuracy import add_budget_arguments

    add_budget_arguments(group, prefix="train-", fold=False)


def planned(args: argparse.Namespace) -> list[dict]:
    """The run's cases as tool, size and fold count, in order (sizes, then fold counts, then tools)."""
    return [{"tool": tool, "mpx": mpx, "folds": folds} for mpx in args.sizes for folds in args.folds
            for tool in args.tools]


def cases_to_run(args: argparse.Namespace, model: Path, fold_ids: Sequence[int | str], own: Path,
                 use_standin: bool) -> list[dict]:
    """Every case of the run in full (the folds it uses, the model's stamps, its scene and output folder)."""
    cases = []
    for case in planned(args):
        ids = list(fold_ids[:case["folds"]])
        cases.append({**case, "fold_ids": ids, "model": str(model), "model_stamp": model_stamp(model, ids),
                      "scene": str(own / "scenes" / f"scene_{scene_side(case['mpx'])}px.png"),
                      "out": str(own / f"out_{case['mpx']:g}_{case['folds']}"), "standin": use_standin,
                      "mirroring": not args.no_mirroring, "device": args.device, "low_memory": args.low_memory})
    return cases


def network_label(model: Path, use_standin: bool) -> str:
    """``standin`` or the model folder's name: the run's results and cases are kept under it."""
    return "standin" if use_standin else model.name


def case_path(own: Path, case: dict) -> Path:
    label = network_label(Path(case["model"]), case["standin"])
    return own / "cases" / label / f"{case['tool']}_{case['mpx']:g}Mpx_{case['folds']}folds.json"


def finished(own: Path, case: dict) -> dict | None:
    """The stored measurement of ``case`` if it was made with the same settings."""
    path = case_path(own, case)
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored["result"] if stored.get("case") == case else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--case"]:  # a case's own process: nothing else imported (its peak memory is measured)
        print(json.dumps(run_case(json.loads(argv[1]))))
        return 0
    args = parse_args(argv)
    from nnunet_glacier.utilities.atomic import write_json, write_text

    work = args.work.resolve()
    own = work / "detect"
    n_folds = max(args.folds)
    use_standin = args.model is None and args.train_caffe is None
    training, train_s = None, 0.0
    if args.train_caffe:
        training = CaffeTraining.prepare(args, work, n_folds)
        model = training.model
    elif args.model:
        from nnunet_glacier.field.models import resolve_model

        model = resolve_model(args.model)
    else:
        model = standin_model(own, args.experiment, n_folds, args.standin_patch)
    timing = dict(device=args.device, mirroring=not args.no_mirroring, low_memory=args.low_memory,
                  use_standin=use_standin)
    if training is not None and training.to_train():
        import bench_fast

        todo = training.to_train()
        first = training.jobs[0]
        with bench_fast.probing(first.paths, training.budget, args.experiment, threads=first.threads,
                                device=args.device, iterations=bench_fast.SMOKE_PROBE_ITERATIONS if args.smoke
                                else bench_fast.PROBE_ITERATIONS) as probe:
            cost = tile_cost(probe.model, 0, **timing)
            train_s = math.ceil(len(todo) / args.jobs) * probe.train_s(training.budget)
        print(f"training {len(todo)} fold(s) on {min(args.jobs, len(todo))} worker(s): about "
              f"{duration(probe.train_s(training.budget))} each", flush=True)
        print_estimate(cost, planned(args), train_s)
        if args.estimate_only:
            return 0
        training.train(args.jobs)
    from nnunet_glacier.nnunet.predict import available_folds

    fold_ids = available_folds(model)
    if len(fold_ids) < n_folds:
        raise SystemExit(f"error: {model} has {len(fold_ids)} trained fold(s) ({fold_ids}); --folds asks for {n_folds}")
    cases = cases_to_run(args, model, fold_ids, own, use_standin)
    todo = [c for c in cases if args.fresh or finished(own, c) is None]
    if not train_s:
        if todo:
            print_estimate(tile_cost(model, fold_ids[0], **timing), todo)
        else:
            print("every case already measured (--fresh measures them again)", flush=True)
        if args.estimate_only:
            return 0
    results = []
    for case in cases:
        result = None if case in todo else finished(own, case)
        if result is None:
            scene_file(own / "scenes", case["mpx"])
            shutil.rmtree(case["out"], ignore_errors=True)
            result = run_in_subprocess(case)
            shutil.rmtree(case["out"], ignore_errors=True)
            write_json(case_path(own, case), {"case": case, "result": result,
                                              "finished": dt.datetime.now().isoformat(timespec="seconds"),
                                              "load_average": os.getloadavg()})
            note = ""
        else:
            note = " (measured before)"
        results.append((case, result))
        print(f"{case['tool']} {case['mpx']:g} Mpx {case['folds']} fold(s): {result['seconds']:.1f} s, "
              f"{result['peak_gb']:.2f} GB{note}", flush=True)
    network = "stand-in network" if use_standin else f"model {model}"
    lines = [f"Model: {network}; mirroring {'off' if args.no_mirroring else 'on'}; device {args.device}"
             f"{'; low memory' if args.low_memory else ''}.", "", table(results), "", *fold_ratios(results)]
    label = network_label(model, use_standin)
    write_text(own / f"detect_results_{label}.md", "\n".join(lines) + "\n")
    write_json(own / f"detect_results_{label}.json", {"model": str(model), "standin": use_standin,
                                             "results": [{"case": c, "result": r} for c, r in results],
                                             "written": dt.datetime.now().isoformat(timespec="seconds")})
    print("\n".join(lines))
    print(f"wrote {own / f'detect_results_{label}.md'} and .json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
