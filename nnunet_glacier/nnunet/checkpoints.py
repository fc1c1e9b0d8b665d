"""Training that survives a kill: a readable checkpoint to resume from, and no data-loader process left behind.

A kill while nnU-Net writes a checkpoint leaves it cut short. Our trainers
write checkpoints atomically (``nnUNetTrainerGlacier.save_checkpoint``), but
nnU-Net's stock trainer (the baselines) does not, and a file may be damaged
otherwise. :func:`usable_checkpoint` picks the checkpoint a re-run resumes
from as nnU-Net's ``maybe_load_checkpoint`` does (final, else latest, else
best) among those that can be read, and moves a damaged one aside
(``<name>.corrupt``) so that nnU-Net's loader, which only looks at the names,
skips it too.

nnU-Net's data augmentation runs in worker processes when
``nnUNet_n_proc_DA`` > 0 (batchgenerators' ``NonDetMultiThreadedAugmenter``,
``multiprocessing.Process`` with the default start method: fork on Linux).
They run until told to stop, so a training killed with SIGKILL (which runs
no clean-up) would leave them behind. :func:`end_forked_children_with_process`
makes every process forked from the main thread from then on receive
SIGKILL when its parent ends (Linux ``PR_SET_PDEATHSIG``), however the
parent ends. Processes started with spawn (nnU-Net's validation and export
pools) do not fork Python and are not covered; they end by themselves when
their parent's pipes close.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import torch

#: nnU-Net's order of preference when it resumes a training (``maybe_load_checkpoint``).
RESUME_ORDER = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")
#: Suffix added to a checkpoint that cannot be read when it is moved aside.
CORRUPT_SUFFIX = ".corrupt"

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def read_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be loaded as nnU-Net loads it (``torch.load`` on the CPU), or None if it can."""
    try:
        torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as error:  # a damaged file fails in many ways (OSError, RuntimeError, EOFError, pickle errors)
        return f"{type(error).__name__}: {error}"
    return None


def usable_checkpoint(fold_dir: Path) -> Path | None:
    """The checkpoint of ``fold_dir`` a re-run resumes from, in nnU-Net's order, skipping unreadable ones.

    Each checkpoint that cannot be read is renamed to ``<name>.corrupt``
    (replacing an older one) with a warning naming it and what is used
    instead. Returns None (a fresh start) when no checkpoint is readable.
    """
    damaged = []
    chosen = None
    for name in RESUME_ORDER:
        checkpoint = fold_dir / name
        if checkpoint.is_file():
            problem = read_problem(checkpoint)
            if problem is None:
                chosen = checkpoint
                break
            damaged.append((checkpoint, problem))
    instead = f"resuming from {chosen.name}" if chosen else "no readable checkpoint left: training starts afresh"
    for checkpoint, problem in damaged:
        aside = checkpoint.with_name(checkpoint.name + CORRUPT_SUFFIX)
        os.replace(checkpoint, aside)
        warnings.warn(f"{checkpoint}: cannot be read, cut short or damaged ({problem}); moved to {aside.name}, "
                      f"{instead}", stacklevel=2)
    return chosen


# What the forking thread records just before a fork, for the child: the parent's PID and whether the fork
# is from its main thread. Thread-local, so that two threads forking at once do not mix their records.
_fork = threading.local()
_registered = False


def _remember_parent() -> None:
    _fork.parent = os.getpid()
    _fork.from_main_thread = threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In a forked child: ask for SIGKILL when the parent ends; exit at once if it has ended already.

    Only for forks from the parent's main thread: the kernel signals when the
    forking *thread* ends, which for any other thread may be long before the
    parent process does.
    """
    if not _fork.from_main_thread:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not allowed here (e.g. a seccomp sandbox): the child lives on as it would without us
    if os.getppid() != _fork.parent:  # the parent died between fork and prctl
        os._exit(1)


def end_forked_children_with_process() -> None:
    """From now on, processes forked from this process's main thread are killed when their parent ends (Linux).

    Covers nnU-Net's data augmentation workers, so that a killed training
    leaves no process behind. It holds for the rest of the process's life (a
    fork hook cannot be removed), for later steps of the same run too.
    Idempotent; does nothing on other systems.
    """
    global _registered
    if _registered or not sys.platform.startswith("linux"):
        return
    os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)
    _registered = True
