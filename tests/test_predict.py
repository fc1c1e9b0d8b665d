"""Prediction: the streamed sliding window gives nnU-Net's class maps, per fold and for the ensemble, at a memory
that does not grow with the folds; the ensemble's uncertainty measures; what predict_images writes.

Models are untrained results folders with distinct random weights per fold (``benchmarks/standin.py``, shared
with benchmarks/bench_detect.py; the repository root is on the tests' path, see pyproject.toml), so no test here
trains a network.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import standin
from nnunet_glacier.data.caffe import read_grey
from nnunet_glacier.nnunet.networks import task_probabilities
from nnunet_glacier.nnunet.predict import (
    NNUNET_SPACING,
    GlacierPredictor,
    mean_prediction,
    predict_images,
    write_prediction,
)
from nnunet_glacier.nnunet.prediction_types import ScenePrediction
from nnunet_glacier.nnunet.uncertainty import fold_disagreement, normalised_entropy

REPO = Path(__file__).resolve().parents[1]

#: Several tiles in each direction, odd sizes, a non-square patch.
SHAPE = (150, 259)
PATCH = (48, 64)
#: Share of pixels whose class must equal nnU-Net's (float rounding of batched network calls may flip near-ties).
AGREEMENT = 0.999


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained two-fold models: single-task zones and the late-branching zone + front multi-task model."""
    root = tmp_path_factory.mktemp("models")
    return {name: standin.random_model(root / name, name, (0, 1), patch=PATCH) for name in ("stl_zone", "mtl_late")}


def scene_with_zero_margin() -> np.ndarray:
    """The test scene with zero rows and columns at its edges (nnU-Net crops to the non-zero region)."""
    image = standin.scene(SHAPE, seed=3)
    image[:9], image[:, -14:] = 0, 0
    return image


def nnunet_fold_probabilities(model: Path, fold: int, image: np.ndarray, mirroring: bool,
                              task_classes: list[int]) -> list[np.ndarray]:
    """nnU-Net's own predictor on one fold: each task's class probabilities ``(n, rows, cols)``."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    reference = nnUNetPredictor(use_mirroring=mirroring, device=torch.device("cpu"), allow_tqdm=False)
    reference.initialize_from_trained_model_folder(str(model), (fold,), "checkpoint_final.pth")
    _, probabilities = reference.predict_single_npy_array(image[None, None].astype(np.float32),
                                                          {"spacing": NNUNET_SPACING}, None, None, True)
    return task_probabilities(probabilities[:, 0], task_classes)


@pytest.mark.parametrize("experiment, mirroring", [("stl_zone", False), ("stl_zone", True), ("mtl_late", False),
                                                   ("mtl_late", True)])
def test_class_maps_equal_nnunets_per_fold_and_for_the_ensemble(models, experiment, mirroring):
    image = scene_with_zero_margin()
    predictor = GlacierPredictor(models[experiment], [0, 1], device="cpu", mirroring=mirroring)
    tasks = [task.name for task in predictor.tasks]
    ours = predictor.predict(image, members=True, probabilities=True, measure=tasks)
    classes = [task.n_classes for task in predictor.tasks]
    theirs = [nnunet_fold_probabilities(models[experiment], fold, image, mirroring, classes) for fold in (0, 1)]
    for k, task in enumerate(tasks):
        for fold in (0, 1):
            assert (ours.members[fold].class_maps[task] == theirs[fold][k].argmax(0)).mean() >= AGREEMENT
            assert np.abs(ours.members[fold].probabilities[task] - theirs[fold][k]).max() < 2e-3  # float16
        ensemble = (theirs[0][k] + theirs[1][k]) / 2
        assert (ours.class_maps[task] == ensemble.argmax(0)).mean() >= AGREEMENT
        assert len(np.unique(ours.class_maps[task])) > 1  # a real map, not one class everywhere
        assert (ours.members[0].class_maps[task] != ours.members[1].class_maps[task]).any()  # distinct folds
        np.testing.assert_allclose(ours.uncertainty[task], normalised_entropy(ensemble), atol=5e-3)
        np.testing.assert_allclose(ours.disagreement[task], fold_disagreement([t[k] for t in theirs]), atol=5e-3)
        assert (ours.class_maps[task][:9] == 0).all() and (ours.uncertainty[task][:9] == 0).all()  # outside the crop


def test_one_fold_has_no_disagreement_and_only_asked_for_maps_are_kept(models):
    predictor = GlacierPredictor(models["mtl_late"], [1], device="cpu", mirroring=False)
    prediction = predictor.predict(standin.scene(SHAPE), measure=["front"])
    assert set(prediction.class_maps) == {"zone", "front"}
    assert prediction.class_maps["zone"].shape == SHAPE and prediction.class_maps["zone"].dtype == np.uint8
    assert set(prediction.uncertainty) == {"front"} and prediction.uncertainty["front"].dtype == np.float32
    assert prediction.disagreement == {} and prediction.probabilities == {} and prediction.members == []
    with pytest.raises(ValueError, match="boundary"):
        predictor.predict(standin.scene(SHAPE), measure=["boundary"])


PEAK_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from benchmarks import standin
from benchmarks.peak_memory import peak_rss_bytes
from nnunet_glacier.nnunet.predict import GlacierPredictor
predictor = GlacierPredictor({model!r}, list(range({folds})), device="cpu", mirroring=False, tile_progress=False,
                             low_memory=True)
standin.install_standin(predictor.nnunet)
prediction = predictor.predict(standin.scene(({side}, {side})), measure=["zone"])
assert prediction.class_maps["zone"].shape == ({side}, {side})
print(json.dumps(peak_rss_bytes()))
"""


@pytest.mark.slow  # two processes, each predicting a 2000 x 2000 scene
def test_peak_memory_does_not_grow_with_the_folds(tmp_path):
    """A 2000 x 2000 scene of the zone + front model (8 joint classes): keeping every fold's scene-sized
    probabilities would add ~0.2 GB per fold; the streamed window keeps ~5 MB per fold."""
    model = standin.random_model(tmp_path / "model", "mtl_late", (0, 1, 2), patch=(256, 256))
    peaks = {}
    for folds in (1, 3):
        script = PEAK_SCRIPT.format(repo=str(REPO), model=str(model), folds=folds, side=2000)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                              env={"nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[folds] = json.loads(done.stdout.strip().splitlines()[-1])  # bytes, the process's own
    assert peaks[3] / peaks[1] <= 1.2, peaks


def test_a_large_scene_shows_tile_progress_unless_turned_off(models, capsys):
    image = standin.scene((200, 300))  # 8 x 9 tiles of 48 x 64 px
    GlacierPredictor(models["stl_zone"], [0], device="cpu", mirroring=False).predict(image)
    assert "tiles x folds" in capsys.readouterr().err
    GlacierPredictor(models["stl_zone"], [0], device="cpu", mirroring=False, tile_progress=False).predict(image)
    assert "tiles x folds" not in capsys.readouterr().err


def test_predict_images_writes_the_ensemble_and_each_fold(models, tmp_path):
    from nnunet_glacier.utilities.atomic import write_png

    image_path = tmp_path / "in" / "scene_0000.png"
    image_path.parent.mkdir()
    write_png(image_path, standin.scene(SHAPE))
    predictor = GlacierPredictor(models["mtl_late"], [0, 1], device="cpu", mirroring=False)
    report = predict_images(predictor, [image_path], tmp_path / "out", per_fold=True, save_probabilities=True,
                            progress=False)
    assert report.written == ["scene"] and not report.failed
    expected = predictor.predict(standin.scene(SHAPE), members=True)
    for folder, prediction in [(tmp_path / "out", expected), *((tmp_path / "out" / f"fold_{k}", m)
                                                              for k, m in enumerate(expected.members))]:
        assert (read_grey(folder / "scene_zones.png") == prediction.png("zone")).all()
        assert (read_grey(folder / "scene_front.png") == prediction.png("front")).all()
        with np.load(folder / "scene_probabilities.npz") as saved:
            assert saved["zone"].shape == (4, *SHAPE) and saved["zone"].dtype == np.float16
    assert predict_images(predictor, [image_path], tmp_path / "out", per_fold=True, save_probabilities=True,
                          progress=False).skipped == ["scene"]
    with pytest.raises(ValueError, match="no probabilities"):
        write_prediction(expected, tmp_path / "elsewhere", "scene", save_probabilities=True)


def test_mean_prediction_averages_probabilities():
    certain = np.zeros((2, 1, 2), np.float32)
    certain[0, 0, 0], certain[1, 0, 1] = 1, 1
    unsure = np.full((2, 1, 2), 0.5, np.float32)
    unsure[:, 0, 1] = (0.2, 0.8)
    mean = mean_prediction([ScenePrediction.from_probabilities({"front": certain}),
                            ScenePrediction.from_probabilities({"front": unsure})])
    np.testing.assert_allclose(mean.probabilities["front"][:, 0], [[0.75, 0.1], [0.25, 0.9]], atol=1e-3)
    assert mean.class_maps["front"].tolist() == [[0, 1]]
