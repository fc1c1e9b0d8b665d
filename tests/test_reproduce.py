"""``reproduce`` redoes exactly what a change makes stale, and a re-run gives what a fresh run gives.

One module-scoped reproduction (tiny profile, fused experiment, fold 0,
seed 0, one epoch of one iteration: what is asserted is which steps ran and
that outputs agree, not what the model learnt) is kept as a snapshot; each test restores it to the same paths
(so that paths recorded in the outputs agree), changes one thing — a label,
the pixel size, a fold, the seed, mirroring — and re-runs. Which steps ran is
read from the ``== <step>: <state>`` lines the steps print, and from the
files' modification times. Killed and concurrent runs are real subprocesses (``nnunet-glacier``'s ``main``
in the tests' runtime, tests/nnunet_runtime.py: one torch thread, as the in-process runs they are compared with).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

from nnunet_glacier.cli import main
from nnunet_glacier.data.caffe import discover
from nnunet_glacier.data.experiments import get_experiment
from nnunet_glacier.data.synthetic import generate_caffe
from nnunet_glacier.evaluation.evaluate import evaluate_predictions
from nnunet_glacier.nnunet.predict import GlacierPredictor, predict_images
from nnunet_glacier.nnunet.training import model_folder, train_fold
from nnunet_glacier.pipeline.layout import RunLayout
from nnunet_glacier.pipeline.reproduce import Reproduction, run_reproduction
from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

#: Every test here starts from a trained reproduction (the module's snapshot).
pytestmark = pytest.mark.slow

PROFILE = "tiny"
EXPERIMENT = get_experiment("fused", PROFILE)
#: ``nnunet-glacier`` in the tests' runtime (one torch thread, as here: the weights of runs compared are the same).
CLI = [sys.executable, str(Path(__file__).with_name("nnunet_runtime.py"))]
#: Seconds a subprocess may take (the per-test guard of pyproject.toml is 600).
TIMEOUT_S = 480
#: The training schedule of every run here: one epoch of one iteration.
SCHEDULE = {"max_epochs": 1, "iterations": 1}


def reproduction(base: Path, **overrides) -> Reproduction:
    """The test's reproduction of ``base/data`` into ``base/work``: fold 0, CPU, no mirroring, seed 0,
    :data:`SCHEDULE`."""
    settings = {"folds": [0], "device": "cpu", "processes": 1, "progress": False, "mirroring": False, "seed": 0,
                **SCHEDULE}
    return Reproduction(data=base / "data", layout=RunLayout.in_work_dir(base / "work"), experiments=[EXPERIMENT],
                        **(settings | overrides))


def reproduce(base: Path, capsys: pytest.CaptureFixture, **overrides) -> dict[str, str]:
    """Run every step in-process; returns ``{step and piece: state}`` as the steps printed them."""
    capsys.readouterr()
    run_reproduction(reproduction(base, **overrides))
    return step_states(capsys.readouterr().out)


def step_states(output: str) -> dict[str, str]:
    """``{"train fused fold_0": "training", ...}`` from the ``== <what>: <state>`` lines of a run's output."""
    lines = [line.removeprefix("== ") for line in output.splitlines() if line.startswith("== ")]
    return dict(line.split(": ", 1) for line in lines)


def cli_args(base: Path, *extra: str) -> list[str]:
    return ["reproduce", "--data", str(base / "data"), "--work", str(base / "work"), "--profile", PROFILE,
            "--experiments", "fused", "--folds", "0", "--device", "cpu", "--max-epochs", str(SCHEDULE["max_epochs"]),
            "--iterations", str(SCHEDULE["iterations"]), *extra]


EXPORT, PLAN = f"export {EXPERIMENT.dataset}", f"plan {EXPERIMENT.dataset}"
#: What each piece of work prints when a re-run finds it current.
UP_TO_DATE = {EXPORT: "up to date", PLAN: "up to date",
              "train fused fold_0": "up to date", "predict fused": "0 scene(s) predicted, 3 up to date",
              "evaluate fused ensemble": "up to date", "evaluate fused fold_0": "up to date", "report": "up to date"}


def redone(states: dict[str, str]) -> set[str]:
    """The pieces of work a run did (those not up to date)."""
    return {what for what, state in states.items() if state != UP_TO_DATE[what]}


def modification_times(folder: Path) -> dict[str, int]:
    """``{relative path: mtime in ns}`` of the files below ``folder`` (lock files left out)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def contents(folder: Path) -> dict[str, str]:
    """``{relative path: SHA-256}`` of the files below ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def results(work: Path) -> dict[str, object]:
    """What a reproduction produced, for comparing runs: the raw dataset, plans, trained weights, predictions,
    evaluations and the report's text and numbers (not the records, nor files that hold times; the plans as
    JSON: nnU-Net and our plans edit format them differently)."""
    model = model_folder(RunLayout.in_work_dir(work).workspace, EXPERIMENT)
    weights = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    return {"raw": contents(work / "nnUNet_raw"),
            "plans": json.loads((work / "nnUNet_preprocessed" / EXPERIMENT.dataset / "nnUNetPlans.json").read_text()),
            "weights": {k: v.tolist() for k, v in weights["network_weights"].items()},
            "predictions": contents(work / "predictions"), "evaluation": contents(work / "evaluation"),
            "report": [(work / "report" / name).read_text() for name in ("report.md", "report.json")]}


def part_of(work: Path, *folders: str) -> dict[str, int]:
    return {folder: modification_times(work / folder) for folder in folders}


EVALUATION_FILES = ("summary.json", "per_image.csv")


def fresh_evaluation(base: Path, tmp_path: Path, member: str = "ensemble", **kwargs) -> dict[str, str]:
    """Evaluate the work directory's current predictions of ``member`` anew; ``{file: SHA-256}`` of the result,
    to compare with the work directory's evaluation."""
    layout = RunLayout.in_work_dir(base / "work")
    settings = PostprocessSettings(EXPERIMENT.evaluation.front_min_length_m,
                                   EXPERIMENT.evaluation.fused_glacier_dilation_px)
    out = tmp_path / "fresh_evaluation" / member
    shutil.rmtree(out, ignore_errors=True)
    evaluate_predictions(layout.predictions("fused", member), base / "data", out=out, settings=settings,
                         dataset=layout.workspace.raw / EXPERIMENT.dataset, workers=1, progress=False, **kwargs)
    fresh = contents(out)
    return {name: fresh[name] for name in EVALUATION_FILES}


def evaluation_files(base: Path, member: str = "ensemble") -> dict[str, str]:
    ours = contents(base / "work" / "evaluation" / "fused" / member)
    return {name: ours[name] for name in EVALUATION_FILES}


def fresh_predictions(base: Path, tmp_path: Path, *, mirroring: bool = False) -> dict[str, str]:
    """The test split predicted anew with the work directory's current model: ``{file: SHA-256}``."""
    model = model_folder(RunLayout.in_work_dir(base / "work").workspace, EXPERIMENT)
    out = tmp_path / "fresh_predictions"
    shutil.rmtree(out, ignore_errors=True)
    images = [s.image for s in discover(base / "data", ("test",))]
    predictor = GlacierPredictor(model, [0], device="cpu", mirroring=mirroring)
    assert not predict_images(predictor, images, out, per_fold=True, progress=False).failed
    return contents(out)


def edit_label(path: Path) -> None:
    """Make the top-left quarter of a zone label rock (64)."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    rows, cols = label.shape
    label[: rows // 2, : cols // 2] = 64
    assert cv2.imwrite(str(path), label)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base, saved): ``base`` holds ``data/`` (6 train, 3 test synthetic scenes of 64 px) and ``work/`` after
    a complete reproduction; ``saved`` is a copy of it, modification times included."""
    base = tmp_path_factory.mktemp("reproduction")
    generate_caffe(base / "data", n_train=6, n_test=3, size=(64, 64), seed=3, with_bounding_boxes=True)
    run_reproduction(reproduction(base))
    saved = tmp_path_factory.mktemp("saved") / "base"
    shutil.copytree(base, saved, symlinks=True)
    return base, saved


@pytest.fixture
def base(snapshot: tuple[Path, Path]) -> Path:
    """The module's finished reproduction, restored to its original paths and modification times."""
    base, saved = snapshot
    shutil.rmtree(base)
    shutil.copytree(saved, base, symlinks=True)
    return base


def test_an_unchanged_rerun_redoes_nothing(base, capsys):
    before = modification_times(base)
    assert redone(reproduce(base, capsys)) == set()
    assert modification_times(base) == before


def test_an_edited_test_label_redoes_the_evaluations_and_the_report_only(base, capsys, tmp_path):
    work = base / "work"
    upstream = part_of(work, "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "predictions")
    report = (work / "report" / "report.json").read_text()
    edit_label(next((base / "data" / "zones" / "test").glob("*.png")))

    assert redone(reproduce(base, capsys)) == {"evaluate fused ensemble", "evaluate fused fold_0", "report"}
    assert part_of(work, "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "predictions") == upstream
    for member in ("ensemble", "fold_0"):
        assert evaluation_files(base, member) == fresh_evaluation(base, tmp_path, member)
    assert (work / "report" / "report.json").read_text() != report  # the zone scores changed


def test_a_new_pixel_size_re_exports_and_re_evaluates_but_does_not_retrain(base, capsys, tmp_path):
    work = base / "work"
    trained = part_of(work, "nnUNet_preprocessed", "nnUNet_results", "predictions")

    assert redone(reproduce(base, capsys, pixel_size=7.0)) == {
        EXPORT, "evaluate fused ensemble", "evaluate fused fold_0", "report"}
    assert part_of(work, "nnUNet_preprocessed", "nnUNet_results", "predictions") == trained
    summary = (work / "evaluation" / "fused" / "ensemble" / "summary.json").read_text()
    assert '"pixel_size_m": 7.0' in summary
    assert evaluation_files(base) == fresh_evaluation(base, tmp_path, pixel_size=7.0)
    assert redone(reproduce(base, capsys, pixel_size=7.0)) == set()


def test_a_fold_retrained_by_hand_redoes_its_predictions_the_ensemble_and_the_evaluations(base, capsys, tmp_path):
    layout = RunLayout.in_work_dir(base / "work")
    fold_dir = model_folder(layout.workspace, EXPERIMENT) / "fold_0"
    shutil.rmtree(fold_dir)
    train_fold(EXPERIMENT, 0, layout.workspace.activate(), device="cpu", seed=5, **SCHEDULE)

    assert redone(reproduce(base, capsys)) == {"predict fused", "evaluate fused ensemble", "evaluate fused fold_0",
                                               "report"}
    assert contents(layout.work / "predictions" / "fused") == fresh_predictions(base, tmp_path)
    for member in ("ensemble", "fold_0"):
        assert evaluation_files(base, member) == fresh_evaluation(base, tmp_path, member)


def test_a_failing_re_export_keeps_the_previous_export_and_its_record(base, capsys):
    work = base / "work"
    before = modification_times(work)
    raw = contents(work / "nnUNet_raw")
    image = next((base / "data" / "sar_images" / "train").glob("*.png"))
    image.write_bytes(image.read_bytes()[:40])

    assert main(cli_args(base, "--no-mirroring")) == 1
    assert str(image) in capsys.readouterr().err
    assert contents(work / "nnUNet_raw") == raw
    assert modification_times(work) == before


def test_two_concurrent_reruns_after_a_training_label_edit_share_the_work_and_equal_a_fresh_run(base, capsys):
    """Both runs redo export..predict between them, each piece once, and leave what a fresh run gives."""
    edit_label(next((base / "data" / "zones" / "train").glob("*.png")))
    command = [*CLI, *cli_args(base, "--no-mirroring")]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [run.communicate(timeout=TIMEOUT_S) for run in runs]
    finally:
        for run in runs:
            run.kill()
            run.wait(timeout=60)
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    done = [redone(step_states(out)) for out, _ in outputs]
    assert not done[0] & done[1]  # no piece of work done twice
    # the label makes every step up to the predictions stale (the tiny model's new predictions, and so the
    # evaluations, may be the same as before)
    assert done[0] | done[1] >= {EXPORT, PLAN, "train fused fold_0", "predict fused"}
    rerun = results(base / "work")

    shutil.rmtree(base / "work")
    assert redone(reproduce(base, capsys)) == set(UP_TO_DATE)
    assert results(base / "work") == rerun


KILLABLE_PREDICTION = """
import sys, time
import nnunet_glacier.nnunet.predict as predict
from nnunet_glacier.cli import main

write_prediction = predict.write_prediction

def slow_write_prediction(prediction, out_dir, *args, **kwargs):
    write_prediction(prediction, out_dir, *args, **kwargs)
    if out_dir.name == "fold_0":
        time.sleep(60)  # the test kills the run here, once the first scene is written

if __name__ == "__main__":
    predict.write_prediction = slow_write_prediction
    sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_prediction_resumes_to_what_an_uninterrupted_run_gives(base, capsys, tmp_path):
    """With mirroring switched on, the predictions are redone; the run is killed after its first scene."""
    script = tmp_path / "killable_prediction.py"
    script.write_text(KILLABLE_PREDICTION)
    predictions = base / "work" / "predictions" / "fused"
    record = RunLayout.in_work_dir(base / "work").record("predict", "fused")
    run = subprocess.Popen([sys.executable, str(script), *cli_args(base)], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while '"mirroring": true' not in record.read_text() or not any(predictions.glob("fold_0/*.png")):
            assert run.poll() is None and time.monotonic() < deadline, "the prediction did not start"
            time.sleep(0.2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert len(list(predictions.glob("*.png"))) == len(list(predictions.glob("fold_0/*.png"))) == 1

    states = reproduce(base, capsys, mirroring=True)
    assert redone(states) == {"predict fused", "evaluate fused ensemble", "evaluate fused fold_0", "report"}
    assert states["predict fused"] == "2 scene(s) predicted, 1 up to date"  # resumed, the first scene kept
    assert not list(predictions.rglob(".*"))  # no temporaries left
    assert contents(predictions) == fresh_predictions(base, tmp_path, mirroring=True)
    for member in ("ensemble", "fold_0"):
        assert evaluation_files(base, member) == fresh_evaluation(base, tmp_path, member)
