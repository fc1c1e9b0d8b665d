"""Export of a CaFFe root to an nnU-Net raw dataset, checked file by file and by nnU-Net itself."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CAFFE_256_PIXEL_SIZE_M

from nnunet_glacier.data import caffe
from nnunet_glacier.data.experiments import Experiment, get_experiment
from nnunet_glacier.data.synthetic import generate_caffe
from nnunet_glacier.errors import InputError
from nnunet_glacier.nnunet.export import CHANNEL_SUFFIX, export_dataset

CLI = Path(sys.executable).with_name("nnunet-glacier")


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def export_quietly(root: Path, experiment: Experiment, raw: Path, **kwargs) -> Path:
    return export_dataset(root, experiment, raw, progress=False, **kwargs)


@pytest.fixture(scope="module", params=["fused", "mtl_boundary"])
def exported(request, tmp_path_factory, synthetic_root) -> tuple[Experiment, Path, dict[str, str]]:
    """(experiment, dataset folder, input hashes before the export), exported with two worker processes."""
    experiment = get_experiment(request.param)
    before = file_hashes(synthetic_root)
    folder = export_quietly(synthetic_root, experiment, tmp_path_factory.mktemp("raw"), num_workers=2)
    return experiment, folder, before


def test_folder_layout(exported, synthetic_root):
    experiment, folder, _ = exported
    samples = caffe.discover(synthetic_root)
    train = sorted(s.stem for s in samples if s.split == "train")
    test = sorted(s.stem for s in samples if s.split == "test")
    assert folder.name == experiment.dataset
    assert sorted(p.name for p in folder.iterdir()) == ["dataset.json", "imagesTr", "imagesTs", "labelsTr"]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"{s}{CHANNEL_SUFFIX}.png" for s in train]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [f"{s}.png" for s in train]
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"{s}{CHANNEL_SUFFIX}.png" for s in test]


def test_dataset_json(exported, synthetic_root):
    experiment, folder, _ = exported
    samples = caffe.discover(synthetic_root)
    description = json.loads((folder / "dataset.json").read_text())
    assert description["labels"] == experiment.label_names()
    assert description["numTraining"] == 8
    assert description["channel_names"] == {"0": "SAR"} and description["file_ending"] == ".png"
    block = description["caffe"]
    assert block["source"] == str(synthetic_root.resolve())
    assert block["tasks"] == list(experiment.tasks) and block["task_classes"] == list(experiment.task_classes)
    assert block["label_settings"]["front_dilation_px"] == experiment.labels.front_dilation_px
    assert block["pixel_size_m"] == {s.stem: s.name.resolution_m for s in samples}
    # the record's writer and reader live in the data layer (evaluate reads it without export)
    assert caffe.recorded_pixel_sizes(folder) == caffe.pixel_size_record(samples) == block["pixel_size_m"]
    assert block["test_cases"] == sorted(s.stem for s in samples if s.split == "test")


def test_labels_and_images_match_the_inputs(exported, synthetic_root):
    experiment, folder, _ = exported
    for sample in caffe.discover(synthetic_root):
        loaded = caffe.load_sample(sample)
        images = "imagesTr" if sample.split == "train" else "imagesTs"
        np.testing.assert_array_equal(read_png(folder / images / f"{sample.stem}{CHANNEL_SUFFIX}.png"), loaded.image)
        if sample.split == "train":
            label = read_png(folder / "labelsTr" / f"{sample.stem}.png")
            np.testing.assert_array_equal(label, experiment.build_label(loaded.zones, loaded.front))
            assert len(np.unique(label)) > 4


def test_inputs_are_unchanged(exported, synthetic_root):
    assert file_hashes(synthetic_root) == exported[2]


def test_rerun_is_byte_identical_and_removes_stale_cases(exported, synthetic_root):
    experiment, folder, _ = exported
    before = file_hashes(folder)
    stale = [folder / "imagesTr" / f"Crane_1990-01-01_ERS_20_1_001{CHANNEL_SUFFIX}.png",
             folder / "labelsTr" / "Crane_1990-01-01_ERS_20_1_001.png",
             folder / "imagesTs" / f"COL_1990-01-01_ERS_20_1_001{CHANNEL_SUFFIX}.png"]
    for path in stale:
        path.write_bytes(b"stale")
    export_quietly(synthetic_root, experiment, folder.parent, num_workers=1)
    assert file_hashes(folder) == before
    assert not any(path.exists() for path in stale)


def test_dataset_id_clash_names_the_other_dataset(tmp_path, synthetic_root):
    experiment = get_experiment("fused")
    other = tmp_path / f"Dataset{experiment.dataset_id:03d}_SomethingElse"
    other.mkdir()
    with pytest.raises(InputError, match="is taken by another dataset") as error:
        export_quietly(synthetic_root, experiment, tmp_path)
    assert error.value.path == other
    assert not (tmp_path / experiment.dataset).exists()


def test_bad_file_in_a_worker_process_names_the_file(tmp_path):
    root = tmp_path / "caffe"
    image, *_ = generate_caffe(root, n_train=2, n_test=0, size=(32, 32))
    image.write_bytes(image.read_bytes()[:50])
    with pytest.raises(InputError, match="unreadable or truncated") as error:
        export_quietly(root, get_experiment("fused"), tmp_path / "raw", num_workers=2)
    assert error.value.path == image
    assert not (tmp_path / "raw" / get_experiment("fused").dataset / "dataset.json").exists()


def test_a_failing_re_export_keeps_the_previous_export(tmp_path):
    """A corrupt image found on re-export: the error names it, the good export stays byte for byte, and
    nothing of the failed attempt is left beside it."""
    root = tmp_path / "caffe"
    images = generate_caffe(root, n_train=3, n_test=1, size=(32, 32))
    experiment = get_experiment("fused")
    folder = export_quietly(root, experiment, tmp_path / "raw", num_workers=1)
    before = file_hashes(folder)
    corrupt = images[0]  # a training image
    corrupt.write_bytes(corrupt.read_bytes()[:50])
    with pytest.raises(InputError, match="unreadable or truncated") as error:
        export_quietly(root, experiment, tmp_path / "raw", num_workers=2)
    assert error.value.path == corrupt
    assert file_hashes(folder) == before
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [folder.name]


def test_a_root_without_training_images_is_refused(tmp_path):
    root = tmp_path / "caffe"
    generate_caffe(root, n_train=0, n_test=1, size=(32, 32))
    with pytest.raises(InputError, match="no training images"):
        export_quietly(root, get_experiment("fused"), tmp_path / "raw")


def test_export_real_sample_with_pixel_size_override(caffe_256, tmp_path):
    experiment = get_experiment("fused")
    folder = export_quietly(caffe_256, experiment, tmp_path, pixel_size=CAFFE_256_PIXEL_SIZE_M, num_workers=2)
    description = json.loads((folder / "dataset.json").read_text())
    assert description["numTraining"] == len(list((folder / "labelsTr").glob("*.png"))) == 69
    assert len(list((folder / "imagesTs").glob("*.png"))) == 77
    assert set(description["caffe"]["pixel_size_m"].values()) == {CAFFE_256_PIXEL_SIZE_M}
    label = read_png(next((folder / "labelsTr").glob("*.png")))
    assert label.shape == (256, 256) and set(np.unique(label)) <= set(range(5)) and (label == 4).any()


def nnunet_env(work: Path) -> dict[str, str]:
    """The environment with nnU-Net's three folders below ``work``.

    ``nnUNet_n_proc_DA`` is 1: nnU-Net's planner sets torch's thread count
    from it and fails for the 0 that conftest.py sets for in-process training.
    """
    return {**os.environ, "nnUNet_raw": str(work / "nnUNet_raw"), "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
            "nnUNet_results": str(work / "nnUNet_results"), "nnUNet_n_proc_DA": "1"}


@pytest.mark.slow  # nnU-Net's own planning and preprocessing in a process of its own
def test_nnunet_accepts_the_export(tmp_path, synthetic_root):
    experiment = get_experiment("fused")
    export_quietly(synthetic_root, experiment, tmp_path / "nnUNet_raw", num_workers=1)
    command = [str(Path(sys.executable).with_name("nnUNetv2_plan_and_preprocess")), "-d", str(experiment.dataset_id),
               "-c", "2d", "--verify_dataset_integrity", "-np", "1", "-npfp", "1", "--no_pbar"]
    result = subprocess.run(command, env=nnunet_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plans = json.loads((tmp_path / "nnUNet_preprocessed" / experiment.dataset / "nnUNetPlans.json").read_text())
    assert "2d" in plans["configurations"]


def test_cli_export(tmp_path, synthetic_root):
    command = [str(CLI), "export", "--experiment", "fused", "--data", str(synthetic_root), "--work", str(tmp_path),
               "--workers", "1"]
    result = subprocess.run(command, env=nnunet_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nnUNet_raw" / get_experiment("fused").dataset / "dataset.json").is_file()


def test_cli_export_of_a_bad_root_fails_naming_it(tmp_path):
    missing = tmp_path / "no_such_caffe"
    command = [str(CLI), "export", "--experiment", "fused", "--data", str(missing), "--work", str(tmp_path)]
    result = subprocess.run(command, env=nnunet_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert str(missing) in result.stderr and "Traceback" not in result.stderr
