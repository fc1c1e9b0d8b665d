"""Model folders without training, and a cheap stand-in network, for benchmarks and tests of prediction.

:func:`random_model` writes an nnU-Net results folder as training would
(``plans.json``, ``dataset.json`` with the ``caffe`` block, ``fold_K/
checkpoint_final.pth`` with nnU-Net's keys) for one of the experiments, with
a small U-Net of the experiment's network class and freshly initialised,
distinct weights per fold. nnU-Net's ``nnUNetPredictor`` and our
``GlacierPredictor`` load it like a trained model.

:func:`install_standin` replaces an ``nnUNetPredictor``'s network (and every
fold's parameters) with :class:`StandIn`: a per-channel affine function of the
input (a 1x1 convolution) with the model's output channels. Everything else —
preprocessing, tiles, Gaussian, mirroring, ensembling, post-processing,
writing — stays real, so timing it measures our own overhead.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: nnU-Net's 2-D configuration name of the folders written here.
CONFIGURATION = "2d"
_ARCHITECTURE_IMPORTS = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def plans_for(patch: Sequence[int], n_stages: int, base_features: int, dataset_name: str) -> dict:
    """nnU-Net plans with one 2-D configuration: ``patch`` (pixels), a PlainConvUNet of ``n_stages`` stages
    (features ``base_features * 2**i``, stride 2 below the first), z-score normalisation, spacing 1."""
    patch = [int(p) for p in patch]
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [999.0, 1.0, 1.0],
        "original_median_shape_after_transp": [1, *patch],
        "image_reader_writer": "NaturalImage2DIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 255.0, "mean": 100.0, "median": 100.0, "min": 0.0, "percentile_00_5": 0.0,
                  "percentile_99_5": 255.0, "std": 50.0}},
        "configurations": {CONFIGURATION: {
            "data_identifier": "nnUNetPlans_2d",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": patch,
            "median_image_size_in_voxels": patch,
            "spacing": [1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n_stages,
                    "features_per_stage": [base_features * 2 ** i for i in range(n_stages)],
                    "conv_op": "torch.nn.modules.conv.Conv2d",
                    "kernel_sizes": [[3, 3]] * n_stages,
                    "strides": [[1, 1]] + [[2, 2]] * (n_stages - 1),
                    "n_conv_per_stage": [1] * n_stages,
                    "n_conv_per_stage_decoder": [1] * (n_stages - 1),
                    "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                    "dropout_op": None,
                    "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": _ARCHITECTURE_IMPORTS,
            },
            "batch_dice": True,
        }},
    }


def random_model(folder: str | Path, experiment_name: str = "stl_zone", folds: Sequence[int] = (0, 1), *,
                 patch: Sequence[int] = (64, 64), n_stages: int = 3, base_features: int = 8,
                 seed: int = 0) -> Path:
    """Write an untrained results folder for ``experiment_name`` (its trainer, tasks and labels) into ``folder``.

    Each fold's weights are nnU-Net's initialisation under seed ``seed + fold``.
    Returns ``folder``.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet.workspace import add_trainer_path

    experiment = get_experiment(experiment_name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plans = plans_for(patch, n_stages, base_features, experiment.dataset_name)
    dataset = {"name": experiment.dataset_name, "channel_names": {"0": "SAR"}, "labels": experiment.label_names(),
               "numTraining": 10, "file_ending": ".png",
               "caffe": {"tasks": list(experiment.tasks), "task_classes": list(experiment.task_classes)}}
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    add_trainer_path()
    manager = PlansManager(plans)
    configuration = manager.get_configuration(CONFIGURATION)
    trainer = recursive_find_trainer_class_by_name(experiment.trainer)
    n_outputs = manager.get_label_manager(dataset).num_segmentation_heads
    for fold in folds:
        torch.manual_seed(seed + fold)
        network = trainer.build_network_architecture(manager, configuration,
                                                     determine_num_input_channels(manager, configuration, dataset),
                                                     n_outputs, enable_deep_supervision=False)
        fold_dir = folder / f"fold_{fold}"
        fold_dir.mkdir(exist_ok=True)
        torch.save({"network_weights": network.state_dict(), "trainer_name": experiment.trainer,
                    "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": fold,
                                  "dataset_json": dataset, "device": "cpu"},
                    "inference_allowed_mirroring_axes": (0, 1), "current_epoch": 0},
                   fold_dir / "checkpoint_final.pth")
    return folder


class StandIn(nn.Module):
    """A cheap network with the model's output channels: per output channel an affine function of the
    (one-channel) input, as a 1x1 convolution computes it, written as a broadcast product."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, 1, 1))
        self.bias = nn.Parameter(torch.randn(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.weight + self.bias


def install_standin(nnunet, seed: int = 0) -> None:
    """Replace an initialised ``nnUNetPredictor``'s network with :class:`StandIn`, distinct weights per fold."""
    n_outputs = nnunet.label_manager.num_segmentation_heads
    parameters = []
    for fold in range(len(nnunet.list_of_parameters)):
        torch.manual_seed(seed + fold)
        parameters.append(StandIn(n_outputs).state_dict())
    network = StandIn(n_outputs)
    network.load_state_dict(parameters[0])
    nnunet.network, nnunet.list_of_parameters = network, parameters


def scene(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A ``uint8`` test scene: smooth bright land on top, dark speckled sea below, a wavy boundary."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    boundary = shape[0] * (0.5 + 0.1 * np.sin(cols / max(shape[1], 1) * 6 * np.pi))
    image = np.where(rows < boundary, 170.0, 60.0) + rng.normal(0, 25, shape)
    return np.clip(image, 1, 255).astype(np.uint8)
