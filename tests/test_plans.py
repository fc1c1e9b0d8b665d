"""Our plans edit: topology for a patch size, profile configurations, shared MTL plans."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnunet_glacier.data.experiments import get_experiment
from nnunet_glacier.nnunet.plans import architecture_for_patch, group_leader, plans_file, write_configuration
from nnunet_glacier.nnunet.workspace import Workspace


def stock_2d(patch=(256, 256), batch=3) -> dict:
    """The shape of nnU-Net's planned 2d configuration (7 stages, 32..512 features)."""
    return {
        "data_identifier": "nnUNetPlans_2d",
        "batch_size": batch,
        "patch_size": list(patch),
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 7, "features_per_stage": [32, 64, 128, 256, 512, 512, 512],
                            "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 7,
                            "strides": [[1, 1]] + [[2, 2]] * 6, "n_conv_per_stage": [2] * 7,
                            "n_conv_per_stage_decoder": [2] * 6, "conv_bias": True},
            "_kw_requires_import": ["conv_op"],
        },
    }


def write_stock_plans(workspace: Workspace, experiment, patch=(256, 256), batch=3) -> Path:
    path = plans_file(workspace, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset_name": experiment.dataset,
                                "configurations": {"2d": stock_2d(patch, batch)}}))
    return path


@pytest.mark.parametrize("patch, stages", [((1280, 1024), 9), ((1024, 896), 8), ((64, 64), 5)])
def test_topology_follows_nnunet_for_the_papers_patch_sizes(patch, stages):
    plan = get_experiment("stl_front").plan  # 32..512 features, no stage limit
    architecture, rounded = architecture_for_patch(stock_2d()["architecture"], patch, plan)
    kwargs = architecture["arch_kwargs"]
    assert rounded == patch
    assert kwargs["n_stages"] == stages == len(kwargs["strides"]) == len(kwargs["kernel_sizes"])
    assert kwargs["features_per_stage"] == [min(32 * 2 ** i, 512) for i in range(stages)]
    assert len(kwargs["n_conv_per_stage_decoder"]) == stages - 1
    total_stride = [1, 1]
    for stride in kwargs["strides"]:
        total_stride = [t * s for t, s in zip(total_stride, stride)]
    assert all(p % t == 0 for p, t in zip(patch, total_stride))


def test_tiny_profile_caps_stages_and_features():
    plan = get_experiment("fused", "tiny").plan
    architecture, patch = architecture_for_patch(stock_2d()["architecture"], (64, 64), plan)
    assert patch == (64, 64)
    assert architecture["arch_kwargs"]["n_stages"] == 4
    assert architecture["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 64]


def test_write_configuration_adds_an_inheriting_profile_configuration(tmp_path):
    workspace = Workspace.from_work_dir(tmp_path)
    experiment = get_experiment("mtl_late", "tiny")
    path = write_stock_plans(workspace, experiment)
    write_configuration(experiment, workspace)
    plans = json.loads(path.read_text())
    configuration = plans["configurations"]["2d_tiny"]
    assert plans["configurations"]["2d"] == stock_2d()  # nnU-Net's own plan is kept
    assert configuration["inherits_from"] == "2d"
    assert configuration["patch_size"] == [64, 64] and configuration["batch_size"] == 2
    assert configuration["caffe_training"]["epochs"] == experiment.training.epochs
    assert "oversample_foreground" not in configuration["caffe_training"]  # nnU-Net's own oversampling


def test_write_configuration_leaves_unchanged_plans_untouched(tmp_path):
    workspace = Workspace.from_work_dir(tmp_path)
    experiment = get_experiment("fused", "tiny")
    path = write_stock_plans(workspace, experiment)
    first = write_configuration(experiment, workspace)
    written = path.stat().st_mtime_ns
    os.utime(path, ns=(written - 10**9, written - 10**9))  # make a rewrite visible
    assert write_configuration(experiment, workspace) == first
    assert path.stat().st_mtime_ns == written - 10**9


def test_mtl_experiments_without_a_set_patch_share_the_group_leaders_plan(tmp_path, monkeypatch):
    import dataclasses

    import nnunet_glacier.nnunet.plans as plans_module

    workspace = Workspace.from_work_dir(tmp_path)
    late = get_experiment("mtl_late", "tiny")
    boundary = get_experiment("mtl_boundary", "tiny")
    assert group_leader(boundary).name == "mtl_late"
    auto = dataclasses.replace(boundary, plan=dataclasses.replace(boundary.plan, patch_size=None, batch_size=None))
    monkeypatch.setattr(plans_module, "group_leader", lambda experiment: late)
    write_stock_plans(workspace, late, patch=(320, 288), batch=4)
    write_stock_plans(workspace, auto, patch=(256, 256), batch=3)  # nnU-Net planned 16 classes differently
    configuration = write_configuration(auto, workspace)
    assert configuration["patch_size"] == [320, 288] and configuration["batch_size"] == 4


def test_write_configuration_without_plans_names_the_missing_file(tmp_path):
    workspace = Workspace.from_work_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nnUNetPlans.json"):
        write_configuration(get_experiment("fused", "tiny"), workspace)
