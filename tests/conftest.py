"""Shared fixtures: a synthetic CaFFe root (generated once per session) and the real caffe_256 sample."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# nnU-Net reads these when first imported: single-process data loading and export keep CPU tests lean
os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_def_n_proc", "1")

CAFFE_256 = Path(os.environ.get("CAFFE_256", Path(__file__).resolve().parents[2] / "shared" / "data" / "caffe_256"))
CAFFE_256_PIXEL_SIZE_M = 100.0  # a nominal size for the 256 px copies; the names' resolutions do not hold


@pytest.fixture(scope="session")
def caffe_256() -> Path:
    """The real CaFFe sample (../shared/data/caffe_256, or $CAFFE_256); skipped when absent."""
    if not (CAFFE_256 / "sar_images").is_dir():
        pytest.skip(f"real CaFFe sample not found at {CAFFE_256} (set CAFFE_256 to its path)")
    return CAFFE_256


@pytest.fixture
def glacier_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$NNUNET_GLACIER_HOME`` in a fresh folder: installed models and downloads never touch the user's cache."""
    monkeypatch.setenv("NNUNET_GLACIER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic CaFFe root: 8 train and 4 test scenes of 128 x 128 px, with bounding boxes."""
    from nnunet_glacier.data.synthetic import generate_caffe

    root = tmp_path_factory.mktemp("synthetic_caffe")
    generate_caffe(root, n_train=8, n_test=4, size=(128, 128), seed=0, with_bounding_boxes=True)
    return root


#: The README's demo at its smallest size, with two folds so that ensembles (and their agreement) are real;
#: seeded (the scenes and the training), so the tiny model and every number from it are the same each run.
DEMO_ARGS = ["--n-train", "12", "--n-test", "3", "--size", "128", "--max-epochs", "10", "--iterations", "25",
             "--folds", "0", "1", "--device", "cpu", "--seed", "1"]


@pytest.fixture(scope="session")
def demo_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder after ``nnunet-glacier demo`` at :data:`DEMO_ARGS`: a tiny trained fused-label model
    (two folds), its predictions, evaluation and report (a few minutes on two CPU cores)."""
    from nnunet_glacier.cli import main

    work = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--work", str(work), *DEMO_ARGS]) == 0
    return work


@pytest.fixture(scope="session")
def demo_model(demo_work: Path) -> Path:
    """The demo's trained model folder (an nnU-Net results folder with fold_0/ and fold_1/)."""
    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet.training import model_folder
    from nnunet_glacier.nnunet.workspace import Workspace

    return model_folder(Workspace.from_work_dir(demo_work), get_experiment("fused", "demo"))
