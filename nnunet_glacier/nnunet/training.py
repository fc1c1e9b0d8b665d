"""Training runs: where a model lives, whether a fold is trained, the device, and training one fold.

:func:`train_fold` trains one fold through nnU-Net's own machinery
(``get_trainer_from_args``, checkpoint resumption, final validation) with the
experiment's trainer from :mod:`nnunet_glacier.nnunet.trainers`; the
trainers are found by name through ``nnUNet_extTrainer``
(:data:`nnunet_glacier.nnunet.workspace.TRAINER_DIR`), as ``nnUNetv2_train -tr NAME`` finds them.
A killed training can be run again: it resumes from the newest readable
checkpoint and leaves no data-loader process behind
(:mod:`nnunet_glacier.nnunet.checkpoints`).
"""
from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

import numpy as np
import torch

from nnunet_glacier.data.experiments import Experiment
from nnunet_glacier.nnunet.checkpoints import end_forked_children_with_process, usable_checkpoint
from nnunet_glacier.nnunet.folds import Fold, fold_member
from nnunet_glacier.nnunet.workspace import Workspace
from nnunet_glacier.utilities.atomic import remove_stale_temporaries


def model_folder(workspace: Workspace, experiment: Experiment) -> Path:
    """nnU-Net's results folder of an experiment: ``<results>/<dataset>/<trainer>__nnUNetPlans__<config>``."""
    from nnunet_glacier.nnunet.plans import PLANS_NAME

    return workspace.results / experiment.dataset / f"{experiment.trainer}__{PLANS_NAME}__{experiment.configuration}"


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def is_trained(workspace: Workspace, experiment: Experiment, fold: Fold) -> bool:
    """True if the fold has its final checkpoint and its validation summary."""
    fold_dir = model_folder(workspace, experiment) / fold_member(fold)
    return (fold_dir / "checkpoint_final.pth").is_file() and (fold_dir / "validation" / "summary.json").is_file()


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_fold(experiment: Experiment, fold: Fold, workspace: Workspace, *, device: str = "auto",
               max_epochs: int | None = None, iterations: int | None = None,
               val_iterations: int | None = None, seed: int | None = None,
               threads: int | None = None) -> Path:
    """Train one fold through nnU-Net's own machinery; resumes from the newest checkpoint.

    ``fold`` is a fold of nnU-Net's five-fold split or ``"all"``, which trains
    (and validates) on every training case as nnU-Net does.

    A fold that is already trained (final checkpoint and validation present)
    is skipped. The schedule's length — epochs, training and validation
    iterations per epoch, checkpoint interval — is the experiment's, for any
    trainer (nnU-Net's stock ``nnUNetTrainer`` included, which would
    otherwise run its own 1000 x 250); ``max_epochs`` / ``iterations`` /
    ``val_iterations`` override it for short runs. ``seed`` seeds Python's, NumPy's and
    torch's random generators before the trainer is built (nnU-Net seeds
    nothing itself): network initialisation, patch sampling and augmentation
    then repeat exactly when data loading runs in-process
    (``nnUNet_n_proc_DA=0``); a resumed run continues with fresh random
    state. ``threads`` caps torch's CPU threads (default: every core).

    A run that was killed resumes from the newest checkpoint that can be read
    (nnU-Net's order: final, latest, best); an unreadable one is moved aside
    with a warning (:func:`~nnunet_glacier.nnunet.checkpoints.usable_checkpoint`),
    and the temporaries of a save cut short are removed. Data-loader worker
    processes die with the process that trains
    (:func:`~nnunet_glacier.nnunet.checkpoints.end_forked_children_with_process`).
    Returns the fold folder.
    """
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint

    from nnunet_glacier.nnunet.plans import PLANS_NAME

    fold_dir = model_folder(workspace, experiment) / fold_member(fold)
    if is_trained(workspace, experiment, fold):
        print(f"{experiment.name} fold {fold}: already trained ({fold_dir})")
        return fold_dir
    end_forked_children_with_process()
    remove_stale_temporaries(fold_dir)
    resume = usable_checkpoint(fold_dir) is not None
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        torch.set_num_threads(threads or multiprocessing.cpu_count())
    if seed is not None:
        seed_everything(seed)
    trainer = get_trainer_from_args(experiment.dataset, experiment.configuration, fold, experiment.trainer,
                                    PLANS_NAME, continue_training=resume, device=torch_device)
    schedule = experiment.training  # its length applies to every trainer, nnU-Net's stock one too
    trainer.num_epochs = max_epochs if max_epochs is not None else schedule.epochs
    trainer.num_iterations_per_epoch = iterations if iterations is not None else schedule.iterations_per_epoch
    trainer.num_val_iterations_per_epoch = val_iterations if val_iterations is not None \
        else schedule.val_iterations_per_epoch
    trainer.save_every = schedule.save_every
    maybe_load_checkpoint(trainer, resume, False)
    trainer.run_training()
    trainer.perform_actual_validation(False)
    return fold_dir

