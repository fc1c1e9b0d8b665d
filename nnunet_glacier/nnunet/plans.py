"""Planning: nnU-Net's own planner once per dataset, then a small plans edit per profile.

``plan_and_preprocess`` runs nnU-Net v2's fingerprint extraction, experiment
planner and preprocessing for the ``2d`` configuration. ``write_configuration``
then adds one configuration to the dataset's ``nnUNetPlans.json``, named after
the profile (``2d_paper``, ``2d_tiny``), which inherits everything from ``2d``
(and so its preprocessed data) and overrides:

- ``patch_size`` and ``batch_size`` from the experiment's plan settings, or,
  when those are ``null``, from the ``2d`` plan of the first experiment of the
  same plan group (so early, late and boundary MTL train on one patch size);
- ``architecture``: nnU-Net's topology for that patch size
  (``get_pool_and_conv_props``), with features ``min(base * 2**i, max)``;
- ``caffe_training``: the experiment's training schedule, read by our trainers.

Input channels need no edit: nnU-Net's fingerprint, planner and
preprocessing read them from ``dataset.json``'s ``channel_names`` (a temporal
experiment's context acquisitions, :mod:`nnunet_glacier.data.temporal`) and
z-score each channel on its own; a temporal experiment shares its plan
group's patch and batch size with the experiments of the scene alone.

The result stays an ordinary, inspectable nnU-Net plans file:
``nnUNetv2_train ID 2d_paper FOLD -tr nnUNetTrainerMTLLate`` uses it.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from nnunet_glacier.data.experiments import EXPERIMENT_ORDER, Experiment, PlanSettings, load_experiments
from nnunet_glacier.errors import InputError
from nnunet_glacier.nnunet.workspace import Workspace
from nnunet_glacier.utilities.atomic import write_json

PLANS_NAME = "nnUNetPlans"
BASE_CONFIGURATION = "2d"
MIN_FEATURE_MAP_PX = 4  # nnU-Net's smallest bottleneck edge for 2-D U-Nets


def plans_file(workspace: Workspace, experiment: Experiment) -> Path:
    return workspace.preprocessed / experiment.dataset / f"{PLANS_NAME}.json"


def is_preprocessed(workspace: Workspace, experiment: Experiment) -> bool:
    """True if the dataset's plans exist and every training case has been preprocessed."""
    plans = plans_file(workspace, experiment)
    if not plans.is_file():
        return False
    data_identifier = json.loads(plans.read_text())["configurations"][BASE_CONFIGURATION]["data_identifier"]
    done = {p.name.split(".")[0] for p in (plans.parent / data_identifier).glob("*.pkl")}
    cases = {p.stem for p in (workspace.raw / experiment.dataset / "labelsTr").glob("*.png")}
    return bool(cases) and cases <= done


def plan_and_preprocess(experiment: Experiment, workspace: Workspace, *, num_processes: int = 2,
                        verify: bool = True) -> Path:
    """Run nnU-Net's fingerprint, planner and ``2d`` preprocessing for the experiment's dataset.

    ``workspace`` must be active (nnU-Net reads its folders from the
    environment). Returns the plans file.
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    extract_fingerprint_dataset(experiment.dataset_id, num_processes=num_processes,
                                check_dataset_integrity=verify, clean=True, verbose=False)
    with _positive_augmentation_processes():
        plan_experiment_dataset(experiment.dataset_id)
    preprocess_dataset(experiment.dataset_id, PLANS_NAME, (BASE_CONFIGURATION,), [num_processes], verbose=False)
    return plans_file(workspace, experiment)


@contextmanager
def _positive_augmentation_processes() -> Iterator[None]:
    """nnU-Net's planner sets torch's thread count from ``nnUNet_n_proc_DA``, which fails for 0
    (single-process data loading, a valid training setting); plan with 1 in that case."""
    previous = os.environ.get("nnUNet_n_proc_DA")
    if previous == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        yield
    finally:
        if previous == "0":
            os.environ["nnUNet_n_proc_DA"] = previous


def architecture_for_patch(base_architecture: dict, patch_size: tuple[int, int],
                           plan: PlanSettings) -> tuple[dict, tuple[int, int]]:
    """nnU-Net's U-Net topology for ``patch_size`` (pixels), with the plan's feature widths.

    Returns the architecture entry and the patch size, which nnU-Net's
    topology rounds up to a multiple of the network's total stride.
    """
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    max_pools = plan.max_stages - 1 if plan.max_stages else 999
    _, strides, kernels, patch, _ = get_pool_and_conv_props((1.0, 1.0), patch_size, MIN_FEATURE_MAP_PX, max_pools)
    n_stages = len(strides)
    base_kwargs = base_architecture["arch_kwargs"]
    n_conv = base_kwargs["n_conv_per_stage"][0]
    n_conv_decoder = base_kwargs["n_conv_per_stage_decoder"][0]
    architecture = copy.deepcopy(base_architecture)
    architecture["arch_kwargs"].update(
        n_stages=n_stages,
        features_per_stage=[min(plan.base_features * 2 ** i, plan.max_features) for i in range(n_stages)],
        kernel_sizes=[list(k) for k in kernels],
        strides=[list(s) for s in strides],
        n_conv_per_stage=[n_conv] * n_stages,
        n_conv_per_stage_decoder=[n_conv_decoder] * (n_stages - 1),
    )
    return architecture, (int(patch[0]), int(patch[1]))


def group_leader(experiment: Experiment) -> Experiment:
    """The first experiment (paper order) of ``experiment``'s plan group: its plan is shared."""
    experiments = load_experiments(experiment.profile)
    return next(experiments[name] for name in EXPERIMENT_ORDER
                if experiments[name].plan.plan_group == experiment.plan.plan_group)


def _patch_and_batch(experiment: Experiment, workspace: Workspace, own_2d: dict) -> tuple[tuple[int, int], int]:
    plan = experiment.plan
    if plan.patch_size is not None and plan.batch_size is not None:
        return plan.patch_size, plan.batch_size
    reference = own_2d
    leader_plans = plans_file(workspace, group_leader(experiment))
    if leader_plans.is_file():
        reference = json.loads(leader_plans.read_text())["configurations"][BASE_CONFIGURATION]
    else:
        warnings.warn(f"{leader_plans}: plan group {plan.plan_group!r} not planned yet; "
                      f"{experiment.name} uses its own nnU-Net plan", stacklevel=2)
    patch = plan.patch_size or tuple(reference["patch_size"])
    batch = plan.batch_size or int(reference["batch_size"])
    return patch, batch


def configuration_for(experiment: Experiment, base_2d: dict, patch_size: tuple[int, int],
                      batch_size: int) -> dict:
    """The plans configuration our edit adds for ``experiment`` (see module docstring)."""
    architecture, patch = architecture_for_patch(base_2d["architecture"], patch_size, experiment.plan)
    if patch != tuple(patch_size):
        warnings.warn(f"{experiment.name}: patch size {list(patch_size)} rounded to {list(patch)} "
                      f"to fit the U-Net's stride", stacklevel=2)
    return {
        "inherits_from": BASE_CONFIGURATION,
        "patch_size": list(patch),
        "batch_size": int(batch_size),
        "architecture": architecture,
        "caffe_training": asdict(experiment.training),
    }


def trained_configuration(experiment: Experiment, workspace: Workspace) -> dict:
    """What training reads of the plans file: ``{"2d": nnU-Net's plan, <our configuration>: our edit}``."""
    path = plans_file(workspace, experiment)
    if not path.is_file():
        raise InputError(path, f"no nnU-Net plans; run planning for {experiment.name} first")
    configurations = json.loads(path.read_text())["configurations"]
    if experiment.configuration not in configurations:
        raise InputError(path, f"no configuration {experiment.configuration!r}; "
                               f"run planning for {experiment.name} first")
    return {name: configurations[name] for name in (BASE_CONFIGURATION, experiment.configuration)}


def write_configuration(experiment: Experiment, workspace: Workspace) -> dict:
    """Add (or replace) the experiment's profile configuration in its plans file; returns it."""
    path = plans_file(workspace, experiment)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no nnU-Net plans; run planning for {experiment.name} first")
    plans = json.loads(path.read_text())
    base_2d = plans["configurations"][BASE_CONFIGURATION]
    patch, batch = _patch_and_batch(experiment, workspace, base_2d)
    configuration = configuration_for(experiment, base_2d, patch, batch)
    if plans["configurations"].get(experiment.configuration) != configuration:
        plans["configurations"][experiment.configuration] = configuration
        write_json(path, plans)
    return configuration
