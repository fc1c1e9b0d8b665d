"""All six experiments train, resume and predict on the CPU, via our CLI and via ``nnUNetv2_train -tr``.

One module-scoped work directory holds the five exported, planned and
preprocessed datasets (tiny profile: 64 px patches, a 4-stage U-Net, 2
epochs of 2 iterations). Each experiment then:

1. trains fold 0 with ``nnunet-glacier train``, interrupted after epoch 0,
   and resumes from ``checkpoint_latest.pth``;
2. trains fold 1 with nnU-Net's own ``nnUNetv2_train ... -tr <our trainer>``;
3. predicts the test scenes with the 2-fold ensemble (``nnunet-glacier
   predict``), whose probabilities must be the mean of the folds', and whose
   per-fold maps must match nnU-Net's own predictor on the encoded label.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_glacier import experiments
from nnunet_glacier.caffe import read_grey
from nnunet_glacier.cli import main
from nnunet_glacier.experiments import EXPERIMENT_ORDER, get_experiment
from nnunet_glacier.nnunet.export import export_dataset
from nnunet_glacier.nnunet.networks import task_probabilities
from nnunet_glacier.nnunet.plans import plan_and_preprocess, write_configuration
from nnunet_glacier.nnunet.predict import available_folds
from nnunet_glacier.nnunet.training import model_folder
from nnunet_glacier.postprocess import ROUTES
from nnunet_glacier.tasks import TASKS
from nnunet_glacier.workspace import DEFAULT_WORK, NNUNET_FOLDERS, TRAINER_DIR, Workspace

PROFILE = "tiny"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Workspace:
    workspace = Workspace.from_work_dir(tmp_path_factory.mktemp("work")).activate()
    planned = set()
    for name in EXPERIMENT_ORDER:
        experiment = get_experiment(name, PROFILE)
        if experiment.dataset_id not in planned:
            export_dataset(synthetic_root, experiment, workspace.raw, num_workers=1, progress=False)
            plan_and_preprocess(experiment, workspace, num_processes=1)
            write_configuration(experiment, workspace)
            planned.add(experiment.dataset_id)
    return workspace


def interrupt_at_epoch(epoch: int):
    """An ``on_epoch_start`` that stops training at ``epoch``, like Ctrl-C would."""
    original = nnUNetTrainer.on_epoch_start

    def on_epoch_start(self):
        if self.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self)

    return on_epoch_start


def train_fold0_with_interruption(experiment_name: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    args = ["train", "--experiment", experiment_name, "--fold", "0", "--work", str(work), "--profile", PROFILE,
            "--device", "cpu"]
    with monkeypatch.context() as patch:
        patch.setattr(nnUNetTrainer, "on_epoch_start", interrupt_at_epoch(1))
        assert main(args) == 130
    fold_dir = model_folder(Workspace.from_work_dir(work), get_experiment(experiment_name, PROFILE)) / "fold_0"
    assert (fold_dir / "checkpoint_latest.pth").is_file()
    assert not (fold_dir / "checkpoint_final.pth").exists()
    interrupted_at = time.time()

    assert main(args) == 0
    checkpoint = torch.load(fold_dir / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["current_epoch"] == 2
    epoch_starts = checkpoint["logging"]["epoch_start_timestamps"]
    assert epoch_starts[0] < interrupted_at < epoch_starts[1]  # epoch 0 kept from before: resumed, not restarted
    assert main(args) == 0  # a finished fold is skipped
    return fold_dir


def train_fold1_with_nnunet(experiment_name: str, workspace: Workspace) -> Path:
    experiment = get_experiment(experiment_name, PROFILE)
    env = {**os.environ, "nnUNet_raw": str(workspace.raw), "nnUNet_preprocessed": str(workspace.preprocessed),
           "nnUNet_results": str(workspace.results), "nnUNet_extTrainer": str(TRAINER_DIR)}
    command = [str(Path(sys.executable).parent / "nnUNetv2_train"), str(experiment.dataset_id),
               experiment.configuration, "1", "-tr", experiment.trainer, "-device", "cpu"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold_dir = model_folder(workspace, experiment) / "fold_1"
    assert (fold_dir / "checkpoint_final.pth").is_file()
    return fold_dir


def check_against_nnunet_predictor(model: Path, image_file: Path, our_fold0: Path, experiment) -> None:
    """Our fold-0 maps equal the per-task argmax of nnU-Net's own predictor's joint probabilities.

    (The argmax of the joint encoded classes can differ from the per-task
    argmax where a tiny model is unsure, so the probabilities are compared
    through the same marginalisation our predictor uses.)
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), (0,), "checkpoint_final.pth")
    image = read_grey(image_file).astype(np.float32)[None, None]
    _, joint = predictor.predict_single_npy_array(image, {"spacing": [999, 1, 1]}, None, None, True)
    for task, probabilities in zip(experiment.task_objects, task_probabilities(joint[:, 0], experiment.task_classes)):
        ours = task.from_png(read_grey(our_fold0 / f"{image_file.stem}{task.suffix}.png", label=True))
        assert np.mean(ours == probabilities.argmax(axis=0)) > 0.9999, task.name


@pytest.mark.parametrize("experiment_name", EXPERIMENT_ORDER)
def test_experiment_trains_resumes_and_predicts(experiment_name, workspace, synthetic_root, tmp_path, monkeypatch):
    experiment = get_experiment(experiment_name, PROFILE)
    work = workspace.raw.parent
    fold0 = train_fold0_with_interruption(experiment_name, work, monkeypatch)
    train_fold1_with_nnunet(experiment_name, workspace)
    if experiment.is_multitask:
        summary = (fold0 / "validation" / "summary_tasks.json").read_text()
        assert all(f'"{task}"' in summary for task in experiment.tasks)  # validation Dice per task

    out = tmp_path / "predictions"
    test_images = synthetic_root / "sar_images" / "test"
    assert main(["predict", "--experiment", experiment_name, "--work", str(work), "--profile", PROFILE,
                 "--folds", "0", "1", "-i", str(test_images), "-o", str(out), "--per-fold",
                 "--save-probabilities", "--device", "cpu", "--no-mirroring"]) == 0
    for image_file in sorted(test_images.glob("*.png")):
        stem = image_file.stem
        for task in experiment.task_objects:
            values = set(np.unique(read_grey(out / f"{stem}{task.suffix}.png", label=True)).tolist())
            assert values <= set(task.png_values)
        ensemble = np.load(out / f"{stem}_probabilities.npz")
        folds = [np.load(out / f"fold_{k}" / f"{stem}_probabilities.npz") for k in (0, 1)]
        for task in experiment.tasks:
            mean = (folds[0][task].astype(np.float32) + folds[1][task].astype(np.float32)) / 2
            assert np.allclose(ensemble[task], mean, atol=2e-3)
            assert ensemble[task].shape == (TASKS[task].n_classes, *read_grey(image_file).shape)
    check_against_nnunet_predictor(model_folder(workspace, experiment), next(test_images.glob("*.png")),
                                   out / "fold_0", experiment)


def test_reproduce_runs_all_six_experiments_and_resumes(workspace, synthetic_root):
    """``reproduce`` end to end on the module's work directory (folds already trained above are skipped)."""
    work = workspace.raw.parent
    args = ["reproduce", "--data", str(synthetic_root), "--work", str(work), "--profile", PROFILE,
            "--folds", "0", "1", "--device", "cpu", "--no-mirroring"]
    assert main(args) == 0
    report = json.loads((work / "report" / "report.json").read_text())
    assert list(report["experiments"]) == list(EXPERIMENT_ORDER)
    for name, experiment in report["experiments"].items():
        assert experiment["n_folds"] == 2
        routes = set(experiment["routes"])
        assert routes == set(get_experiment(name).tasks) & set(ROUTES), name  # every task but the boundary
    assert len(report["comparison"]["welch_mde"]) > 0  # Table A1: pairs of experiment routes
    markdown = (work / "report" / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in EXPERIMENT_ORDER)

    finished = {p: p.stat().st_mtime for p in (work / "evaluation").rglob("summary.json")}
    checkpoints = {p: p.stat().st_mtime for p in workspace.results.rglob("checkpoint_final.pth")}
    assert len(finished) == 6 * 3 and len(checkpoints) == 6 * 2
    assert main(args) == 0  # resumed run: nothing left to do
    assert {p: p.stat().st_mtime for p in (work / "evaluation").rglob("summary.json")} == finished
    assert {p: p.stat().st_mtime for p in workspace.results.rglob("checkpoint_final.pth")} == checkpoints


def test_fold_all_with_a_profile_file_and_the_users_nnunet_folders(workspace, synthetic_root, tmp_path, monkeypatch):
    """``reproduce`` without ``--work`` uses the ``nnUNet_*`` variables, a profile given as a file, and nnU-Net's
    fold ``all`` (trained on every training case, then predicted, evaluated and reported like any fold).

    Runs after the reproduction above, which counts the checkpoints of the module's work directory."""
    profile = tmp_path / "tiny_file.json"
    profile.write_text((experiments.PROFILE_DIR / f"{PROFILE}.json").read_text())
    for variable, folder in zip(NNUNET_FOLDERS, (workspace.raw, workspace.preprocessed, workspace.results)):
        monkeypatch.setenv(variable, str(folder))
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--data", str(synthetic_root), "--profile", str(profile), "--experiments", "fused",
                 "--folds", "all", "--device", "cpu", "--no-mirroring"]) == 0

    experiment = get_experiment("fused", str(profile))
    assert experiment.configuration == "2d_tiny_file"
    model = model_folder(workspace, experiment)  # in the user's nnUNet_results, not in ./work
    assert not (tmp_path / DEFAULT_WORK / "nnUNet_results").exists()
    validation = json.loads((model / "fold_all" / "validation" / "summary.json").read_text())
    assert len(validation["metric_per_case"]) == len(list((synthetic_root / "sar_images" / "train").glob("*.png")))
    assert available_folds(model) == ["all"]
    summary = json.loads((tmp_path / DEFAULT_WORK / "evaluation" / "fused" / "fold_all" / "summary.json").read_text())
    assert summary["settings"]["pixel_size_source"] == "dataset"  # the sizes export recorded
    report = (tmp_path / DEFAULT_WORK / "report" / "report.md").read_text()
    assert "(1 fold)" in report and "synthetic" in report and "CaFFe baseline" not in report
