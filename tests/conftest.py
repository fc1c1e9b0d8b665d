"""Shared fixtures: synthetic CaFFe roots, the real caffe_256 sample, the session's planned tiny datasets
(tests/trained_models.py) and the demo's trained model; and the ``slow`` and ``real_data`` markers (registered
in pyproject.toml), given here to every test that uses one of those fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import nnunet_runtime
import pytest

# nnU-Net reads these when first imported: single-process data loading and export keep CPU tests lean
os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_def_n_proc", "1")
# one torch thread, nnU-Net's pools forked from one server, a lighter fingerprint, no progress plots (nnunet_runtime.py)
nnunet_runtime.apply()

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


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory):
    """One run for the session over a 64 px synthetic root; each experiment's dataset is exported and planned
    (tiny profile) on first use (:class:`trained_models.TinyRuns`)."""
    from trained_models import TINY_DATA, TinyRuns

    from nnunet_glacier.data.synthetic import generate_caffe

    data = tmp_path_factory.mktemp("tiny_caffe")
    generate_caffe(data, **TINY_DATA)
    return TinyRuns(tmp_path_factory.mktemp("tiny_runs"), data)


#: The README's demo (its own profile) at its smallest: 6 training and 3 test scenes of the demo profile's patch
#: size, one epoch of one iteration per fold, two folds so that ensembles (and their agreement) are real; seeded,
#: so the model and every number from it are the same each run. A model this short need not find a front: the
#: tests assert what the code guarantees, not what the model learnt.
DEMO_ARGS = ["--n-train", "6", "--n-test", "3", "--size", "128", "--max-epochs", "1", "--iterations", "1",
             "--folds", "0", "1", "--device", "cpu", "--seed", "1"]


@pytest.fixture(scope="session")
def demo_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder after ``nnunet-glacier demo`` at :data:`DEMO_ARGS`: a trained fused-label model (two
    folds), its predictions, evaluation and report."""
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


#: Fixtures that train networks or plan datasets (their users are ``slow``), and the one that reads real data.
SLOW_FIXTURES = {"tiny_runs", "demo_work", "demo_model"}
REAL_DATA_FIXTURES = {"caffe_256"}


#: The files that take longest (they train or plan), longest first: pytest-xdist hands the files to its workers
#: in this order, the others after them (pyproject.toml: ``--dist loadgroup --no-loadscope-reorder``), so that
#: the long ones do not start last and the workers finish together. Scheduling only: any order gives the same results.
LONGEST_FIRST = ("test_training.py", "test_reproduce.py", "test_checkpoints.py", "test_detect.py", "test_demo.py",
                 "test_temporal.py", "test_predict.py", "test_export.py", "test_import_v1.py")
#: Files whose tests share a session fixture too costly to make on two workers (the demo's model): one worker.
SAME_WORKER = {"test_demo.py": "demo_model", "test_detect.py": "demo_model"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a slow or real-data fixture (directly or through another fixture); give each
    test its file as pytest-xdist group (:data:`SAME_WORKER`: a shared one) and put the files of
    :data:`LONGEST_FIRST` first."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if used & REAL_DATA_FIXTURES:
            item.add_marker(pytest.mark.real_data)
        item.add_marker(pytest.mark.xdist_group(SAME_WORKER.get(item.path.name, item.path.name)))
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
               else len(LONGEST_FIRST))
