"""`model import-v1` checked against nnU-Net v1 itself (nnunet 1.7.1, a test extra).

The v1 models here are written by v1's own code: plans by its 2-D planner
(``ExperimentPlanner2D_v21``, the ``nnUNetPlansv2.1`` of the paper), networks,
checkpoints and their ``.pkl`` by ``nnUNetTrainerV2`` (``initialize_network``,
``save_checkpoint``), with random weights. The planner reads a cropped-data
folder; we give it a stand-in holding only what it reads (the dataset
properties and one file per case). Prediction is v1's own
``Generic_UNet.predict_2D`` (sliding window, Gaussian weighting, mirroring)
after v1's own preprocessing (``nnUNetTrainer.preprocess_patient``).
"""
from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_glacier.cli import main
from nnunet_glacier.errors import ModelError
from nnunet_glacier.field.v1_import import import_v1_model

try:  # (v1 warns on import that its folders are not set: none is used here)
    from nnunet.experiment_planning.experiment_planner_baseline_2DUNet_v21 import ExperimentPlanner2D_v21
    from nnunet.training.network_training.nnUNetTrainerV2 import nnUNetTrainerV2
except ImportError as err:
    pytest.skip(f"nnU-Net v1 is not installed (pip install nnunet==1.7.1, in the test extra): {err}",
                allow_module_level=True)

TASK = "Task500_Glacier_zonefronts"
V1_FOLDER = "nnUNetTrainerV2__nnUNetPlansv2.1"


#: Installed models and downloads go to a fresh folder, never the user's cache (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("glacier_home")


def v1_plans(folder: Path, image_shape: tuple[int, int], *, num_classes: int = 4) -> Path:
    """v1's 2-D plans (``nnUNetPlansv2.1_plans_2D.pkl``, written by its planner) for 4 scenes of ``image_shape`` px
    with ``num_classes`` foreground classes (4: the fused labels rock, glacier, ocean, front)."""
    cropped, preprocessed = folder / "cropped", folder / "preprocessed"
    cropped.mkdir(parents=True)
    preprocessed.mkdir()
    cases = [f"case_{k}" for k in range(4)]
    for case in cases:
        np.savez(cropped / f"{case}.npz", data=np.zeros((2, 1, 2, 2), np.float32))
        (cropped / f"{case}.pkl").write_bytes(pickle.dumps(OrderedDict()))
    properties = {"all_spacings": [np.array([999.0, 1.0, 1.0])] * 4, "all_sizes": [np.array([1, *image_shape])] * 4,
                  "all_classes": list(range(1, num_classes + 1)), "modalities": {0: "SAR"},
                  "size_reductions": OrderedDict((case, 1.0) for case in cases), "intensityproperties": None}
    (cropped / "dataset_properties.pkl").write_bytes(pickle.dumps(properties))
    ExperimentPlanner2D_v21(str(cropped), str(preprocessed)).plan_experiment()
    return preprocessed / "nnUNetPlansv2.1_plans_2D.pkl"


def write_v1_model(plans_file: Path, model_dir: Path, folds: tuple[int, ...] = (0,), seed: int = 0) -> list:
    """A v1 trained-model folder as nnUNetTrainerV2 leaves it (plans.pkl, fold_K/model_final_checkpoint.model and
    its .pkl), with random weights; returns the folds' v1 trainers."""
    trainers = []
    generator = torch.Generator().manual_seed(seed)
    for fold in folds:
        trainer = nnUNetTrainerV2(str(plans_file), fold, output_folder=str(model_dir),
                                  dataset_directory=str(plans_file.parent), fp16=False)
        trainer.load_plans_file()
        trainer.process_plans(trainer.plans)
        trainer.initialize_network()
        trainer.initialize_optimizer_and_scheduler()
        with torch.no_grad():  # trained weights: every tensor random, biases and norm affines included
            for parameter in trainer.network.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        trainer.all_tr_losses, trainer.all_val_eval_metrics = [np.float64(0.4)], [np.float64(0.6)]  # as training
        (model_dir / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(model_dir / f"fold_{fold}" / "model_final_checkpoint.model"))
        trainer.network.do_ds = False  # as v1's inference does
        trainer.network.eval()
        trainers.append(trainer)
    shutil.copy(plans_file, model_dir / "plans.pkl")  # as nnUNetTrainer.run_training does
    return trainers


@pytest.fixture(scope="module")
def small_v1(tmp_path_factory) -> tuple[Path, list]:
    """A small v1 fused-label model (patch 128 x 128, 6 stages, 32..480 features), folds 0 and 1."""
    root = tmp_path_factory.mktemp("v1_small")
    model_dir = root / "nnUNet_trained_models" / "nnUNet" / "2d" / TASK / V1_FOLDER
    return model_dir, write_v1_model(v1_plans(root / "planning", (128, 128)), model_dir, folds=(0, 1))


def v2_fold_network(folder: Path, fold: int) -> torch.nn.Module:
    """The network nnU-Net v2's predictor builds for an installed model's fold, holding that fold's weights."""
    from nnunet_glacier.nnunet.predict import GlacierPredictor

    nnunet = GlacierPredictor(folder, [fold], device="cpu").nnunet
    nnunet.network.load_state_dict(nnunet.list_of_parameters[0])
    return nnunet.network.eval()


def max_logit_difference(v1_network: torch.nn.Module, v2_network: torch.nn.Module, shape: tuple[int, int],
                         seed: int = 1) -> float:
    x = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(seed)) * 2
    with torch.no_grad():
        return float((v1_network(x) - v2_network(x)).abs().max())


def test_small_model_gives_v1s_logits(small_v1):
    model_dir, trainers = small_v1
    folder = import_v1_model(model_dir, name="small")
    for fold, trainer in enumerate(trainers):
        v2 = v2_fold_network(folder, fold)
        assert max_logit_difference(trainer.network, v2, (128, 192)) <= 1e-4
    assert sorted(p.name for p in folder.glob("fold_*/checkpoint_final.pth")) == ["checkpoint_final.pth"] * 2
    assert folder.parent.name == "Dataset500_Glacier_zonefronts"


@pytest.mark.slow  # the paper's network (9 stages up to 480 features), written by v1 and imported
def test_published_settings_map_exactly(tmp_path):
    """The paper's topology (patch 1024 x 896: 9 stages, 32 features doubling up to 480, last stride 2 x 1)."""
    import json

    model_dir = tmp_path / TASK / "fold_0"  # the Hugging Face Space's layout: TaskNNN_Name/fold_K/
    [trainer] = write_v1_model(v1_plans(tmp_path / "planning", (1024, 896)), model_dir.parent)
    folder = import_v1_model(model_dir, name="paper")
    arch = json.loads((folder / "plans.json").read_text())["configurations"]["2d"]["architecture"]["arch_kwargs"]
    assert arch["features_per_stage"] == [32, 64, 128, 256, 480, 480, 480, 480, 480]
    assert arch["strides"] == [[1, 1]] + [[2, 2]] * 7 + [[2, 1]]
    assert arch["n_conv_per_stage"] == [2] * 9 and arch["n_conv_per_stage_decoder"] == [2] * 8
    assert arch["norm_op_kwargs"] == {"eps": 1e-5, "affine": True}
    assert arch["nonlin_kwargs"]["negative_slope"] == 0.01
    assert max_logit_difference(trainer.network, v2_fold_network(folder, 0), (256, 256)) <= 1e-4


def v1_prediction(trainer, image: np.ndarray, folder: Path, *, step_size: float, mirroring: bool) -> np.ndarray:
    """v1's class map of a grey scene: its own preprocessing and ``predict_2D`` (sliding window with Gaussian
    weighting), put back into the scene's pixel grid as v1's export does (0 outside the non-zero crop)."""
    import SimpleITK as sitk

    nifti = sitk.GetImageFromArray(image[None].astype(np.float32))  # as the authors converted PNGs for v1
    nifti.SetSpacing((1.0, 1.0, 999.0))
    sitk.WriteImage(nifti, str(folder / "scene_0000.nii.gz"))
    data, _, properties = trainer.preprocess_patient([str(folder / "scene_0000.nii.gz")])
    crop, _ = trainer.network.predict_2D(data[:, 0], do_mirroring=mirroring, mirror_axes=(0, 1),
                                         use_sliding_window=True, step_size=step_size,
                                         patch_size=tuple(trainer.patch_size), use_gaussian=True,
                                         mixed_precision=False, verbose=False)
    classes = np.zeros(image.shape, np.uint8)
    (_, _), (row0, row1), (col0, col1) = properties["crop_bbox"]
    classes[row0:row1, col0:col1] = crop
    return classes


@pytest.fixture(scope="module")
def real_scene(caffe_256) -> np.ndarray:
    from nnunet_glacier.data.caffe import read_grey

    return read_grey(min((caffe_256 / "sar_images" / "test").glob("*.png")))


def test_detect_tiles_a_real_scene_as_v1_does(small_v1, real_scene, tmp_path):
    """Preprocessing, cropping, padding, tiling and un-cropping equal v1's: with tiles that do not overlap and
    no mirroring, the class maps are the same."""
    from nnunet_glacier.nnunet.predict import GlacierPredictor

    model_dir, trainers = small_v1
    v1_map = v1_prediction(trainers[0], real_scene, tmp_path, step_size=1.0, mirroring=False)
    folder = import_v1_model(model_dir, name="small", folds=[0])
    ours = GlacierPredictor(folder, [0], device="cpu", step_size=1.0, mirroring=False).predict(real_scene)
    assert np.bincount(v1_map.ravel(), minlength=5).max() < 0.9 * v1_map.size  # a real map, not one class
    assert (ours.class_maps["fused"] == v1_map).mean() >= 0.999


@pytest.mark.slow  # a real scene predicted by v1 and by us, each with mirroring and overlapping tiles
def test_detect_at_the_papers_settings_gives_v1s_class_maps(small_v1, real_scene, tmp_path):
    """Step 0.5 with Gaussian weighting and mirroring: an imported model averages as v1 did.

    v1 averages the softmax probabilities of the mirrored copies and overlapping tiles, nnU-Net v2 their
    logits (which changed 8.7 % of the pixels with these random weights).
    """
    from nnunet_glacier.nnunet.predict import GlacierPredictor

    model_dir, trainers = small_v1
    v1_map = v1_prediction(trainers[0], real_scene, tmp_path, step_size=0.5, mirroring=True)
    folder = import_v1_model(model_dir, name="small", folds=[0])
    ours = GlacierPredictor(folder, [0], device="cpu").predict(real_scene).class_maps["fused"]
    assert (ours == v1_map).mean() >= 0.999


def test_cli_imports_and_detect_runs_with_the_name(small_v1, caffe_256, tmp_path, capsys):
    model_dir, _ = small_v1
    archive = tmp_path / "v1_model.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in model_dir.rglob("*"):
            out.write(path, str(Path(TASK) / V1_FOLDER / path.relative_to(model_dir)))
    assert main(["model", "import-v1", str(archive), "--name", "paper-fused", "--folds", "0"]) == 0
    assert "detect -m paper-fused" in capsys.readouterr().out
    scene = min((caffe_256 / "sar_images" / "test").glob("*.png"))
    out = tmp_path / "detected"
    assert main(["detect", "-m", "paper-fused", "-i", str(scene), "-o", str(out), "--device", "cpu", "--no-mirroring",
                 "--default-pixel-size", "100"]) == 0
    assert (out / "fronts.gpkg").is_file() and (out / f"{scene.stem}_zones.png").is_file()


def test_model_card_says_where_the_model_came_from(small_v1):
    import json

    model_dir, _ = small_v1
    folder = import_v1_model(model_dir, name="carded")
    card = json.loads((folder / "model_card.json").read_text())
    assert card["experiment"]["name"] == "fused" and card["tasks"] == ["fused"] and card["folds"] == [0, 1]
    assert card["imported_from"]["format"] == "nnU-Net v1" and card["imported_from"]["task"] == TASK
    assert set(card["imported_from"]["sha256"]) == {"plans.pkl", *(f"fold_{k}/model_final_checkpoint.model{s}"
                                                                   for k in (0, 1) for s in ("", ".pkl"))}
    assert any("Zenodo record 7837300" in fact for fact in card["imported_from"]["known"])
    assert "not known" in (folder / "model_card.md").read_text()
    assert import_v1_model(model_dir, name="carded") == folder  # the same files again: nothing to do
    with pytest.raises(ModelError, match="another model is installed as 'carded'"):
        import_v1_model(model_dir, name="carded", folds=[1])


# --- what cannot be imported ---------------------------------------------------------------------------------------

def copy_model(small_v1, tmp_path: Path) -> Path:
    model_dir, _ = small_v1
    copy = tmp_path / TASK / V1_FOLDER
    shutil.copytree(model_dir, copy)
    return copy


def test_a_fold_without_its_pkl_is_named(small_v1, tmp_path):
    model_dir = copy_model(small_v1, tmp_path)
    (model_dir / "fold_1" / "model_final_checkpoint.model.pkl").unlink()
    with pytest.raises(ModelError, match=r"fold_1/model_final_checkpoint\.model\.pkl: missing"):
        import_v1_model(model_dir)


def test_a_zip_without_a_fold_folder_is_named(tmp_path, glacier_home, capsys):
    archive = tmp_path / "not_a_model.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("Task500_Glacier_zonefronts/readme.txt", "no model here")
    with pytest.raises(ModelError, match=r"not_a_model\.zip: no fold_K/model_final_checkpoint\.model"):
        import_v1_model(archive)
    assert main(["model", "import-v1", str(archive)]) == 1
    assert "not_a_model.zip: no fold_K/model_final_checkpoint.model" in capsys.readouterr().err
    assert not (glacier_home / "models").exists() or not any((glacier_home / "models").iterdir())


def edit_info(path: Path, edit) -> None:
    """Rewrite a v1 checkpoint's .pkl after ``edit(info)`` (the test's own data: plain pickle is fine here)."""
    info = pickle.loads(path.read_bytes())
    edit(info)
    path.write_bytes(pickle.dumps(info))


def test_a_multi_task_fork_model_is_refused(small_v1, tmp_path):
    model_dir = copy_model(small_v1, tmp_path)
    edit_info(model_dir / "fold_0" / "model_final_checkpoint.model.pkl",
              lambda info: info["plans"].update(num_classes=[3, 1]))
    with pytest.raises(ModelError, match=r"fold_0/model_final_checkpoint\.model\.pkl: num_classes \[3, 1\].*"
                                         r"multi-task"):
        import_v1_model(model_dir, folds=[0])


def test_a_model_that_is_not_fused_is_refused(tmp_path):
    model_dir = tmp_path / TASK / V1_FOLDER
    write_v1_model(v1_plans(tmp_path / "planning", (64, 64), num_classes=3), model_dir)  # a zone model
    with pytest.raises(ModelError, match=r"fold_0/model_final_checkpoint\.model: 4 output classes .*only "
                                         r"fused-label models \(5 classes"):
        import_v1_model(model_dir)


def test_a_3d_model_is_refused(small_v1, tmp_path):
    from nnunet.network_architecture.generic_UNet import Generic_UNet

    model_dir = copy_model(small_v1, tmp_path)
    network = Generic_UNet(1, 8, 5, 2, 2, 2, torch.nn.Conv3d, torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True},
                           torch.nn.Dropout3d, {"p": 0, "inplace": True}, torch.nn.LeakyReLU,
                           {"negative_slope": 1e-2, "inplace": True}, True, False, lambda x: x, None,
                           [[2, 2, 2]] * 2, [[3, 3, 3]] * 3, False, True, True)  # as nnUNetTrainerV2 builds 3-D
    torch.save({"epoch": 1, "state_dict": network.state_dict()}, model_dir / "fold_0" / "model_final_checkpoint.model")
    with pytest.raises(ModelError, match=r"fold_0/model_final_checkpoint\.model: a 3-D model"):
        import_v1_model(model_dir, folds=[0])


def test_another_trainer_is_refused(small_v1, tmp_path):
    model_dir = copy_model(small_v1, tmp_path)
    edit_info(model_dir / "fold_0" / "model_final_checkpoint.model.pkl",
              lambda info: info.update(name="nnUNetTrainerV2_BN"))
    with pytest.raises(ModelError, match=r"trainer 'nnUNetTrainerV2_BN': only nnUNetTrainerV2"):
        import_v1_model(model_dir, folds=[0])


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickles_and_checkpoints_never_run_code(small_v1, tmp_path):
    model_dir = copy_model(small_v1, tmp_path)
    marker = tmp_path / "code_ran"
    edit_info(model_dir / "fold_0" / "model_final_checkpoint.model.pkl",
              lambda info: info.update(extra=_RunsCode(marker)))
    with pytest.raises(ModelError, match=r"model\.pkl: not a readable pickle of plain data \(refused to load "
                                         r"posix\.system"):
        import_v1_model(model_dir, folds=[0])
    checkpoint = model_dir / "fold_1" / "model_final_checkpoint.model"
    torch.save({"epoch": 1, "state_dict": {}, "plot_stuff": _RunsCode(marker)}, checkpoint)
    with pytest.raises(ModelError, match=r"fold_1/model_final_checkpoint\.model: not a readable nnU-Net v1 "
                                         r"checkpoint"):
        import_v1_model(model_dir, folds=[1])
    assert not marker.exists()
