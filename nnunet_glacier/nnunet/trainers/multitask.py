"""The multi-task trainers: late branching, early branching, late branching with the glacier boundary.

``nnUNetTrainerMTLLate`` / ``nnUNetTrainerMTLEarly`` / ``nnUNetTrainerMTLBoundary``
/ ``nnUNetTrainerMTLDistance`` each name their experiment in ``configs/``,
which gives the tasks, the branching and the front-distance head; they extend
:class:`~nnunet_glacier.nnunet.trainers.glacier.nnUNetTrainerGlacier` (whose
docstring lists how they differ from stock nnU-Net).

Multi-task loss: the sum over tasks of nnU-Net's own Dice + cross-entropy
loss on that task's channels and decoded label, weighted by the experiment's
``loss_weights`` (equal in the paper). Deep supervision is applied to every
task in the same way: the per-task sum sits *inside* nnU-Net's
``DeepSupervisionWrapper``, so each scale's total loss is the sum of the
tasks' losses at that scale, weighted by nnU-Net's usual 1/2^i factors. That
keeps the tasks' relative weights equal at every scale, as in the paper
(which summed the tasks' deep-supervised nnU-Net losses).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.helpers import dummy_context
from torch import nn

from nnunet_glacier.data import labels
from nnunet_glacier.data.experiments import Experiment, get_experiment
from nnunet_glacier.errors import ConfigError
from nnunet_glacier.nnunet.front_distance import FrontDistanceLoss
from nnunet_glacier.nnunet.networks import task_log_probabilities
from nnunet_glacier.nnunet.trainers.glacier import nnUNetTrainerGlacier
from nnunet_glacier.utilities.atomic import write_json

NETWORK_CLASS = "nnunet_glacier.nnunet.networks.MultiTaskUNet"
PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


class MultiTaskLoss(nn.Module):
    """Weighted sum of one loss per task on a multi-task output and an encoded label.

    ``output`` holds either the per-task logits (``sum(task_classes)``
    channels, training mode), followed by one front-distance channel when
    ``front_distance`` is given, or the joint log-probabilities
    (``prod(task_classes)`` channels, evaluation mode, which have no
    regression channel); ``target`` is the encoded label ``(B, 1, ...)``.
    ``front_distance`` adds ``front_distance_weight`` times its loss on the
    regression channel against the label of task ``front_task``.
    """

    def __init__(self, task_loss: nn.Module, task_classes: tuple[int, ...], weights: tuple[float, ...],
                 front_distance: FrontDistanceLoss | None = None, front_distance_weight: float = 0.0,
                 front_task: int = 1):
        super().__init__()
        self.task_loss = task_loss
        self.task_classes = task_classes
        self.weights = weights
        self.front_distance = front_distance
        self.front_distance_weight = front_distance_weight
        self.front_task = front_task

    def split(self, output: torch.Tensor) -> list[torch.Tensor]:
        """Per-task logits (or log-probabilities) from either output form."""
        if output.shape[1] == sum(self.task_classes):
            return list(torch.split(output, list(self.task_classes), dim=1))
        return task_log_probabilities(output, self.task_classes)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        targets = labels.decode_tasks(target.long(), self.task_classes)
        n_logits = sum(self.task_classes)
        regression = None
        if self.front_distance is not None and output.shape[1] == n_logits + 1:
            output, regression = output[:, :n_logits], output[:, n_logits:]
        loss = sum(w * self.task_loss(o, t) for w, o, t in zip(self.weights, self.split(output), targets))
        if regression is not None:
            assert self.front_distance is not None  # the regression channel is split off only with this loss
            loss = loss + self.front_distance_weight * self.front_distance(regression, targets[self.front_task])
        return loss


class nnUNetTrainerMTL(nnUNetTrainerGlacier):
    """Base of the multi-task trainers; subclasses set ``experiment_name``."""

    experiment_name: str = ""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        experiment = self.experiment()
        dataset_tasks = tuple(dataset_json.get("caffe", {}).get("tasks", ()))
        if dataset_tasks != experiment.tasks:
            raise ConfigError(f"{type(self).__name__} trains tasks {list(experiment.tasks)}, but dataset "
                              f"{self.plans_manager.dataset_name} holds {list(dataset_tasks) or 'no CaFFe tasks'}; "
                              f"use dataset {experiment.dataset}")
        self.task_classes = experiment.task_classes
        self.task_names = experiment.tasks

    @classmethod
    def experiment(cls) -> Experiment:
        if not cls.experiment_name:
            raise ConfigError(f"{cls.__name__} is abstract; use nnUNetTrainerMTLLate, "
                              "nnUNetTrainerMTLEarly, nnUNetTrainerMTLBoundary or nnUNetTrainerMTLDistance")
        return get_experiment(cls.experiment_name)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        """The plans' U-Net as a :class:`~nnunet_glacier.nnunet.networks.MultiTaskUNet` (by import path)."""
        if configuration_manager.network_arch_class_name != PLAIN_UNET:
            raise ConfigError(f"multi-task networks extend {PLAIN_UNET}; the plans name "
                              f"{configuration_manager.network_arch_class_name}")
        experiment = cls.experiment()
        kwargs = dict(configuration_manager.network_arch_init_kwargs,
                      task_classes=experiment.task_classes, branching=experiment.branching,
                      regression_channels=int(experiment.front_distance is not None))
        return get_network_from_plans(NETWORK_CLASS, kwargs, configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    def _build_loss(self):
        stock = super()._build_loss()  # nnU-Net's Dice + CE, wrapped for deep supervision when enabled
        experiment = self.experiment()
        distance = experiment.front_distance
        extra = {} if distance is None else {
            "front_distance": FrontDistanceLoss(distance.max_px), "front_distance_weight": distance.weight,
            "front_task": experiment.tasks.index("front")}
        if isinstance(stock, DeepSupervisionWrapper):
            return DeepSupervisionWrapper(MultiTaskLoss(stock.loss, self.task_classes, experiment.loss_weights,
                                                        **extra), stock.weight_factors)
        return MultiTaskLoss(stock, self.task_classes, experiment.loss_weights, **extra)

    def validation_step(self, batch: dict) -> dict:
        """Loss and hard per-task TP/FP/FN of every task's foreground classes (tasks concatenated)."""
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            loss = self.loss(output, target)
        if isinstance(output, (list, tuple)):
            output, target = output[0], target[0]
        counts = [self._hard_counts(o, t) for o, t in zip(task_log_probabilities(output, self.task_classes),
                                                            labels.decode_tasks(target.long(), self.task_classes))]
        tp, fp, fn = (np.concatenate(parts) for parts in zip(*counts))
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp, "fp_hard": fp, "fn_hard": fn}

    @staticmethod
    def _hard_counts(task_output: torch.Tensor, task_target: torch.Tensor) -> tuple[np.ndarray, ...]:
        prediction = torch.zeros_like(task_output)
        prediction.scatter_(1, task_output.argmax(1, keepdim=True), 1)
        axes = [0, *range(2, task_output.ndim)]
        tp, fp, fn, _ = get_tp_fp_fn_tn(prediction, task_target, axes=axes)
        return tuple(x.detach().cpu().numpy()[1:] for x in (tp, fp, fn))  # drop background, as nnU-Net does

    def on_validation_epoch_end(self, val_outputs: list[dict]) -> None:
        super().on_validation_epoch_end(val_outputs)
        dice = self.logger.get_value("dice_per_class_or_region", step=-1)
        start = 0
        for name, n in zip(self.task_names, self.task_classes):
            self.print_to_log_file(f"pseudo Dice {name}: {float(np.nanmean(dice[start:start + n - 1])):.4f}")
            start += n - 1

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """nnU-Net's validation on the encoded label, plus per-task Dice in ``summary_tasks.json``."""
        super().perform_actual_validation(save_probabilities)
        if self.local_rank == 0:
            summary = task_dice_on_folder(Path(self.output_folder) / "validation",
                                          Path(self.preprocessed_dataset_folder_base) / "gt_segmentations",
                                          self.task_names, self.task_classes)
            write_json(Path(self.output_folder) / "validation" / "summary_tasks.json", summary)
            for task, scores in summary.items():
                self.print_to_log_file(f"validation Dice {task}: {scores['mean_foreground']:.4f}")


class nnUNetTrainerMTLLate(nnUNetTrainerMTL):
    """Multi-task, late branching (zone + front): one decoder, 4 + 2 output channels."""

    experiment_name = "mtl_late"


class nnUNetTrainerMTLEarly(nnUNetTrainerMTL):
    """Multi-task, early branching (zone + front): shared encoder, one decoder per task."""

    experiment_name = "mtl_early"


class nnUNetTrainerMTLBoundary(nnUNetTrainerMTL):
    """Multi-task, late branching with the glacier-boundary third task (zone + front + boundary)."""

    experiment_name = "mtl_boundary"


class nnUNetTrainerMTLDistance(nnUNetTrainerMTL):
    """Multi-task, late branching (zone + front) with a front-distance regression head (see front_distance.py)."""

    experiment_name = "mtl_distance"


def task_dice_on_folder(predictions: Path, references: Path, task_names: tuple[str, ...],
                        task_classes: tuple[int, ...]) -> dict:
    """Per-task, per-class Dice of encoded-label PNGs against references, averaged over cases.

    A class absent from both prediction and reference of a case is left out
    of that case (NaN); ``mean_foreground`` averages the non-background classes.
    """
    from nnunet_glacier.data.caffe import read_grey

    per_task: dict[str, list[list[float]]] = {name: [] for name in task_names}
    for prediction_file in sorted(predictions.glob("*.png")):
        predicted = labels.decode_tasks(read_grey(prediction_file, label=True), task_classes)
        reference = labels.decode_tasks(read_grey(references / prediction_file.name, label=True), task_classes)
        for name, n, p, r in zip(task_names, task_classes, predicted, reference):
            per_task[name].append([_dice(p == c, r == c) for c in range(n)])
    summary = {}
    for name, scores in per_task.items():
        means = np.nanmean(np.array(scores, dtype=float), axis=0) if scores else np.full(1, np.nan)
        summary[name] = {"dice_per_class": [float(m) for m in means],
                         "mean_foreground": float(np.nanmean(means[1:])) if len(means) > 1 else float("nan")}
    return summary


def _dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    total = predicted.sum() + reference.sum()
    return float("nan") if total == 0 else float(2 * np.logical_and(predicted, reference).sum() / total)
