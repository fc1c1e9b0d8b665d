"""From a CaFFe root to the paper's tables: every step of the method, resumable.

Steps, per experiment (``STEPS``)::

    export    CaFFe root -> nnU-Net raw dataset              (nnunet.export)
    plan      nnU-Net planning + preprocessing + plans edit  (nnunet.plans)
    train     the folds, resuming interrupted ones           (nnunet.training)
    predict   test split per fold and the fold ensemble      (nnunet.predict)
    evaluate  each fold and the ensemble, every route         (evaluate)
    report    Markdown report with tables, t-tests and plots (report)

The work directory is laid out as :mod:`nnunet_glacier.layout` describes.

Every step skips work that is complete (a re-run only finishes what an
interrupted run left), so the same command resumes a reproduction.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_glacier import caffe
from nnunet_glacier.errors import InputError
from nnunet_glacier.experiments import Experiment
from nnunet_glacier.layout import Fold, RunLayout, members
from nnunet_glacier.workspace import Workspace


STEPS = ("export", "plan", "train", "predict", "evaluate", "report")
TEST_SPLIT = "test"


@dataclass
class Reproduction:
    """What to reproduce and where (the paths of :mod:`nnunet_glacier.layout`)."""

    data: Path | None  # a CaFFe root; None only before run_demo writes synthetic scenes
    layout: RunLayout
    experiments: list[Experiment]
    folds: list[Fold] | None = None  # None: each experiment's configured folds
    device: str = "auto"
    pixel_size: float | None = None
    processes: int = field(default_factory=lambda: max(1, min(8, os.cpu_count() or 1)))
    mirroring: bool = True
    progress: bool = True
    max_epochs: int | None = None  # overrides of the profile's schedule, for short runs
    iterations: int | None = None

    @property
    def workspace(self) -> Workspace:
        return self.layout.workspace

    def folds_of(self, experiment: Experiment) -> list[Fold]:
        return list(self.folds) if self.folds is not None else list(experiment.folds)


def export_step(run: Reproduction, experiment: Experiment) -> None:
    """Export unless the raw dataset already holds exactly this export."""
    from nnunet_glacier.nnunet.export import dataset_folder, dataset_json, export_dataset

    existing = dataset_folder(run.workspace.raw, experiment) / "dataset.json"
    samples = caffe.discover(run.data, pixel_size=run.pixel_size)
    if existing.is_file() and json.loads(existing.read_text()) == json.loads(json.dumps(
            dataset_json(experiment, samples, Path(run.data).resolve()))):
        return
    export_dataset(run.data, experiment, run.workspace.raw, pixel_size=run.pixel_size,
                   num_workers=run.processes, progress=run.progress)


def plan_step(run: Reproduction, experiment: Experiment) -> None:
    """Plan and preprocess unless done for the current export; (re)write our plans configuration."""
    from nnunet_glacier.nnunet.plans import is_preprocessed, plan_and_preprocess, plans_file, write_configuration

    workspace = run.workspace
    raw_json = workspace.raw / experiment.dataset / "dataset.json"
    plans = plans_file(workspace, experiment)
    stale = plans.is_file() and raw_json.stat().st_mtime > plans.stat().st_mtime
    if stale or not is_preprocessed(workspace, experiment):
        plan_and_preprocess(experiment, workspace, num_processes=run.processes)
    write_configuration(experiment, workspace)


def train_step(run: Reproduction, experiment: Experiment) -> None:
    from nnunet_glacier.nnunet.training import train_fold

    for fold in run.folds_of(experiment):
        train_fold(experiment, fold, run.workspace, device=run.device, max_epochs=run.max_epochs,
                   iterations=run.iterations)


def predict_step(run: Reproduction, experiment: Experiment) -> None:
    """Predict the test split with every fold and their ensemble (one pass per scene)."""
    from nnunet_glacier.nnunet.predict import GlacierPredictor, predict_images
    from nnunet_glacier.nnunet.training import model_folder

    images = [s.image for s in caffe.discover(run.data, (TEST_SPLIT,))]
    predictor = GlacierPredictor(model_folder(run.workspace, experiment), run.folds_of(experiment), device=run.device,
                                 mirroring=run.mirroring)
    report = predict_images(predictor, images, run.layout.predictions(experiment.name), per_fold=True,
                            progress=run.progress)
    if report.failed:
        path, problem = report.failed[0]
        raise InputError(path, f"prediction failed: {problem} ({len(report.failed)} scene(s) failed)")


def evaluate_step(run: Reproduction, experiment: Experiment) -> None:
    """Evaluate the ensemble and every fold; a member whose summary is newer than its predictions is skipped."""
    from nnunet_glacier.evaluate import evaluate_predictions
    from nnunet_glacier.postprocess import PostprocessSettings

    settings = PostprocessSettings(min_length_m=experiment.evaluation.front_min_length_m,
                                   fused_dilation_px=experiment.evaluation.fused_glacier_dilation_px)
    for member in members(run.folds_of(experiment)):
        predictions = run.layout.predictions(experiment.name, member)
        out = run.layout.evaluation(experiment.name, member)
        newest = max((p.stat().st_mtime for p in predictions.glob("*.png")), default=0.0)
        summary = out / "summary.json"
        if summary.is_file() and summary.stat().st_mtime >= newest:
            continue
        evaluate_predictions(predictions, run.data, split=TEST_SPLIT, out=out, pixel_size=run.pixel_size,
                             dataset=run.workspace.raw / experiment.dataset,
                             settings=settings, workers=run.processes, progress=run.progress)


def report_step(run: Reproduction) -> Path:
    """Write the Markdown report of every experiment evaluated so far; returns its path."""
    from nnunet_glacier.report import write_report

    return write_report(run.layout, run.experiments, {e.name: run.folds_of(e) for e in run.experiments}, run.data)


def run_demo(run: Reproduction, *, n_train: int = 24, n_test: int = 6, size: int = 256, seed: int = 1) -> Path:
    """The demo: synthetic scenes unless ``run.data`` is set, then every step; returns the report path."""
    from nnunet_glacier.synthetic import generate_caffe

    if run.data is None:
        run.data = run.layout.synthetic_data
        if not (run.data / "sar_images").is_dir():
            generate_caffe(run.data, n_train=n_train, n_test=n_test, size=(size, size), seed=seed)
    run_reproduction(run)
    return run.layout.report_dir / "report.md"


def run_reproduction(run: Reproduction, steps: Sequence[str] = STEPS) -> None:
    """Run ``steps`` (in the canonical order) for every experiment, then the report."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    run.workspace.activate()
    per_experiment = {"export": export_step, "plan": plan_step, "train": train_step, "predict": predict_step,
                      "evaluate": evaluate_step}
    for step in STEPS:
        if step not in steps:
            continue
        if step == "report":
            report_step(run)
            continue
        for experiment in run.experiments:
            print(f"== {step}: {experiment.name}")
            per_experiment[step](run, experiment)
