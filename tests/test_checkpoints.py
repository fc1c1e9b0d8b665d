"""A killed training can be run again: atomic checkpoints, fallback to a readable one, no orphaned data loaders.

One module-scoped work directory over the session's exported and planned
``stl_zone`` dataset (tiny profile, tests/trained_models.py), with results of its
own; each training test trains its own fold of it through ``nnunet-glacier
train`` (one iteration per epoch), the kill test in a process of its own killed
with SIGKILL. The tests in this process compare checkpoints only, so their trainings
skip nnU-Net's final validation.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from trained_models import PROFILE, interrupted_at_epoch, without_final_validation

from nnunet_glacier.cli import main
from nnunet_glacier.data.experiments import get_experiment
from nnunet_glacier.nnunet.checkpoints import usable_checkpoint
from nnunet_glacier.nnunet.training import model_folder, train_fold
from nnunet_glacier.nnunet.workspace import Workspace

EXPERIMENT = "stl_zone"
#: ``nnunet-glacier`` in a process of its own, in the tests' runtime (tests/nnunet_runtime.py: one torch thread,
#: nnU-Net's validation pools forked from a server).
CLI = [sys.executable, str(Path(__file__).with_name("nnunet_runtime.py"))]
#: Epochs of the in-process trainings: interrupted at the start of epoch 2, they resume for two (the last one
#: writes the final checkpoint instead of checkpoint_latest).
EPOCHS = 4
#: Seconds a subprocess may take.
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_runs) -> Path:
    """A work directory over the session's planned ``stl_zone`` dataset, with a results folder of its own."""
    return tiny_runs.own_results(tmp_path_factory.mktemp("checkpoints") / "work", EXPERIMENT)


@pytest.fixture
def in_process(work: Path):
    """The module's workspace activated; its trainings in this process skip nnU-Net's final validation."""
    Workspace.from_work_dir(work).activate()
    with without_final_validation():
        yield


def train_args(work: Path, fold: int, epochs: int = EPOCHS) -> list[str]:
    return ["train", "--experiment", EXPERIMENT, "--profile", PROFILE, "--fold", str(fold), "--device", "cpu",
            "--work", str(work), "--max-epochs", str(epochs), "--iterations", "1"]


def fold_dir(work: Path, fold: int) -> Path:
    return model_folder(Workspace.from_work_dir(work), get_experiment(EXPERIMENT, PROFILE)) / f"fold_{fold}"


def temporaries(folder: Path) -> list[Path]:
    """What an interrupted atomic write leaves (see nnunet_glacier.utilities.atomic)."""
    return sorted(folder.glob(".*.tmp*"))


def final_checkpoint(folder: Path) -> dict:
    return torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)


def interrupted_training(work: Path, fold: int) -> float:
    """Train ``fold`` until the start of epoch 2 (then Ctrl-C); returns the time of the interruption."""
    with interrupted_at_epoch(2):
        assert main(train_args(work, fold)) == 130
    assert (fold_dir(work, fold) / "checkpoint_latest.pth").is_file()
    return time.time()


def descendants(pid: int) -> set[int]:
    """The PIDs of every process below ``pid`` (children of all its threads, recursively)."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found |= {int(child) for child in children.read_text().split()}
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    for child in list(found):
        found |= descendants(child)
    return found


def running(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (ended, waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def test_usable_checkpoint_skips_unreadable_checkpoints_in_nnunets_order_and_moves_them_aside(tmp_path):
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth"):
        torch.save({"network_weights": {"w": torch.arange(1000.0)}, "name": name}, tmp_path / name)
    assert usable_checkpoint(tmp_path) == tmp_path / "checkpoint_final.pth"  # all readable: nnU-Net's choice

    final = tmp_path / "checkpoint_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    with pytest.warns(UserWarning, match=f"{final}: cannot be read.*resuming from checkpoint_latest.pth"):
        assert usable_checkpoint(tmp_path) == tmp_path / "checkpoint_latest.pth"
    assert not final.exists() and (tmp_path / "checkpoint_final.pth.corrupt").is_file()

    for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
        (tmp_path / name).write_bytes(b"")
    with pytest.warns(UserWarning, match="training starts afresh") as record:
        assert usable_checkpoint(tmp_path) is None
    assert len(record) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_best.pth.corrupt", "checkpoint_final.pth.corrupt", "checkpoint_latest.pth.corrupt"]
    assert usable_checkpoint(tmp_path) is None  # nothing left to try, nothing to warn about


FORKING_PARENT = textwrap.dedent("""
    import multiprocessing, sys, time
    from nnunet_glacier.nnunet.checkpoints import end_forked_children_with_process
    if sys.argv[1] == "bound":
        end_forked_children_with_process()
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("bound", [True, False])
def test_forked_children_die_with_their_killed_parent_only_when_bound(bound):
    """The mechanism alone, and a control: without it a daemon child outlives a SIGKILLed parent."""
    parent = subprocess.Popen([sys.executable, "-c", FORKING_PARENT, "bound" if bound else "free"],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert running(child)
        parent.kill()
        parent.wait(timeout=10)
        assert wait_until(lambda: not running(child), timeout=3 if bound else 1) == bound  # the control: 1 s
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if not bound and running(child):
            os.kill(child, signal.SIGKILL)


def test_a_training_killed_with_sigkill_leaves_no_data_loader_behind_and_resumes(work, tmp_path):
    """A real ``nnunet-glacier train`` with two augmentation workers, killed after its first checkpoint (of
    three epochs: the kill comes while epoch 1 runs), then run again to the end (final validation included)."""
    epochs = 3
    folder = fold_dir(work, 0)
    env = {**os.environ, "nnUNet_n_proc_DA": "2"}
    command = [*CLI, *train_args(work, 0, epochs)]
    with open(tmp_path / "killed.log", "w") as log:
        training = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            def checkpointed_with_workers() -> bool:
                assert training.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                return (folder / "checkpoint_latest.pth").is_file() and len(descendants(training.pid)) >= 2

            assert wait_until(checkpointed_with_workers, timeout=TIMEOUT_S)
            workers = descendants(training.pid)
            training.send_signal(signal.SIGKILL)
            killed_at = time.time()
            training.wait(timeout=10)
        finally:
            training.kill()
            training.wait(timeout=10)
    assert wait_until(lambda: not any(running(pid) for pid in workers), timeout=5), \
        f"data-loader processes outlived the killed training: {sorted(p for p in workers if running(p))}"
    assert not (folder / "checkpoint_final.pth").exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    checkpoint = final_checkpoint(folder)
    assert checkpoint["current_epoch"] == epochs
    assert checkpoint["logging"]["epoch_start_timestamps"][0] < killed_at  # resumed, not restarted
    assert temporaries(folder) == []


def test_a_cut_latest_checkpoint_falls_back_to_the_best_one_with_a_warning(work, in_process, capsys):
    folder = fold_dir(work, 1)
    interrupted_at = interrupted_training(work, 1)
    latest = folder / "checkpoint_latest.pth"
    assert (folder / "checkpoint_best.pth").is_file()
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # what a kill while saving leaves
    capsys.readouterr()

    assert main(train_args(work, 1)) == 0
    err = capsys.readouterr().err
    assert f"warning: {latest}: cannot be read" in err and "resuming from checkpoint_best.pth" in err
    assert "Traceback" not in err
    assert (folder / "checkpoint_latest.pth.corrupt").is_file()
    checkpoint = final_checkpoint(folder)
    assert checkpoint["current_epoch"] == EPOCHS
    assert checkpoint["logging"]["epoch_start_timestamps"][0] < interrupted_at  # resumed, not restarted


def test_a_save_cut_short_keeps_the_previous_checkpoint_and_leaves_no_temporary(work, in_process, monkeypatch,
                                                                               capsys):
    folder = fold_dir(work, 2)
    interrupted_training(work, 2)
    latest = folder / "checkpoint_latest.pth"
    previous = latest.read_bytes()
    save = torch.save

    def save_cut_short(checkpoint: dict, path, *args, **kwargs) -> None:
        save(checkpoint, path, *args, **kwargs)
        if "checkpoint_latest" in str(path):
            Path(path).write_bytes(Path(path).read_bytes()[: Path(path).stat().st_size // 2])
            raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save_cut_short)
        with pytest.raises(OSError, match="No space left"):
            train_fold(get_experiment(EXPERIMENT, PROFILE), 2, Workspace.from_work_dir(work).activate(),
                       device="cpu", max_epochs=EPOCHS, iterations=1)
    assert latest.read_bytes() == previous
    assert temporaries(folder) == []

    capsys.readouterr()
    assert main(train_args(work, 2)) == 0
    assert "cannot be read" not in capsys.readouterr().err
    assert final_checkpoint(folder)["current_epoch"] == EPOCHS
