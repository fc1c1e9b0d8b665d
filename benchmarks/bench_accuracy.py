"""Front accuracy on real SAR: our experiments against stock nnU-Net at the same compute budget, over seeds.

Baseline, trained in the same run: the baseline experiments of ``configs/``
(role ``baseline``): nnU-Net's own ``nnUNetTrainer`` on the fused labels
(``stock_fused``) and on the zone labels (``stock_zone``), on the same
exported dataset, the same plans configuration (architecture, patch, batch),
the same split and fold, with only its schedule length cut to the budget
(``num_epochs``, ``num_iterations_per_epoch``, as ``train_fold`` does for
every trainer; validation iterations and the checkpoint interval too, which
change no weight: the final checkpoint is what is predicted). Everything
else — oversampling, augmentation, loss, optimiser — stays nnU-Net's.

For every run (stock baselines and our experiments) and seed: train one fold
with ``train_fold`` (torch, NumPy and ``random`` seeded; data loading
in-process so a seed repeats), predict the test split with our predictor
(sliding window, test-time mirroring), evaluate every route the model has
with the benchmark-exact evaluator (:mod:`nnunet_glacier.evaluation.evaluate`), plus the
post-processing options beside it (``fused_split``, ``fused_front`` for fused
maps, stock's included: an improvement that is pure post-processing shows on
stock too). Then one table: per run and route the pooled MDE (px and m),
mean and median of per-image MDEs (px), images without a front, macro zone
IoU — each mean ± std over seeds — the ratio of pooled MDEs to
``stock_fused:fused`` (stock nnU-Net, benchmark-exact route) and to the best
stock row (any route), and paired Wilcoxon signed-rank tests over test images
(per-image MDE in px averaged over the seeds where the image has a front;
images with a front in both results are paired) of every row against those
two and of every multi-task or fused row against single-task zones
(``stl_zone:zone``). The same again for the seed ensembles (per task the mean
of the seeds' class probabilities).

Pixel size: distances in pixels are what the network sees; metres use
``--pixel-size`` (default 75 m, a nominal size for 256-px CaFFe copies such as
``caffe_256``, whose names' resolutions do not hold — it also sets the 750 m
minimum front length to 10 px). ``--pixel-size names`` uses the names'
resolutions (full-size CaFFe).

Work directory (``--work``; a killed benchmark continues where it stopped: a
finished run is not redone, an interrupted one resumes from its checkpoint;
evaluations are redone every time, they take seconds)::

    budget.json                      the budget and data; another budget needs another --work
    nnUNet_raw/, nnUNet_preprocessed/    shared by all runs and seeds
    seed_<s>/nnUNet_results/         one results root per seed
    seed_<s>/predictions/<run>/      test-split predictions (PNG)
    seed_<s>/evaluation/<run>/       summary.json, per_image.csv
    seed_<s>/runs/<run>.json         timings of a finished run (its presence = done)
    seed_<s>/logs/<run>.log          nnU-Net's training output
    ensemble/{predictions,evaluation}/<run>/     the seed ensembles (rebuilt each time)
    results.json, results.md, mde_boxplot.png    the tables, tests and box plot

Runs are spread over ``--jobs`` worker processes with ``--threads`` torch
threads each (default: one per core — small networks train faster side by
side than with several threads each).

Usage::

    python benchmarks/bench_accuracy.py [--data ROOT] [--work DIR] [--seeds 0 1 2] [--runs ...]
        [--epochs E] [--iterations I] [--batch B] [--patch P] [--stages S] [--features F0 FMAX] [--fold K]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

os.environ["nnUNet_n_proc_DA"] = "0"  # in-process data loading: seeded runs repeat; inherited by the workers

import numpy as np  # noqa: E402

from nnunet_glacier.data import caffe  # noqa: E402
from nnunet_glacier.data.experiments import Experiment, get_experiment, load_experiments  # noqa: E402
from nnunet_glacier.errors import InputError  # noqa: E402
from nnunet_glacier.nnunet.workspace import Workspace  # noqa: E402
from nnunet_glacier.utilities.atomic import write_json, write_text  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("CAFFE_256", Path(__file__).resolve().parents[2] / "shared" / "data" / "caffe_256"))
NOMINAL_PIXEL_SIZE_M = 75.0
PROFILE = "bench"  # plans configuration 2d_bench
BASELINE = "stock_fused:fused"
STL_ZONE = "stl_zone:zone"
EXTRA_ROUTES = ("fused_split", "fused_front")
#: Runs compared with single-task zones as in the paper (multi-task and fused labels).
MULTI_TASK_OR_FUSED = tuple(name for name, e in load_experiments().items() if e.is_multitask or "fused" in e.tasks)
#: Every configured experiment, the baselines (stock nnU-Net) first.
DEFAULT_RUNS = tuple(sorted(load_experiments(), key=lambda name: load_experiments()[name].role != "baseline"))
TEST_SPLIT = "test"


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run gets: schedule (epochs x iterations of ``batch`` patches of ``patch`` px), U-Net size, fold."""

    epochs: int
    iterations: int
    val_iterations: int
    batch: int
    patch: int
    stages: int
    base_features: int
    max_features: int
    fold: str
    mirroring: bool
    pixel_size: float | None  # metres per pixel for every scene; None = the names' resolutions
    data: str

    @property
    def total_iterations(self) -> int:
        return self.epochs * self.iterations

    @property
    def fold_key(self) -> int | str:
        return self.fold if self.fold == "all" else int(self.fold)


def budgeted(experiment: Experiment, budget: Budget) -> Experiment:
    """``experiment`` with the budget's plan (patch, batch, U-Net size) and schedule, as configuration ``2d_bench``."""
    plan = dataclasses.replace(experiment.plan, patch_size=(budget.patch, budget.patch), batch_size=budget.batch,
                               base_features=budget.base_features, max_features=budget.max_features,
                               max_stages=budget.stages)
    training = dataclasses.replace(experiment.training, epochs=budget.epochs,
                                   iterations_per_epoch=budget.iterations,
                                   val_iterations_per_epoch=budget.val_iterations,
                                   save_every=max(1, budget.epochs // 10))
    return dataclasses.replace(experiment, plan=plan, training=training, profile=PROFILE)


def run_experiment(run: str, budget: Budget) -> Experiment:
    """The experiment a run trains (ours or a stock baseline), with the budget."""
    return budgeted(get_experiment(run), budget)


@dataclasses.dataclass(frozen=True)
class Paths:
    work: Path

    @property
    def workspace_shared(self) -> Workspace:
        return Workspace.from_work_dir(self.work)

    def workspace(self, seed: int) -> Workspace:
        shared = self.workspace_shared
        return Workspace(shared.raw, shared.preprocessed, self.seed_dir(seed) / "nnUNet_results")

    def seed_dir(self, seed: int) -> Path:
        return self.work / f"seed_{seed}"

    def predictions(self, seed: int, run: str) -> Path:
        return self.seed_dir(seed) / "predictions" / run

    def evaluation(self, seed: int, run: str) -> Path:
        return self.seed_dir(seed) / "evaluation" / run

    def record(self, seed: int, run: str) -> Path:
        return self.seed_dir(seed) / "runs" / f"{run}.json"

    def log(self, seed: int, run: str) -> Path:
        return self.seed_dir(seed) / "logs" / f"{run}.log"

    def ensemble_predictions(self, run: str) -> Path:
        return self.work / "ensemble" / "predictions" / run

    def ensemble_evaluation(self, run: str) -> Path:
        return self.work / "ensemble" / "evaluation" / run


# --- preparation (main process) --------------------------------------------------------------------------------

def check_budget(paths: Paths, budget: Budget, ignore: Sequence[str] = ()) -> None:
    """Record the budget in a new work directory; refuse a work directory made with another one.

    ``ignore``: fields the caller does not depend on (``mirroring`` for a benchmark that only reuses the
    trained models and predicts with settings of its own).
    """
    path = paths.work / "budget.json"
    wanted = dataclasses.asdict(budget)
    if path.is_file():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in wanted if k not in ignore and recorded.get(k) != wanted[k])
        if changed:
            raise SystemExit(f"error: {path}: this work directory was made with another budget "
                             f"(differs in {', '.join(changed)}); use another --work")
        return
    write_json(path, wanted)


def prepare(paths: Paths, budget: Budget, runs: Sequence[str], processes: int) -> None:
    """Export, plan and preprocess each dataset once (shared by all runs and seeds), then the 2d_bench configuration."""
    from nnunet_glacier.pipeline.layout import RunLayout
    from nnunet_glacier.pipeline.reproduce import Reproduction, export_step, plan_step

    experiments = {}
    for run in runs:
        experiment = run_experiment(run, budget)
        experiments.setdefault(experiment.dataset_id, experiment)
    reproduction = Reproduction(data=Path(budget.data), layout=RunLayout.in_work_dir(paths.work),
                                experiments=list(experiments.values()), pixel_size=budget.pixel_size,
                                processes=processes)
    reproduction.workspace.activate()
    for experiment in experiments.values():
        print(f"prepare {experiment.dataset}", flush=True)
        export_step(reproduction, experiment)
        plan_step(reproduction, experiment)


# --- one run (worker process) ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Job:
    run: str
    seed: int
    budget: Budget
    paths: Paths
    device: str
    threads: int
    fold: int | str | None = None  # None: the budget's fold

    @property
    def fold_key(self) -> int | str:
        return self.budget.fold_key if self.fold is None else self.fold

    @property
    def name(self) -> str:
        """The run, and its fold when it is not the budget's (logs, progress lines)."""
        return self.run if self.fold is None else f"{self.run}_fold_{self.fold}"

    @property
    def model(self) -> Path:
        """The results folder the run trains into."""
        from nnunet_glacier.nnunet.training import model_folder

        return model_folder(self.paths.workspace(self.seed), run_experiment(self.run, self.budget))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, in seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def logged(path: Path) -> Iterator[None]:
    """Send this process's output (nnU-Net's training log, progress) to ``path`` (appended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle, redirect_stdout(handle), redirect_stderr(handle):
        yield


def run_job(job: Job) -> dict[str, Any]:
    """Train, predict and evaluate one run with one seed (resuming each step); returns its record."""
    with logged(job.paths.log(job.seed, job.name)):
        return _run_job(job)


def train_run(job: Job) -> dict[str, float]:
    """Train the job's run, seed and fold with the budget's schedule (resumes; a trained fold is skipped).

    Returns the wall and CPU seconds (``train_s``, ``train_cpu_s``).
    """
    from nnunet_glacier.nnunet.training import train_fold

    budget = job.budget
    experiment = run_experiment(job.run, budget)
    workspace = job.paths.workspace(job.seed).activate()
    cpu_start, start = cpu_seconds(), time.perf_counter()
    train_fold(experiment, job.fold_key, workspace, device=job.device, max_epochs=budget.epochs,
               iterations=budget.iterations, val_iterations=budget.val_iterations, seed=job.seed,
               threads=job.threads)
    return {"train_s": time.perf_counter() - start, "train_cpu_s": cpu_seconds() - cpu_start}


def split_images(budget: Budget) -> list[Path]:
    """The test split's image files."""
    return [s.image for s in caffe.discover(budget.data, (TEST_SPLIT,), pixel_size=budget.pixel_size)]


def predict_run(job: Job, out: Path, *, step_size: float = 0.5, mirroring: bool | None = None,
                save_probabilities: bool = True) -> dict[str, float]:
    """Predict the test split with the job's trained fold into ``out`` (``mirroring`` default: the budget's).

    Scenes already predicted in ``out`` are skipped. Returns the wall and CPU seconds, model loading
    included (``predict_s``, ``predict_cpu_s``), and the wall seconds of loading the model (``load_seconds``).
    """
    import torch

    from nnunet_glacier.nnunet.predict import GlacierPredictor, predict_images

    cpu_start, start = cpu_seconds(), time.perf_counter()
    torch.set_num_threads(job.threads)
    predictor = GlacierPredictor(job.model, [job.fold_key], device=job.device, step_size=step_size,
                                 mirroring=job.budget.mirroring if mirroring is None else mirroring, tile_progress=False)
    load_seconds = time.perf_counter() - start
    report = predict_images(predictor, split_images(job.budget), out, save_probabilities=save_probabilities,
                            progress=False)
    if report.failed:
        path, problem = report.failed[0]
        raise InputError(path, f"prediction failed: {problem}")
    return {"predict_s": time.perf_counter() - start, "predict_cpu_s": cpu_seconds() - cpu_start,
            "load_seconds": load_seconds}


def _run_job(job: Job) -> dict[str, Any]:
    experiment = run_experiment(job.run, job.budget)
    timings = train_run(job)
    timings.update(predict_run(job, job.paths.predictions(job.seed, job.run)))
    record = {"run": job.run, "seed": job.seed, "trainer": experiment.trainer, "dataset": experiment.dataset,
              "configuration": experiment.configuration, "timings": timings, "threads": job.threads,
              "git_commit": git_commit()[0], "finished": dt.datetime.now().isoformat(timespec="seconds"),
              "load_average": os.getloadavg()}
    write_json(job.paths.record(job.seed, job.run), record)
    return record


def _timings_text(timings: dict[str, float]) -> str:
    """``train 300 s (CPU 550 s), predict 20 s (CPU 38 s)`` of a record's ``<step>_s`` / ``<step>_cpu_s``."""
    steps = [key.removesuffix("_s") for key in timings if key.endswith("_s") and not key.endswith("_cpu_s")]
    return ", ".join(f"{step} {timings[step + '_s']:.0f} s"
                     + (f" (CPU {timings[step + '_cpu_s']:.0f} s)" if step + "_cpu_s" in timings else "")
                     for step in steps)


def run_all(jobs: list[Job], workers: int, task: Callable[[Job], dict[str, Any]] = run_job,
            is_done: Callable[[Job], bool] | None = None) -> None:
    """Run the unfinished jobs on ``workers`` processes, printing one line per finished run.

    ``task`` (a module-level function, for the worker processes) does a job and returns a record with
    ``timings``; ``is_done`` tells a finished job (default: its record of :func:`run_job` exists).
    """
    if is_done is None:
        def is_done(job: Job) -> bool:
            return job.paths.record(job.seed, job.run).is_file()
    todo = [j for j in jobs if not is_done(j)]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; {len(todo)} to go on {workers} worker(s)",
          flush=True)
    if not todo:
        return
    started = time.perf_counter()
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(task, job): job for job in todo}
        for done, future in enumerate(as_completed(futures), 1):
            job = futures[future]
            try:
                record = future.result()
            except Exception as err:  # report the failing run with its log, keep the others going
                print(f"[{done}/{len(todo)}] seed {job.seed} {job.name}: FAILED ({err}); "
                      f"see {job.paths.log(job.seed, job.name)}", flush=True)
                continue
            print(f"[{done}/{len(todo)}] seed {job.seed} {job.name}: {_timings_text(record['timings'])}; "
                  f"{(time.perf_counter() - started) / 60:.1f} min elapsed", flush=True)


def ensemble_seeds(paths: Paths, budget: Budget, run: str, seeds: Sequence[int]) -> bool:
    """Write the seeds' ensemble of ``run`` (per task the mean of their class probabilities), rebuilt every time.

    The run's previous ensemble (predictions and evaluation) goes first, whatever its seeds were; returns False
    (and writes nothing) unless there are two seeds or more and every one of them has finished, so that an
    ensemble of other seeds is never reported as this one.
    """
    import shutil

    from nnunet_glacier.nnunet.predict import ScenePrediction, mean_prediction, write_prediction

    out = paths.ensemble_predictions(run)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(paths.ensemble_evaluation(run), ignore_errors=True)
    if len(seeds) < 2 or not all(paths.record(seed, run).is_file() for seed in seeds):
        return False
    for sample in caffe.discover(budget.data, (TEST_SPLIT,), pixel_size=budget.pixel_size):
        members = []
        for seed in seeds:
            with np.load(paths.predictions(seed, run) / f"{sample.stem}_probabilities.npz") as saved:
                members.append(ScenePrediction.from_probabilities(
                    {task: saved[task].astype(np.float32) for task in saved.files}))
        write_prediction(mean_prediction(members), out, sample.stem, False)
    return True


def evaluate_all(paths: Paths, budget: Budget, runs: Sequence[str], seeds: Sequence[int], processes: int) -> None:
    """Evaluate every finished run and every seed ensemble afresh (the evaluator may have changed; it is quick)."""
    folders = [(paths.predictions(seed, run), paths.evaluation(seed, run), f"seed {seed} {run}")
               for seed in seeds for run in runs if paths.record(seed, run).is_file()]
    for run in runs:
        if ensemble_seeds(paths, budget, run, seeds):
            folders.append((paths.ensemble_predictions(run), paths.ensemble_evaluation(run), f"ensemble {run}"))
    evaluate_folders(folders, budget, processes)


def evaluate_folders(folders: Sequence[tuple[Path, Path, str]], budget: Budget, processes: int,
                     extra_routes: Sequence[str] = EXTRA_ROUTES) -> None:
    """Evaluate each ``(predictions, out, what)`` with the benchmark-exact evaluator on the test split
    (and ``extra_routes`` beside the benchmark's routes)."""
    from nnunet_glacier.evaluation.evaluate import evaluate_predictions
    from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

    for index, (predictions, out, what) in enumerate(folders, 1):
        print(f"evaluate [{index}/{len(folders)}] {what}", flush=True)
        evaluate_predictions(predictions, budget.data, split=TEST_SPLIT, out=out, pixel_size=budget.pixel_size,
                             settings=PostprocessSettings(), extra_routes=extra_routes, workers=processes,
                             progress=False)


# --- results ---------------------------------------------------------------------------------------------------

def read_per_image(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{route: {stem: row}}`` of an evaluation's per_image.csv; per row the MDE in px and its distance count."""
    from nnunet_glacier.utilities.csv_tables import read_csv

    columns = ("stem", "route", "n_pred_px", "n_true_px", "no_front", "mde_m", "pixel_size_m", "iou_macro")
    routes: dict[str, dict[str, dict[str, float]]] = {}
    for row in read_csv(path, columns):
        n = int(row["n_pred_px"]) + int(row["n_true_px"])
        has_front = row["no_front"] == "0"
        mde_px = float(row["mde_m"]) / float(row["pixel_size_m"]) if has_front else math.nan
        routes.setdefault(row["route"], {})[row["stem"]] = {
            "mde_px": mde_px, "n": n if has_front else 0, "pixel_size_m": float(row["pixel_size_m"]),
            "iou": float(row["iou_macro"]) if row["iou_macro"] else math.nan}
    return routes


def seed_metrics(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """Pooled MDE (px and m), mean and median per image (px), no-front count and mean zone IoU of one route."""
    with_front = [r for r in rows.values() if r["n"] > 0]
    n = sum(r["n"] for r in with_front)
    per_image = np.array([r["mde_px"] for r in with_front])
    ious = [r["iou"] for r in rows.values() if not math.isnan(r["iou"])]
    return {
        "mde_pooled_px": sum(r["mde_px"] * r["n"] for r in with_front) / n if n else math.nan,
        "mde_pooled_m": sum(r["mde_px"] * r["n"] * r["pixel_size_m"] for r in with_front) / n if n else math.nan,
        "mde_mean_px": float(per_image.mean()) if per_image.size else math.nan,
        "mde_median_px": float(np.median(per_image)) if per_image.size else math.nan,
        "no_front": len(rows) - len(with_front),
        "n_images": len(rows),
        "iou_macro": float(np.mean(ious)) if ious else math.nan,
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of the defined values."""
    defined = [v for v in values if not math.isnan(v)]
    return {"values": [None if math.isnan(v) else v for v in values],
            "mean": float(np.mean(defined)) if defined else None,
            "std": float(np.std(defined, ddof=1)) if len(defined) > 1 else None}


def seed_mean_mde(per_seed: Sequence[dict[str, dict[str, float]]], metres: bool = False) -> dict[str, float]:
    """Per image, its MDE (px, or m) averaged over the seeds where it has a front (never-front images left out)."""
    stems = sorted({stem for rows in per_seed for stem in rows})
    means = {}
    for stem in stems:
        values = [rows[stem]["mde_px"] * (rows[stem]["pixel_size_m"] if metres else 1.0)
                  for rows in per_seed if stem in rows and rows[stem]["n"] > 0]
        if values:
            means[stem] = float(np.mean(values))
    return means


def _compare(results: dict[str, Any], per_image: dict[str, dict[str, float]]) -> None:
    """Add each row's ratios of pooled MDE to stock (exact route; best route) and its paired tests."""
    from nnunet_glacier.evaluation.compare import against_baseline, paired_wilcoxon

    pooled = {key: e["mde_pooled_px"]["mean"] if isinstance(e["mde_pooled_px"], dict) else e["mde_pooled_px"]
              for key, e in results.items()}
    stock = {key: value for key, value in pooled.items()
             if results[key]["role"] == "baseline" and value is not None and math.isfinite(value)}
    best_stock = min(stock, key=stock.get) if stock else None
    exact = against_baseline(pooled, per_image, BASELINE) if BASELINE in results else {}
    best = against_baseline(pooled, per_image, best_stock) if best_stock else {}
    for key, entry in results.items():
        entry["ratio_to_stock_fused"] = exact.get(key, {}).get("ratio")
        entry["vs_stock_fused"] = exact.get(key, {}).get("test")
        entry["best_stock"] = best_stock
        entry["ratio_to_best_stock"] = best.get(key, {}).get("ratio")
        entry["vs_best_stock"] = best.get(key, {}).get("test")
        entry["vs_stl_zone"] = paired_wilcoxon(per_image[key], per_image[STL_ZONE]) \
            if STL_ZONE in per_image and entry["run"] in MULTI_TASK_OR_FUSED else None


def collect(paths: Paths, runs: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Every finished (run, route): metrics per seed, their spread, ratios and paired tests; and the seed ensembles."""
    results: dict[str, Any] = {}
    per_image: dict[str, dict[str, float]] = {}
    per_image_m: dict[str, dict[str, float]] = {}
    ensembles: dict[str, Any] = {}
    ensemble_per_image: dict[str, dict[str, float]] = {}
    for run in runs:
        by_route: dict[str, list[dict[str, dict[str, float]]]] = {}
        used_seeds = []
        for seed in seeds:
            csv_path = paths.evaluation(seed, run) / "per_image.csv"
            if not paths.record(seed, run).is_file() or not csv_path.is_file():
                continue
            used_seeds.append(seed)
            for route, rows in read_per_image(csv_path).items():
                by_route.setdefault(route, []).append(rows)
        for route, per_seed in by_route.items():
            key = f"{run}:{route}"
            metrics = [seed_metrics(rows) for rows in per_seed]
            results[key] = {"run": run, "route": route, "role": get_experiment(run).role, "seeds": used_seeds,
                            **{name: spread([m[name] for m in metrics]) for name in metrics[0]}}
            per_image[key] = seed_mean_mde(per_seed)
            per_image_m[key] = seed_mean_mde(per_seed, metres=True)
        ensemble_csv = paths.ensemble_evaluation(run) / "per_image.csv"
        if paths.ensemble_predictions(run).is_dir() and ensemble_csv.is_file() and len(used_seeds) == len(seeds):
            for route, rows in read_per_image(ensemble_csv).items():
                key = f"{run}:{route}"
                ensembles[key] = {"run": run, "route": route, "role": get_experiment(run).role, "seeds": used_seeds,
                                  **seed_metrics(rows)}
                ensemble_per_image[key] = {stem: r["mde_px"] for stem, r in rows.items() if r["n"] > 0}
    _compare(results, per_image)
    _compare(ensembles, ensemble_per_image)
    return {"results": results, "per_image_mde_px": per_image, "per_image_mde_m": per_image_m, "ensembles": ensembles,
            "ensemble_per_image_mde_px": ensemble_per_image}


# --- reporting -------------------------------------------------------------------------------------------------

def _pm(entry: dict[str, Any], digits: int) -> str:
    if entry["mean"] is None or math.isnan(entry["mean"]):
        return "–"
    text = f"{entry['mean']:.{digits}f}"
    return text + (f" ± {entry['std']:.{digits}f}" if entry["std"] is not None else "")


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _test(test: dict[str, Any] | None) -> str:
    if not test or test["p"] is None:
        return "–"
    return f"{test['p']:.3g} ({test['a_lower']}/{test['n']})"


TABLE_HEADER = ("| run | route | seeds | pooled MDE (px) | pooled MDE (m) | mean per image (px) | median (px) "
                "| no front | zone IoU | ratio to stock fused | ratio to best stock | p vs stock fused "
                "| p vs best stock | p vs STL zone |")


def _cell(value: dict[str, Any] | float | None, digits: int) -> str:
    """A seed spread as mean ± std, a single number as it is, undefined as a dash."""
    return _pm(value, digits) if isinstance(value, dict) else _num(value, digits)


def table_markdown(results: dict[str, Any]) -> list[str]:
    """The results table (Markdown), one row per run and route: over seeds (mean ± std) or of seed ensembles."""
    lines = [TABLE_HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in results.values():
        n_images = e["n_images"]["mean"] if isinstance(e["n_images"], dict) else e["n_images"]
        lines.append(f"| {e['run']} | {e['route']} | {len(e['seeds'])} | {_cell(e['mde_pooled_px'], 1)} "
                     f"| {_cell(e['mde_pooled_m'], 0)} | {_cell(e['mde_mean_px'], 1)} "
                     f"| {_cell(e['mde_median_px'], 1)} | {_cell(e['no_front'], 1)} of {int(n_images)} "
                     f"| {_cell(e['iou_macro'], 3)} | {_num(e['ratio_to_stock_fused'], 2)} "
                     f"| {_num(e['ratio_to_best_stock'], 2)} | {_test(e['vs_stock_fused'])} "
                     f"| {_test(e['vs_best_stock'])} | {_test(e['vs_stl_zone'])} |")
    return lines


def describe_budget(budget: Budget, seeds: Sequence[int]) -> str:
    pixel = "the names' resolutions" if budget.pixel_size is None else f"a nominal {budget.pixel_size:g} m"
    return (f"budget: {budget.epochs} epochs x {budget.iterations} iterations = {budget.total_iterations} "
            f"iterations of batch {budget.batch}, {budget.patch} px patches; U-Net {budget.stages} stages, "
            f"{budget.base_features}..{budget.max_features} features; fold {budget.fold}; test-time mirroring "
            f"{'on' if budget.mirroring else 'off'}; seeds {', '.join(map(str, seeds))}; pixel size {pixel}; "
            f"data {budget.data}")


def git_commit() -> tuple[str | None, bool]:
    """The repository's commit and whether tracked files differ from it."""
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return head.stdout.strip() or None, bool(dirty.stdout.strip())


def machine() -> dict[str, Any]:
    """Where the benchmark ran and with which versions."""
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() \
        else platform.processor()
    commit, dirty = git_commit()
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {p: version(p) for p in ("nnunetv2", "torch", "numpy", "scipy",
                                                 "dynamic_network_architectures", "batchgeneratorsv2")},
            "git_commit": commit, "git_dirty": dirty}


def write_results(paths: Paths, budget: Budget, seeds: Sequence[int], runs: Sequence[str], collected: dict,
                  wall_s: float) -> None:
    from nnunet_glacier.evaluation import plots

    records = [json.loads(paths.record(s, r).read_text()) for s in seeds for r in runs
               if paths.record(s, r).is_file()]
    info = machine()
    train_s = sum(r["timings"]["train_s"] + r["timings"]["predict_s"] for r in records)
    cpu_s = sum(r["timings"]["train_cpu_s"] + r["timings"]["predict_cpu_s"] for r in records)
    commits = sorted({str(r.get("git_commit")) for r in records})
    lines = ["# Accuracy against stock nnU-Net", "", describe_budget(budget, seeds), "",
             f"Machine: {info['cpu']}, {info['cpu_count']} cores; nnunetv2 {info['versions']['nnunetv2']}, torch "
             f"{info['versions']['torch']}; written {dt.datetime.now():%Y-%m-%d %H:%M}; commit "
             f"{info['git_commit']}{' (modified)' if info['git_dirty'] else ''}; runs trained at "
             f"{', '.join(commits)}. {len(records)} runs: {train_s / 3600:.1f} h of worker wall time "
             f"(train + predict, summed over workers), {cpu_s / 3600:.1f} CPU hours.", "",
             "MDE: pooled over test images (Eq. 1), mean and median of per-image MDEs; mean ± std over seeds. "
             "p: two-sided Wilcoxon signed-rank test over test images of the per-image MDE (px, averaged over "
             "seeds), in brackets the images where the row is better / images paired.", "",
             *table_markdown(collected["results"]), ""]
    if collected["ensembles"]:
        lines += ["Seed ensembles (per task the mean of the seeds' class probabilities, then the same evaluation; "
                  "p over test images of the ensembles' per-image MDEs):", "",
                  *table_markdown(collected["ensembles"]), ""]
    lines += ["![per-image MDE, averaged over seeds](mde_boxplot.png)", ""]
    series = {key: {"test": [v for v in mdes.values() if v > 0]} for key, mdes in collected["per_image_mde_m"].items()}
    if any(s["test"] for s in series.values()):
        plots.plot_mde_boxplot(series, paths.work / "mde_boxplot", by="split", baselines={})
    write_text(paths.work / "results.md", "\n".join(lines))
    write_json(paths.work / "results.json", {
        "budget": dataclasses.asdict(budget), "seeds": list(seeds), "runs": list(runs), "machine": machine(),
        "wall_s_this_invocation": wall_s, "run_records": records,
        "written": dt.datetime.now().isoformat(timespec="seconds"), **collected})


# --- command line ----------------------------------------------------------------------------------------------

def add_budget_arguments(parser: argparse.ArgumentParser, prefix: str = "", fold: bool = True) -> None:
    """The options that make a :class:`Budget` (data and mirroring aside), shared with the benchmarks that
    train at this budget (``bench_fast.py``, ``bench_detect.py --train-caffe``).

    ``prefix`` goes before each option's name (``--train-epochs``), not into its destination (``epochs``);
    ``fold``: offer ``--fold`` (else the budget's fold is 0).
    """
    def option(name: str, **kwargs: Any) -> None:
        parser.add_argument(f"--{prefix}{name}", dest=name.replace("-", "_"), **kwargs)

    option("epochs", type=int, default=30, help="epochs (default: 30)")
    option("iterations", type=int, default=40, help="training iterations per epoch (default: 40)")
    option("val-iterations", type=int, default=5, help="validation iterations per epoch (logging only; default: 5)")
    option("batch", type=int, default=4, help="batch size (default: 4)")
    option("patch", type=int, default=128, help="square patch edge in px (default: 128)")
    option("stages", type=int, default=5, help="U-Net stages, at most (default: 5)")
    option("features", type=int, nargs=2, default=[16, 256], metavar=("FIRST", "MAX"),
           help="features of the first stage and the cap (default: 16 256)")
    if fold:
        option("fold", default="0", choices=[*map(str, range(5)), "all"],
               help="fold of nnU-Net's split to train (default: 0)")
    option("pixel-size", default=str(NOMINAL_PIXEL_SIZE_M), metavar="METRES|names",
           help=f"metres per pixel for every scene, or 'names' (default: {NOMINAL_PIXEL_SIZE_M:g})")


def budget_from_args(args: argparse.Namespace, data: Path, mirroring: bool) -> Budget:
    """The :class:`Budget` of :func:`add_budget_arguments`' options, for the CaFFe root ``data``."""
    return Budget(epochs=args.epochs, iterations=args.iterations, val_iterations=args.val_iterations,
                  batch=args.batch, patch=args.patch, stages=args.stages, base_features=args.features[0],
                  max_features=args.features[1], fold=getattr(args, "fold", "0"), mirroring=mirroring,
                  pixel_size=None if args.pixel_size == "names" else float(args.pixel_size),
                  data=str(Path(data).resolve()))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"CaFFe root (default: {DEFAULT_DATA})")
    parser.add_argument("--work", type=Path, default=Path("bench_accuracy_work"),
                        help="work directory (default: ./bench_accuracy_work)")
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), choices=DEFAULT_RUNS, metavar="RUN",
                        help=f"runs (default: all: {' '.join(DEFAULT_RUNS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    add_budget_arguments(parser)
    parser.add_argument("--no-mirroring", action="store_true", help="predict without test-time mirroring")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / jobs, at least 1)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: evaluate the finished runs and rebuild the table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    budget = budget_from_args(args, args.data, mirroring=not args.no_mirroring)
    paths = Paths(args.work.resolve())
    runs = [r for r in DEFAULT_RUNS if r in args.runs]
    print(describe_budget(budget, args.seeds), flush=True)
    check_budget(paths, budget)
    if not args.report_only:
        prepare(paths, budget, runs, processes=os.cpu_count() or 1)
    jobs = [Job(run, seed, budget, paths, args.device, args.threads or max(1, (os.cpu_count() or 1) // args.jobs))
            for seed in args.seeds for run in runs]
    if not args.report_only:
        run_all(jobs, args.jobs)
    evaluate_all(paths, budget, runs, args.seeds, os.cpu_count() or 1)
    collected = collect(paths, runs, args.seeds)
    if not collected["results"]:
        print("no finished run yet", file=sys.stderr)
        return 1
    write_results(paths, budget, args.seeds, runs, collected, time.perf_counter() - started)
    print("\n" + "\n".join(table_markdown(collected["results"])))
    if collected["ensembles"]:
        print("\nseed ensembles:\n" + "\n".join(table_markdown(collected["ensembles"])))
    print(f"\nwrote {paths.work / 'results.md'}, results.json and mde_boxplot.png")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
