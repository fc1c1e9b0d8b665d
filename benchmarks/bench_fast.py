"""The MDE cost of ``detect --fast`` on real SAR: the default sliding window against the fast preset, over seeds.

A model per run and seed is trained on the training split of a CaFFe root
(default the real sample ``caffe_256``: Crane, 69 images) with
``bench_accuracy.py``'s machinery and budget (the same options and
defaults, the same work-directory layout, so a ``bench_accuracy.py`` work
directory of the same budget is reused as it is: its trained models are not
trained again). Then, one after the other in this process with every core
(nothing else of ours running, so the wall times compare), the test split
(Jorum, 77 images) is predicted twice with our predictor (``GlacierPredictor``, as ``detect`` uses it):

- ``default``: ``detect``'s defaults, step 0.5 of the patch and test-time mirroring;
- ``fast``: ``detect --fast``, step :data:`~nnunet_glacier.nnunet.predict.FAST_STEP_SIZE` and no mirroring.

Both are evaluated with the benchmark-exact evaluator
(:mod:`nnunet_glacier.evaluation.evaluate`, every route the model has; the
route ``detect`` takes is marked). Printed and written: per run and route the
pooled MDE (px and m) of both as mean ± std over seeds, the difference
(fast - default) and ratio (fast / default) of the pooled MDEs, a paired
two-sided Wilcoxon signed-rank test over test scenes (per-scene MDE in px
averaged over the seeds where the scene has a front), the scenes without a
front, the wall time of each prediction (77 scenes; model loading recorded
apart) and their ratio, and the network passes per scene of each setting (tiles x
mirrored copies: the work ``--fast`` saves).

On ``caffe_256`` (256 px scenes) with the budget's 128 px patches both steps
place the same 3 x 3 tiles (nnU-Net's positions: 0, 64, 128 in each
direction), so there the cost measured is that of leaving out mirroring
alone (4x fewer network passes); the table's header line gives the passes of
both settings.

Work directory (``--work``; a killed benchmark continues where it stopped:
trained folds are kept, an interrupted training resumes from its
checkpoint, a finished prediction pair is not redone — an interrupted one is
redone whole, so that its time is one run's; evaluations are redone every time)::

    budget.json, nnUNet_raw/, nnUNet_preprocessed/, seed_<s>/nnUNet_results/, seed_<s>/logs/   as bench_accuracy.py
    seed_<s>/fast/<run>.json                           wall and CPU times of the two predictions (presence = done)
    seed_<s>/fast/predictions/<run>/{default,fast}/    test-split predictions (PNG)
    seed_<s>/fast/evaluation/<run>/{default,fast}/     summary.json, per_image.csv
    fast_results.json, fast_results.md                 the table (ready for the README) and everything behind it

Before anything is trained the budget is estimated and printed: two short
probe trainings (a few iterations each, in ``<work>/probe``, removed after)
give the time per training iteration and the fixed cost of a run, and the
probe's model, predicting a test scene with each setting, the prediction
time. ``--estimate-only`` stops there.

Usage::

    python benchmarks/bench_fast.py --work bench_work --epochs 32 --iterations 25 --seeds 0 1
    python benchmarks/bench_fast.py --smoke        # a check that it runs end to end (a few minutes)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_accuracy import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_RUNS,
    Budget,
    Job,
    Paths,
    _num,
    _pm,
    add_budget_arguments,
    budget_from_args,
    check_budget,
    cpu_seconds,
    describe_budget,
    evaluate_folders,
    logged,
    machine,
    predict_run,
    prepare,
    read_per_image,
    run_all,
    run_experiment,
    seed_mean_mde,
    seed_metrics,
    split_images,
    spread,
)
from bench_detect import duration  # noqa: E402

from nnunet_glacier.nnunet.predict import FAST_STEP_SIZE  # noqa: E402
from nnunet_glacier.utilities.atomic import write_json, write_text  # noqa: E402

#: The two sliding-window settings compared: (step as a fraction of the patch, test-time mirroring).
SETTINGS = {"default": (0.5, True), "fast": (FAST_STEP_SIZE, False)}
#: Training iterations of the two probe runs (the larger first: its one-time costs make the estimate high, not low).
PROBE_ITERATIONS = (20, 2)
SMOKE_PROBE_ITERATIONS = (3, 1)
#: A validation iteration (forward only) costs about this share of a training iteration.
VALIDATION_SHARE = 0.5
SMOKE_TRAIN, SMOKE_TEST = 10, 3
DEFAULT_RUN = "mtl_late"


# --- training (worker processes) -------------------------------------------------------------------------------

def train_job(job: Job) -> dict[str, Any]:
    """Train one job (run, seed, fold) into its work directory, nnU-Net's output in the job's log."""
    with logged(job.paths.log(job.seed, job.name)):
        from bench_accuracy import train_run

        return {"timings": train_run(job)}


def is_trained_job(job: Job) -> bool:
    from nnunet_glacier.nnunet.training import is_trained

    return is_trained(job.paths.workspace(job.seed), run_experiment(job.run, job.budget), job.fold_key)


def train_all(jobs: list[Job], workers: int) -> None:
    """Train the jobs not yet trained on ``workers`` processes."""
    run_all(jobs, workers, task=train_job, is_done=is_trained_job)


def prepare_logged(paths: Paths, budget: Budget, runs: Sequence[str]) -> None:
    """bench_accuracy's :func:`~bench_accuracy.prepare` (export, plan) with nnU-Net's output in a log."""
    log = paths.work / "logs" / "prepare.log"
    print(f"prepare (export, plan; nnU-Net's output in {log})", flush=True)
    with logged(log):
        prepare(paths, budget, runs, processes=os.cpu_count() or 1)


# --- the estimate ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Probe:
    """What the probe trainings measured: seconds per training iteration, fixed seconds of a run (set-up,
    validation, the final validation, saving), and a model folder of the run's architecture."""

    iteration_s: float
    fixed_s: float
    model: Path

    def train_s(self, budget: Budget) -> float:
        """Estimated wall seconds of one run trained at ``budget`` (one worker, the probe's threads)."""
        iterations = budget.epochs * budget.iterations + VALIDATION_SHARE * (budget.epochs - 1) * budget.val_iterations
        return self.fixed_s + iterations * self.iteration_s


@contextmanager
def probing(paths: Paths, budget: Budget, run: str, *, threads: int, device: str,
            iterations: Sequence[int] = PROBE_ITERATIONS) -> Iterator[Probe]:
    """Two short trainings of ``run`` (one epoch of each of ``iterations``) in ``<work>/probe``, removed after.

    Needs the prepared (exported, planned) dataset. Yields the :class:`Probe`.
    """
    from nnunet_glacier.nnunet.training import model_folder, train_fold
    from nnunet_glacier.nnunet.workspace import Workspace

    root = paths.work / "probe"
    shutil.rmtree(root, ignore_errors=True)
    shared = paths.workspace_shared
    experiment = run_experiment(run, budget)
    seconds, workspace = {}, None
    try:
        for count in iterations:
            workspace = Workspace(shared.raw, shared.preprocessed, root / f"iterations_{count}").activate()
            start = time.perf_counter()
            with logged(root / "probe.log"):
                train_fold(experiment, budget.fold_key, workspace, device=device, max_epochs=1, iterations=count,
                           val_iterations=budget.val_iterations, seed=0, threads=threads)
            seconds[count] = time.perf_counter() - start
        few, many = min(iterations), max(iterations)
        iteration_s = max(0.0, (seconds[many] - seconds[few]) / (many - few))
        yield Probe(iteration_s, max(0.0, seconds[few] - few * iteration_s), model_folder(workspace, experiment))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def prediction_seconds(model: Path, fold: int | str, image: Path, *, device: str, threads: int) -> dict[str, float]:
    """Seconds to predict one scene with each of :data:`SETTINGS` (the faster of two calls after a warm-up)."""
    import torch

    from nnunet_glacier.data.caffe import read_grey
    from nnunet_glacier.nnunet.predict import GlacierPredictor

    torch.set_num_threads(threads)
    grey = read_grey(image)
    seconds = {}
    for name, (step, mirroring) in SETTINGS.items():
        with redirect_stdout(io.StringIO()):  # nnU-Net's messages on loading a model
            predictor = GlacierPredictor(model, [fold], device=device, step_size=step, mirroring=mirroring,
                                         tile_progress=False)
        predictor.predict(grey)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            predictor.predict(grey)
            times.append(time.perf_counter() - start)
        seconds[name] = min(times)
    return seconds


def network_passes(images: Sequence[Path], patch: int) -> dict[str, int]:
    """Per setting, the network passes over the images: tiles (nnU-Net's positions) times mirrored copies."""
    from PIL import Image

    from nnunet_glacier.nnunet.window import tile_starts

    passes = dict.fromkeys(SETTINGS, 0)
    for image in images:
        with Image.open(image) as opened:
            cols, rows = opened.size
        shape = (max(rows, patch), max(cols, patch))
        for name, (step, mirroring) in SETTINGS.items():
            starts = tile_starts(shape, (patch, patch), step)
            passes[name] += len(starts[0]) * len(starts[1]) * (4 if mirroring else 1)
    return passes


def print_estimate(probe_train_s: float | None, n_train: int, workers: int, threads: int,
                   per_image: dict[str, float], n_images: int, n_predictions: int) -> float:
    """Print the estimated wall time (and CPU time) of what is left to do; returns the wall seconds."""
    lines, total, cpu = [], 0.0, 0.0
    if n_train and probe_train_s is not None:
        wall = math.ceil(n_train / workers) * probe_train_s
        total, cpu = total + wall, cpu + n_train * probe_train_s * threads
        lines.append(f"  training: {n_train} run(s) of about {duration(probe_train_s)} each on {min(workers, n_train)} "
                     f"worker(s) x {threads} thread(s): about {duration(wall)}")
    for name, seconds in per_image.items():
        wall = seconds * n_images * n_predictions
        total, cpu = total + wall, cpu + wall * (os.cpu_count() or 1)
        lines.append(f"  prediction '{name}': {seconds:.2f} s per scene x {n_images} scenes x {n_predictions} "
                     f"model(s): about {duration(wall)}")
    print("estimate (the evaluations add seconds per model):\n" + "\n".join(lines)
          + f"\n  total: about {duration(total)} wall, {duration(cpu)} CPU on {os.cpu_count()} cores", flush=True)
    return total


# --- the two predictions (this process, one after the other) ---------------------------------------------------

def fast_dir(paths: Paths, seed: int) -> Path:
    return paths.seed_dir(seed) / "fast"


def record_path(paths: Paths, seed: int, run: str) -> Path:
    return fast_dir(paths, seed) / f"{run}.json"


def predictions_dir(paths: Paths, seed: int, run: str, setting: str) -> Path:
    return fast_dir(paths, seed) / "predictions" / run / setting


def evaluation_dir(paths: Paths, seed: int, run: str, setting: str) -> Path:
    return fast_dir(paths, seed) / "evaluation" / run / setting


def predict_both(job: Job) -> dict[str, Any]:
    """Predict the test split with both settings (each afresh, so that its time is one whole run's); the record."""
    timings = {}
    for name, (step, mirroring) in SETTINGS.items():
        out = predictions_dir(job.paths, job.seed, job.run, name)
        shutil.rmtree(out, ignore_errors=True)
        with logged(job.paths.log(job.seed, f"{job.run}_predict")):
            timings[name] = predict_run(job, out, step_size=step, mirroring=mirroring, save_probabilities=False)
        timings[name].update(step_size=step, mirroring=mirroring)
        print(f"seed {job.seed} {job.run} {name} (step {step}, mirroring {'on' if mirroring else 'off'}): "
              f"{timings[name]['predict_s'] - timings[name]['load_seconds']:.1f} s "
              f"(+ {timings[name]['load_seconds']:.1f} s loading the model)", flush=True)
    record = {"run": job.run, "seed": job.seed, "timings": timings, "threads": job.threads,
              "finished": dt.datetime.now().isoformat(timespec="seconds"), "load_average": os.getloadavg()}
    write_json(record_path(job.paths, job.seed, job.run), record)
    return record


# --- results ---------------------------------------------------------------------------------------------------

def collect(paths: Paths, budget: Budget, runs: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Per run and route: both settings' metrics over seeds, their differences, the paired test, the times."""
    from nnunet_glacier.evaluation.compare import paired_wilcoxon
    from nnunet_glacier.postprocessing.postprocess import choose_route

    results: dict[str, Any] = {}
    passes = network_passes(split_images(budget), budget.patch)
    for run in runs:
        used = [seed for seed in seeds if record_path(paths, seed, run).is_file()]
        if not used:
            continue
        records = [json.loads(record_path(paths, seed, run).read_text()) for seed in used]
        detect_route = choose_route(list(run_experiment(run, budget).tasks))
        per_setting = {name: [read_per_image(evaluation_dir(paths, seed, run, name) / "per_image.csv")
                              for seed in used] for name in SETTINGS}
        seconds = {name: [r["timings"][name]["predict_s"] - r["timings"][name].get("load_seconds", 0.0) for r in records]
                   for name in SETTINGS}
        for route in per_setting["default"][0]:
            metrics = {name: [seed_metrics(by_route[route]) for by_route in per_seed]
                       for name, per_seed in per_setting.items()}
            pooled = {name: [m["mde_pooled_px"] for m in metrics[name]] for name in SETTINGS}
            per_image = {name: seed_mean_mde([by_route[route] for by_route in per_seed])
                         for name, per_seed in per_setting.items()}
            results[f"{run}:{route}"] = {
                "run": run, "route": route, "detect_route": route == detect_route, "seeds": used,
                **{name: {key: spread([m[key] for m in metrics[name]]) for key in metrics[name][0]}
                   for name in SETTINGS},
                "difference_px": spread([f - d for f, d in zip(pooled["fast"], pooled["default"])]),
                "ratio": spread([f / d if d else math.nan for f, d in zip(pooled["fast"], pooled["default"])]),
                "test": paired_wilcoxon(per_image["fast"], per_image["default"]),
                "test_per_seed": [paired_wilcoxon(
                    {s: r["mde_px"] for s, r in per_setting["fast"][i][route].items() if r["n"] > 0},
                    {s: r["mde_px"] for s, r in per_setting["default"][i][route].items() if r["n"] > 0})
                    for i in range(len(used))],
                "per_image_mde_px": per_image,
                "predict_s": {name: spread(seconds[name]) for name in SETTINGS},
                "time_ratio": spread([f / d for f, d in zip(seconds["fast"], seconds["default"])]),
            }
    return {"results": results, "network_passes": passes,
            "network_work_ratio": passes["fast"] / passes["default"] if passes["default"] else None}


def _test(test: dict[str, Any]) -> str:
    return "–" if test["p"] is None else f"{test['p']:.3g} ({test['a_lower']}/{test['n']})"


TABLE_HEADER = ("| run | route | seeds | pooled MDE default (px) | default (m) | pooled MDE fast (px) | fast (m) "
                "| fast − default (px) | fast / default | p (fast lower / pairs) | no front default | no front fast "
                "| predict default (s) | predict fast (s) | time fast / default |")


def table_markdown(collected: dict[str, Any]) -> list[str]:
    """The results table (Markdown), one row per run and route (``detect``'s route in bold)."""
    lines = [TABLE_HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in collected["results"].values():
        d, f = e["default"], e["fast"]
        n_images = int(d["n_images"]["mean"])
        route = f"**{e['route']}**" if e["detect_route"] else e["route"]
        lines.append(f"| {e['run']} | {route} | {len(e['seeds'])} | {_pm(d['mde_pooled_px'], 2)} "
                     f"| {_pm(d['mde_pooled_m'], 0)} | {_pm(f['mde_pooled_px'], 2)} | {_pm(f['mde_pooled_m'], 0)} "
                     f"| {_pm(e['difference_px'], 2)} | {_pm(e['ratio'], 3)} | {_test(e['test'])} "
                     f"| {_pm(d['no_front'], 1)} of {n_images} | {_pm(f['no_front'], 1)} of {n_images} "
                     f"| {_pm(e['predict_s']['default'], 1)} | {_pm(e['predict_s']['fast'], 1)} "
                     f"| {_pm(e['time_ratio'], 2)} |")
    return lines


def summary_lines(budget: Budget, seeds: Sequence[int], collected: dict[str, Any]) -> list[str]:
    info = machine()
    passes, n_images = collected["network_passes"], len(split_images(budget))
    default, fast = SETTINGS["default"], SETTINGS["fast"]
    return [
        "# The MDE cost of `detect --fast`", "", describe_budget(budget, seeds), "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores; nnunetv2 {info['versions']['nnunetv2']}, torch "
        f"{info['versions']['torch']}; written {dt.datetime.now():%Y-%m-%d %H:%M}; commit {info['git_commit']}"
        f"{' (modified)' if info['git_dirty'] else ''}.", "",
        f"Settings: default = step {default[0]}, mirroring {'on' if default[1] else 'off'}; fast (`--fast`) = step "
        f"{fast[0]}, mirroring {'on' if fast[1] else 'off'}. Network passes over the {n_images} test scenes "
        f"({budget.patch} px patches; tiles x mirrored copies): default {passes['default']}, fast {passes['fast']} "
        f"(ratio {_num(collected['network_work_ratio'], 3)}).", "",
        "Pooled MDE over test scenes (Eq. 1), mean ± std over seeds; fast − default and fast / default per seed, "
        "then mean ± std; p: two-sided Wilcoxon signed-rank test over test scenes of the per-scene MDE (px, averaged "
        "over seeds), in brackets the scenes where fast is lower / scenes paired; predict: wall seconds for the test "
        "split (reading, prediction, writing; model loading not included), one prediction at a time on every core. "
        "The route `detect` takes is in bold.",
        "", *table_markdown(collected), ""]


# --- command line ----------------------------------------------------------------------------------------------

def smoke_data(root: Path, out: Path, n_train: int = SMOKE_TRAIN, n_test: int = SMOKE_TEST) -> Path:
    """A CaFFe root ``out`` of links to the first ``n_train`` training and ``n_test`` test scenes of ``root``."""
    from nnunet_glacier.data import caffe

    for split, count in (("train", n_train), ("test", n_test)):
        for sample in caffe.discover(root, (split,))[:count]:
            for kind, path in (("sar_images", sample.image), ("zones", sample.zones), ("fronts", sample.front)):
                link = out / kind / split / path.name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(path.resolve())
    return out


SMOKE_BUDGET = {"epochs": 1, "iterations": 2, "val_iterations": 1, "batch": 2, "patch": 128, "stages": 3,
                "features": [8, 32]}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"CaFFe root (default: {DEFAULT_DATA})")
    parser.add_argument("--work", type=Path, default=None,
                        help="work directory (default: ./bench_fast_work; a bench_accuracy.py work directory of the "
                             "same budget is reused)")
    parser.add_argument("--runs", nargs="+", default=[DEFAULT_RUN], choices=DEFAULT_RUNS, metavar="RUN",
                        help=f"runs whose models are measured (default: {DEFAULT_RUN}; any of {' '.join(DEFAULT_RUNS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds (default: 0 1 2; with --smoke 0 1)")
    add_budget_arguments(parser)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="training worker processes (default: cores); the predictions run one at a time")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per training worker (default: cores / jobs, at least 1)")
    parser.add_argument("--estimate-only", action="store_true", help="print the estimated budget and stop")
    parser.add_argument("--report-only", action="store_true",
                        help="train and predict nothing: evaluate what is finished and rebuild the table")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a check that it runs end to end: {SMOKE_TRAIN} training and {SMOKE_TEST} test scenes "
                             "(links in the work directory), 1 epoch of 2 iterations, a 3-stage U-Net of 8..32 features; "
                             "work directory default <tmp>/bench_fast_smoke")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE_BUDGET.items():
            setattr(args, key, value)
    if args.seeds is None:
        args.seeds = [0, 1] if args.smoke else [0, 1, 2]
    if args.work is None:
        args.work = Path(tempfile.gettempdir()) / "bench_fast_smoke" if args.smoke else Path("bench_fast_work")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    paths = Paths(args.work.resolve())
    data = smoke_data(args.data, paths.work / "smoke_data") if args.smoke else args.data
    budget = budget_from_args(args, data, mirroring=SETTINGS["default"][1])
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.jobs)
    print(describe_budget(budget, args.seeds), flush=True)
    check_budget(paths, budget, ignore=("mirroring",))  # trained models only: the predictions here are our own
    train_jobs = [Job(run, seed, budget, paths, args.device, threads) for seed in args.seeds for run in args.runs]
    predict_jobs = [dataclasses.replace(job, threads=cores) for job in train_jobs]
    if not args.report_only:
        prepare_logged(paths, budget, args.runs)
        to_train = [job for job in train_jobs if not is_trained_job(job)]
        to_predict = [job for job in predict_jobs if not record_path(paths, job.seed, job.run).is_file()]
        images = split_images(budget)
        if to_train:
            with probing(paths, budget, args.runs[0], threads=threads, device=args.device,
                         iterations=SMOKE_PROBE_ITERATIONS if args.smoke else PROBE_ITERATIONS) as probe:
                per_image = prediction_seconds(probe.model, budget.fold_key, images[0], device=args.device,
                                               threads=cores)
                print_estimate(probe.train_s(budget), len(to_train), args.jobs, threads, per_image, len(images),
                               len(to_predict))
        elif to_predict:
            per_image = prediction_seconds(to_predict[0].model, budget.fold_key, images[0], device=args.device,
                                           threads=cores)
            print_estimate(None, 0, args.jobs, threads, per_image, len(images), len(to_predict))
        else:
            print("everything is trained and predicted" + ("" if args.estimate_only else ": evaluating"), flush=True)
        if args.estimate_only:
            return 0
        train_all(train_jobs, args.jobs)
        for job in to_predict:
            if is_trained_job(job):
                predict_both(job)
    folders = [(predictions_dir(paths, seed, run, name), evaluation_dir(paths, seed, run, name),
                f"seed {seed} {run} {name}")
               for seed in args.seeds for run in args.runs if record_path(paths, seed, run).is_file()
               for name in SETTINGS]
    evaluate_folders(folders, budget, cores, extra_routes=())
    collected = collect(paths, budget, args.runs, args.seeds)
    if not collected["results"]:
        print("no finished prediction yet", file=sys.stderr)
        return 1
    lines = summary_lines(budget, args.seeds, collected)
    write_text(paths.work / "fast_results.md", "\n".join(lines))
    write_json(paths.work / "fast_results.json", {
        "budget": dataclasses.asdict(budget), "seeds": list(args.seeds), "runs": list(args.runs),
        "settings": {name: {"step_size": s, "mirroring": m} for name, (s, m) in SETTINGS.items()},
        "machine": machine(), "wall_s_this_invocation": time.perf_counter() - started,
        "cpu_s_this_invocation": cpu_seconds(),
        "records": [json.loads(record_path(paths, s, r).read_text()) for s in args.seeds for r in args.runs
                    if record_path(paths, s, r).is_file()],
        "written": dt.datetime.now().isoformat(timespec="seconds"), **collected})
    print("\n" + "\n".join(lines[2:]))
    print(f"wrote {paths.work / 'fast_results.md'} and fast_results.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
