"""All six experiments (and our extension) train, resume and predict on the CPU, via our CLI and via
``nnUNetv2_train -tr``; ``reproduce`` runs them with the stock baselines; a seed repeats training, and our
single-task trainer trains as nnU-Net's stock one.

The datasets are the session's run's (tests/trained_models.py: exported and
planned once by reproduce's own steps; tiny profile: 64 px patches, a 4-stage
U-Net), whose nnU-Net folders are given by the ``nnUNet_*`` variables, as a
user without ``--work`` has them (``--work`` is tested in test_reproduce.py
and test_checkpoints.py). Each experiment then:

1. trains fold 0 with ``nnunet-glacier train`` (2 epochs of 1 iteration),
   interrupted after epoch 0, and resumes from ``checkpoint_latest.pth``;
2. trains fold 1 (1 epoch of 1 iteration) with ``train_fold``, or, for
   :data:`NNUNET_TRAIN_PROOF`, with nnU-Net's own ``nnUNetv2_train ... -tr
   <our trainer>`` (which finds every trainer of ours the same way, through
   ``nnUNet_extTrainer``);
3. predicts the test scenes with the 2-fold ensemble (``nnunet-glacier
   predict``), whose probabilities must be the mean of the folds', and whose
   per-fold maps must match nnU-Net's own predictor on the encoded label.

The reproduction after them finds those folds trained and trains only the stock baselines; the run with
fold ``all`` after it, in the same folders, finds the export and plan current too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from trained_models import PROFILE, interrupted_at_epoch, without_final_validation

from nnunet_glacier.cli import main
from nnunet_glacier.data import experiments
from nnunet_glacier.data.caffe import read_grey
from nnunet_glacier.data.experiments import EXPERIMENT_ORDER, baselines, get_experiment
from nnunet_glacier.data.tasks import TASKS
from nnunet_glacier.nnunet.networks import task_probabilities
from nnunet_glacier.nnunet.plans import write_configuration
from nnunet_glacier.nnunet.predict import available_folds
from nnunet_glacier.nnunet.training import model_folder, train_fold
from nnunet_glacier.nnunet.workspace import NNUNET_FOLDERS, TRAINER_DIR, Workspace
from nnunet_glacier.pipeline.report import per_image_mde
from nnunet_glacier.postprocessing.postprocess import ROUTES

#: The paper's six and the experiments beyond it, all trained by our trainers.
OURS = (*EXPERIMENT_ORDER, "mtl_distance")
#: The experiment whose fold 1 nnU-Net's own ``nnUNetv2_train -tr`` trains (in a process of its own).
NNUNET_TRAIN_PROOF = "mtl_late"
#: Seconds a subprocess may take.
TIMEOUT_S = 600


def train_fold0_with_interruption(experiment_name: str, workspace: Workspace) -> Path:
    """``nnunet-glacier train`` (in the active workspace: no ``--work``) stopped at epoch 1, resumed, skipped."""
    args = ["train", "--experiment", experiment_name, "--fold", "0", "--profile", PROFILE, "--device", "cpu",
            "--iterations", "1"]
    with interrupted_at_epoch(1):
        assert main(args) == 130
    fold_dir = model_folder(workspace, get_experiment(experiment_name, PROFILE)) / "fold_0"
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
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold_dir = model_folder(workspace, experiment) / "fold_1"
    assert (fold_dir / "checkpoint_final.pth").is_file()
    return fold_dir


def train_fold1(experiment_name: str, workspace: Workspace) -> Path:
    """Fold 1, a second member for the ensemble: by nnU-Net's own command for :data:`NNUNET_TRAIN_PROOF`, else
    in-process for one iteration (validated, as ``reproduce`` wants a trained fold to be)."""
    if experiment_name == NNUNET_TRAIN_PROOF:
        return train_fold1_with_nnunet(experiment_name, workspace)
    fold_dir = train_fold(get_experiment(experiment_name, PROFILE), 1, workspace, device="cpu", max_epochs=1,
                          iterations=1)
    assert (fold_dir / "checkpoint_final.pth").is_file() and (fold_dir / "validation" / "summary.json").is_file()
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


@pytest.mark.parametrize("experiment_name", OURS)
def test_experiment_trains_resumes_and_predicts(experiment_name, tiny_runs, tmp_path):
    experiment = get_experiment(experiment_name, PROFILE)
    workspace = tiny_runs.planned(experiment_name)
    fold0 = train_fold0_with_interruption(experiment_name, workspace)
    train_fold1(experiment_name, workspace)
    if experiment.is_multitask:
        summary = (fold0 / "validation" / "summary_tasks.json").read_text()
        assert all(f'"{task}"' in summary for task in experiment.tasks)  # validation Dice per task

    out = tmp_path / "predictions"
    test_images = tiny_runs.data / "sar_images" / "test"
    assert main(["predict", "--experiment", experiment_name, "--profile", PROFILE,
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


def test_reproduce_runs_all_six_experiments_with_the_stock_baseline_and_resumes(tiny_runs, monkeypatch):
    """``reproduce --baseline`` end to end in the session's run (``./work`` and the ``nnUNet_*`` folders): the
    session's export and plan are current and the folds trained above are kept; the stock baselines train for
    one iteration."""
    workspace, work = tiny_runs.planned(), tiny_runs.work
    monkeypatch.chdir(tiny_runs.root)
    args = ["reproduce", "--data", str(tiny_runs.data), "--profile", PROFILE, "--folds", "0", "1", "--device", "cpu",
            "--no-mirroring", "--baseline", "--max-epochs", "1", "--iterations", "1"]
    assert main(args) == 0
    stock = [b.name for b in baselines()]
    report = json.loads((work / "report" / "report.json").read_text())
    assert list(report["experiments"]) == [*EXPERIMENT_ORDER, *stock]
    for name, experiment in report["experiments"].items():
        assert experiment["n_folds"] == 2
        routes = set(experiment["routes"])
        assert routes == set(get_experiment(name).tasks) & set(ROUTES), name  # every task but the boundary
    assert len(report["comparison"]["welch_mde"]) > 0  # Table A1: pairs of experiment routes
    against = report["against_stock"]
    assert against["baseline"] == "stock_fused:fused"
    assert set(against["results"]) == {f"{name}:{route}" for name, e in report["experiments"].items()
                                       for route in e["routes"]}
    assert against["results"]["stock_fused:fused"]["ratio"] in (1.0, None)  # None: no front at all
    markdown = (work / "report" / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in EXPERIMENT_ORDER)
    assert "## Against stock nnU-Net (`stock_fused:fused`)" in markdown
    has_fronts = any(mdes for name in report["experiments"]
                     for mdes in per_image_mde(work / "evaluation" / name / "ensemble" / "per_image.csv").values())
    assert (work / "report" / "mde_by_experiment.png").is_file() == has_fronts

    def trained_runs():
        models = [model_folder(workspace, get_experiment(name, PROFILE)) for name in report["experiments"]]
        return ({p: p.stat().st_mtime for p in (work / "evaluation").rglob("summary.json")},
                {p: p.stat().st_mtime for m in models for p in m.rglob("checkpoint_final.pth")})

    finished, checkpoints = trained_runs()
    assert len(finished) == 8 * 3 and len(checkpoints) == 8 * 2
    assert main(args) == 0  # resumed run: nothing left to do
    assert trained_runs() == (finished, checkpoints)


def test_fold_all_with_a_profile_file_and_the_users_nnunet_folders(tiny_runs, tmp_path, monkeypatch, capsys):
    """``reproduce`` without ``--work`` uses the ``nnUNet_*`` variables (the session's folders: their export and
    plan are current), a profile given as a file (the tiny one, one epoch of one iteration), and nnU-Net's fold
    ``all`` (trained on every training case, then predicted, evaluated and reported like any fold).

    Runs after the reproduction above, whose outputs of ``fused`` in ./work it replaces."""
    profile = tmp_path / "tiny_file.json"
    settings = json.loads((experiments.PROFILE_DIR / f"{PROFILE}.json").read_text())
    settings["training"].update(epochs=1, iterations_per_epoch=1)
    profile.write_text(json.dumps(settings))
    workspace, work = tiny_runs.planned("fused"), tiny_runs.work
    for variable, folder in zip(NNUNET_FOLDERS, (workspace.raw, workspace.preprocessed, workspace.results)):
        monkeypatch.setenv(variable, str(folder))
    monkeypatch.chdir(tiny_runs.root)
    capsys.readouterr()
    assert main(["reproduce", "--data", str(tiny_runs.data), "--profile", str(profile), "--experiments", "fused",
                 "--folds", "all", "--device", "cpu", "--no-mirroring"]) == 0
    out = capsys.readouterr().out
    assert "== export Dataset506_CaFFeFused: up to date" in out and "== plan Dataset506_CaFFeFused: up to date" in out

    experiment = get_experiment("fused", str(profile))
    assert experiment.configuration == "2d_tiny_file" and experiment.training.epochs == 1
    model = model_folder(workspace, experiment)  # in the user's nnUNet_results, not in ./work
    assert model.parent.parent == workspace.results and not (work / "nnUNet_results").exists()
    assert torch.load(model / "fold_all" / "checkpoint_final.pth", map_location="cpu",
                      weights_only=False)["current_epoch"] == 1  # the profile file's schedule
    validation = json.loads((model / "fold_all" / "validation" / "summary.json").read_text())
    assert len(validation["metric_per_case"]) == len(list((tiny_runs.data / "sar_images" / "train").glob("*.png")))
    assert available_folds(model) == ["all"]
    summary = json.loads((work / "evaluation" / "fused" / "fold_all" / "summary.json").read_text())
    assert summary["settings"]["pixel_size_source"] == "dataset"  # the sizes export recorded
    report = (work / "report" / "report.md").read_text()
    assert "(1 fold)" in report and "synthetic" in report and "CaFFe baseline" not in report


def test_a_seed_repeats_training_and_our_single_task_trainer_trains_as_stock_nnunet(tiny_runs, tmp_path):
    """Same seed: our trainer's weights equal nnU-Net's stock trainer's (at batch 4, where the old
    oversampling of 0.5 forced two patches of four to foreground and nnU-Net's 0.33 forces one); another
    seed gives other weights. One iteration shows both; only weights are compared, so no final validation."""
    workspace = tiny_runs.planned("fused")
    fused = get_experiment("fused", PROFILE)
    experiment = dataclasses.replace(fused, plan=dataclasses.replace(fused.plan, batch_size=4), profile="tiny_batch4")
    write_configuration(experiment, workspace)

    def trained_weights(trainer: str, seed: int) -> dict[str, torch.Tensor]:
        runs = Workspace(workspace.raw, workspace.preprocessed, tmp_path / f"{trainer}_{seed}").activate()
        with without_final_validation():
            fold = train_fold(dataclasses.replace(experiment, trainer=trainer), 0, runs, device="cpu", seed=seed,
                              threads=1, max_epochs=1, iterations=1)
        return torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]

    try:
        ours, stock, other = (trained_weights("nnUNetTrainerGlacier", 3), trained_weights("nnUNetTrainer", 3),
                              trained_weights("nnUNetTrainerGlacier", 4))
    finally:
        workspace.activate()
    assert ours.keys() == stock.keys()
    assert all(torch.equal(ours[k], stock[k]) for k in ours)
    assert not all(torch.equal(ours[k], other[k]) for k in ours)
