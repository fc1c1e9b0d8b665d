"""From a CaFFe root to the paper's tables: every step of the method, resumable.

Steps, per experiment (``STEPS``)::

    export    CaFFe root -> nnU-Net raw dataset              (nnunet.export)
    plan      nnU-Net planning + preprocessing + plans edit  (nnunet.plans)
    train     the folds, resuming interrupted ones           (nnunet.training)
    predict   test split per fold and the fold ensemble      (nnunet.predict)
    evaluate  each fold and the ensemble, every route         (evaluate)
    report    Markdown report with tables, t-tests and plots (report)

The work directory is laid out as :mod:`nnunet_glacier.pipeline.layout` describes.

Every step records what its outputs were made from
(:func:`~nnunet_glacier.utilities.provenance.made_from`, in ``<work>/made_from/``) and is
skipped only while that record is current; otherwise it is redone. Each
record holds what its step read from the steps before it, so a change
anywhere redoes everything made from it, and a re-run gives what a fresh
run gives:

=========  ==================================================================  ===========================
step       made from                                                           record
=========  ==================================================================  ===========================
export     train images and labels, test images; ``dataset.json`` as exported  per dataset
           (label settings, pixel sizes, source, temporal context)
plan       the raw ``imagesTr``/``labelsTr`` and ``dataset.json`` without its   per dataset
           ``caffe`` block (what nnU-Net reads: pixel sizes are not in it)
train      the plan record's content, the plans (``2d`` and ours), trainer,    per experiment and fold
           fold, seed, epochs and iterations run
predict    the checkpoints' stamps, sliding-window settings, test images      per experiment
           (and the acquisitions of each scene's temporal context)
evaluate   the member's prediction PNGs, the test images, labels, bounding     per experiment and member
           boxes, the raw ``dataset.json`` (pixel sizes), post-processing
report     every evaluation's ``summary.json`` and ``per_image.csv``, the      once
           CaFFe files, the experiments and folds
=========  ==================================================================  ===========================

So a new pixel size re-exports (``dataset.json`` records it) and
re-evaluates, but neither re-plans nor retrains: the images and labels
nnU-Net reads are unchanged. A temporal context that changes (its setting,
an acquisition added) re-exports, and so re-plans and retrains: the channel
files nnU-Net reads change. A fold trained again by hand gets new
checkpoints and so new predictions and evaluations.

Export, plan, evaluate and report write their record last, once their
outputs are complete; export, evaluate and report replace their folder as a
whole (:func:`~nnunet_glacier.utilities.atomic.atomic_folder`). Train and predict take
long and resume: they write their record *first*, so the partial outputs of an
interrupted run are known to be made from the same inputs and are completed
rather than redone; a changed record removes them first. A fold folder that
has no record was trained outside ``reproduce`` (``nnunet-glacier train``,
``nnUNetv2_train``) and is kept as it is.

Each piece of work is done under a lock on its record
(:func:`~nnunet_glacier.utilities.locks.exclusive`): two runs on one work directory
share the work — the second waits, then finds the piece current and skips it.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnunet_glacier.data import caffe, temporal
from nnunet_glacier.data.experiments import Experiment
from nnunet_glacier.errors import InputError
from nnunet_glacier.nnunet.folds import Fold, fold_member
from nnunet_glacier.nnunet.workspace import Workspace
from nnunet_glacier.pipeline.layout import RunLayout, members
from nnunet_glacier.utilities.atomic import atomic_folder, remove_stale_temporaries, write_json
from nnunet_glacier.utilities.locks import exclusive
from nnunet_glacier.utilities.provenance import content_digest, is_current, made_from, read_record

if TYPE_CHECKING:
    from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

STEPS = ("export", "plan", "train", "predict", "evaluate", "report")
TEST_SPLIT = "test"


@dataclass
class Reproduction:
    """What to reproduce and where (the paths of :mod:`nnunet_glacier.pipeline.layout`)."""

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
    seed: int = 0  # seeds every fold's training (Python, NumPy, torch)

    @property
    def workspace(self) -> Workspace:
        return self.layout.workspace

    def folds_of(self, experiment: Experiment) -> list[Fold]:
        return list(self.folds) if self.folds is not None else list(experiment.folds)


# --- made-from records -----------------------------------------------------------------------------------------

def _say(what: str, state: str) -> None:
    print(f"== {what}: {state}", flush=True)


def _write_record(path: Path, record: Mapping[str, Any]) -> None:
    remove_stale_temporaries(path.parent)
    write_json(path, record)


def _redo_unless_current(record: Path, settings: Mapping[str, Any], inputs: Sequence[Path], what: str,
                         work: Callable[[], object], complete: Callable[[], bool]) -> None:
    """Do ``work`` unless ``record`` is current and ``complete()`` holds; then write the record (last).

    The inputs are stamped before the work starts. Call under the record's lock.
    """
    if is_current(read_record(record), settings, inputs) and complete():
        _say(what, "up to date")
        return
    _say(what, "making")
    stamped = made_from(settings, inputs)
    work()
    _write_record(record, stamped)


def _files(samples: Iterable[caffe.Sample], kinds: Sequence[str]) -> list[Path]:
    """The files of ``samples`` of the given kinds (``image``, ``zones``, ``front``, ``bbox``) that exist."""
    return [path for sample in samples for path in (getattr(sample, kind) for kind in kinds) if path is not None]


def _data(run: Reproduction) -> Path:
    """``run.data``, which every step reads (only run_demo starts without it, and sets it before the steps)."""
    assert run.data is not None, "Reproduction.data is unset"
    return run.data


def _test_samples(run: Reproduction) -> list[caffe.Sample]:
    return caffe.discover(_data(run), (TEST_SPLIT,))


# --- the steps -------------------------------------------------------------------------------------------------

def export_step(run: Reproduction, experiment: Experiment) -> None:
    """Export unless the raw dataset was exported from the current files and settings."""
    from nnunet_glacier.nnunet.export import (
        dataset_folder,
        dataset_json,
        export_dataset,
    )

    data = _data(run)
    samples = caffe.discover(data, pixel_size=run.pixel_size)
    settings = {"dataset_json": dataset_json(experiment, samples, Path(data).resolve())}
    inputs = [*_files((s for s in samples if s.split == "train"), ("image", "zones", "front")),
              *_files((s for s in samples if s.split != "train"), ("image",))]
    record = run.layout.record("export", experiment.dataset)
    folder = dataset_folder(run.workspace.raw, experiment)
    with exclusive(record):
        _redo_unless_current(
            record, settings, inputs, f"export {experiment.dataset}",
            lambda: export_dataset(data, experiment, run.workspace.raw, pixel_size=run.pixel_size,
                                   num_workers=run.processes, progress=run.progress),
            lambda: (folder / "dataset.json").is_file())


def plan_step(run: Reproduction, experiment: Experiment) -> None:
    """Plan and preprocess unless done for the current raw dataset; (re)write our plans configuration."""
    from nnunet_glacier.nnunet.plans import (
        is_preprocessed,
        plan_and_preprocess,
        write_configuration,
    )

    workspace = run.workspace
    raw = workspace.raw / experiment.dataset
    description = raw / "dataset.json"
    if not description.is_file():
        raise InputError(description, "no exported raw dataset: run the export step first")
    read_by_nnunet = {k: v for k, v in json.loads(description.read_text()).items() if k != "caffe"}
    inputs = [*sorted((raw / "imagesTr").glob("*.png")), *sorted((raw / "labelsTr").glob("*.png"))]
    record = run.layout.record("plan", experiment.dataset)
    with exclusive(record):
        _redo_unless_current(record, {"dataset_json": read_by_nnunet}, inputs, f"plan {experiment.dataset}",
                             lambda: plan_and_preprocess(experiment, workspace, num_processes=run.processes),
                             lambda: is_preprocessed(workspace, experiment))
        write_configuration(experiment, workspace)


def training_settings(run: Reproduction, experiment: Experiment, fold: Fold) -> dict[str, Any]:
    """What a fold is trained from: the plan record's content, the plans, trainer, fold, seed and schedule run."""
    from nnunet_glacier.nnunet.plans import trained_configuration

    schedule = experiment.training
    return {"plan": content_digest(read_record(run.layout.record("plan", experiment.dataset))),
            "plans": trained_configuration(experiment, run.workspace), "trainer": experiment.trainer,
            "fold": str(fold), "seed": run.seed,
            "epochs": run.max_epochs if run.max_epochs is not None else schedule.epochs,
            "iterations_per_epoch": run.iterations if run.iterations is not None else schedule.iterations_per_epoch}


def train_step(run: Reproduction, experiment: Experiment) -> None:
    """Train every fold not trained from the current settings; a fold trained from others is removed first."""
    from nnunet_glacier.nnunet.training import is_trained, model_folder, train_fold

    for fold in run.folds_of(experiment):
        what = f"train {experiment.name} {fold_member(fold)}"
        settings = training_settings(run, experiment, fold)
        record = run.layout.record("train", experiment.name, fold_member(fold))
        fold_dir = model_folder(run.workspace, experiment) / fold_member(fold)
        with exclusive(record):
            previous = read_record(record)
            if not is_current(previous, settings, ()):
                if previous is not None:
                    shutil.rmtree(fold_dir, ignore_errors=True)
                _write_record(record, made_from(settings, ()))
            if is_trained(run.workspace, experiment, fold):
                _say(what, "up to date")
                continue
            _say(what, "training")
            train_fold(experiment, fold, run.workspace, device=run.device, max_epochs=run.max_epochs,
                       iterations=run.iterations, seed=run.seed)


def predict_step(run: Reproduction, experiment: Experiment) -> None:
    """Predict the test split with every fold and their ensemble (one pass per scene).

    Predictions made with other checkpoints or settings are removed first;
    those of an interrupted run with the same ones are completed.
    """
    from nnunet_glacier.nnunet.predict import GlacierPredictor, predict_images
    from nnunet_glacier.nnunet.training import model_folder

    folds = run.folds_of(experiment)
    samples = _test_samples(run)
    images = _files(samples, ("image",))
    predictor = GlacierPredictor(model_folder(run.workspace, experiment), folds, device=run.device,
                                 mirroring=run.mirroring)
    settings = {"predictor": predictor.made_from()}
    if predictor.temporal.enabled:  # each scene's context, from the test images as in the export
        settings["temporal"] = temporal.export_record(predictor.temporal,
                                                      temporal.contexts_by_split(samples, predictor.temporal))
    out = run.layout.predictions(experiment.name)
    record = run.layout.record("predict", experiment.name)
    with exclusive(record):
        if not is_current(read_record(record), settings, images):
            shutil.rmtree(out, ignore_errors=True)
            _write_record(record, made_from(settings, images))
        for folder in (out, *(out / fold_member(k) for k in folds)):
            remove_stale_temporaries(folder)
        report = predict_images(predictor, images, out, per_fold=True, progress=run.progress)
        _say(f"predict {experiment.name}", f"{len(report.written)} scene(s) predicted, "
                                           f"{len(report.skipped)} up to date")
    if report.failed:
        path, problem = report.failed[0]
        raise InputError(path, f"prediction failed: {problem} ({len(report.failed)} scene(s) failed)")


def evaluate_step(run: Reproduction, experiment: Experiment) -> None:
    """Evaluate the ensemble and every fold, each unless evaluated from its current predictions and labels."""
    from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

    postprocessing = PostprocessSettings(min_length_m=experiment.evaluation.front_min_length_m,
                                         fused_dilation_px=experiment.evaluation.fused_glacier_dilation_px)
    dataset = run.workspace.raw / experiment.dataset
    truth = [*_files(_test_samples(run), ("image", "zones", "front", "bbox")),
             *[p for p in (dataset / "dataset.json",) if p.is_file()]]
    for member in members(run.folds_of(experiment)):
        _evaluate_member(run, experiment, member, postprocessing, truth)


def _evaluate_member(run: Reproduction, experiment: Experiment, member: str, postprocessing: PostprocessSettings,
                     truth: Sequence[Path]) -> None:
    """Evaluate one member's predictions into a new folder unless current; ``truth``: the files besides them
    that the evaluation reads (test images, labels, bounding boxes, the raw dataset.json)."""
    from nnunet_glacier.evaluation.evaluate import evaluate_predictions

    predictions = run.layout.predictions(experiment.name, member)
    out = run.layout.evaluation(experiment.name, member)
    record = run.layout.record("evaluate", experiment.name, member)
    settings = {"postprocessing": asdict(postprocessing), "pixel_size_m": run.pixel_size, "split": TEST_SPLIT}

    def evaluate_into_new_folder() -> None:
        remove_stale_temporaries(out.parent)
        with atomic_folder(out) as new:
            evaluate_predictions(predictions, _data(run), split=TEST_SPLIT, out=new, pixel_size=run.pixel_size,
                                 dataset=run.workspace.raw / experiment.dataset, settings=postprocessing,
                                 workers=run.processes, progress=run.progress)

    with exclusive(record):
        _redo_unless_current(record, settings, [*sorted(predictions.glob("*.png")), *truth],
                             f"evaluate {experiment.name} {member}", evaluate_into_new_folder,
                             lambda: (out / "summary.json").is_file())


def report_step(run: Reproduction) -> Path:
    """Write the Markdown report of every experiment evaluated so far, unless current; returns its path."""
    from nnunet_glacier.pipeline.report import write_report

    layout = run.layout
    folds = {e.name: run.folds_of(e) for e in run.experiments}
    evaluations = [path for e in run.experiments for member in members(folds[e.name])
                   for path in (layout.evaluation(e.name, member) / name for name in ("summary.json", "per_image.csv"))
                   if path.is_file()]
    data_files = _files(caffe.discover(_data(run)), ("image", "zones", "front", "bbox"))
    settings = {"experiments": [e.name for e in run.experiments], "profile": run.experiments[0].profile,
                "folds": {name: [str(k) for k in f] for name, f in folds.items()}, "data": str(run.data),
                "work": str(layout.work)}
    record = layout.record("report")
    report = layout.report_dir / "report.md"

    def report_into_new_folder() -> None:
        remove_stale_temporaries(layout.report_dir.parent)
        with atomic_folder(layout.report_dir) as new:
            write_report(layout, run.experiments, folds, _data(run), out=new)

    with exclusive(record):
        _redo_unless_current(record, settings, [*evaluations, *data_files], "report", report_into_new_folder,
                             report.is_file)
    return report


def run_demo(run: Reproduction, *, n_train: int = 24, n_test: int = 6, size: int = 256, seed: int = 1) -> Path:
    """The demo: synthetic scenes unless ``run.data`` is set, then every step; returns the report path."""
    from nnunet_glacier.data.synthetic import generate_caffe

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
            per_experiment[step](run, experiment)
