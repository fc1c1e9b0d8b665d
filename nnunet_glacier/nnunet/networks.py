"""Multi-task U-Nets for nnU-Net v2: late and early branching.

Both networks take nnU-Net's ``PlainConvUNet`` arguments from the plans plus
``task_classes`` (classes per task, e.g. ``(4, 2)`` for zone and front) and
``branching``:

- ``"late"``: one encoder, one decoder, ``sum(task_classes)`` output channels
  (the paper's late branching: the tasks split only in the last 1x1 conv).
- ``"early"``: one shared encoder, one decoder per task (the paper's early
  branching; about +50 % parameters for two tasks).

``regression_channels`` (late branching only) adds output channels after the
tasks' logits for auxiliary regression targets, e.g. the distance to the
calving front (:mod:`nnunet_glacier.nnunet.front_distance`); they are trained
by the loss and left out of the evaluation-mode output, so prediction sees
only the tasks' classes.

Output convention
-----------------
In training mode (``network.train()``) the network returns the per-task logits
concatenated along the channel axis, then the regression channels (a list
over deep-supervision scales when deep supervision is on). In evaluation mode it returns the *joint*
log-probabilities over the encoded classes ``c = c_0 + n_0 c_1 + n_0 n_1 c_2``
(see :mod:`nnunet_glacier.data.labels`), i.e. ``log p_0(c_0) + log p_1(c_1) + ...``.
nnU-Net's predictor, validation and ensembling then work unchanged on the
encoded label: softmax of the joint log-probabilities is the product of the
task probabilities, its argmax is the per-task argmax, averaging over tiles
and mirrorings averages each task's log-probabilities (equivalent to nnU-Net's
logit averaging), and summing joint probabilities over the other tasks gives
back each task's probabilities exactly (:func:`task_probabilities`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

#: Floor of the per-task log-probabilities in the joint output. nnU-Net
#: accumulates predictions in float16; exp(-100) is 0 for every purpose.
LOG_PROBABILITY_FLOOR = -100.0


def joint_log_probabilities(task_logits: torch.Tensor, task_classes: Sequence[int]) -> torch.Tensor:
    """Per-task logits ``(B, sum(n_k), ...)`` -> joint log-probabilities ``(B, prod(n_k), ...)``."""
    joint: torch.Tensor | None = None
    for part in torch.split(task_logits, list(task_classes), dim=1):
        log_p = torch.log_softmax(part.float(), dim=1).clamp_min(LOG_PROBABILITY_FLOOR)
        joint = log_p if joint is None else (joint.unsqueeze(1) + log_p.unsqueeze(2)).flatten(1, 2)
    assert joint is not None, "no tasks"  # every label layout has at least one task
    return joint


def _task_axes(joint: torch.Tensor, task_classes: Sequence[int]) -> torch.Tensor:
    """View ``(B, prod(n), *S)`` as ``(B, n_K-1, ..., n_0, *S)`` (first task fastest = last axis)."""
    batch, _, *spatial = joint.shape
    return joint.reshape(batch, *reversed(task_classes), *spatial)


def task_log_probabilities(joint: torch.Tensor, task_classes: Sequence[int]) -> list[torch.Tensor]:
    """Joint log-probabilities -> each task's log-probabilities ``(B, n_k, ...)`` (log-sum-exp marginals)."""
    axes = _task_axes(joint.float(), task_classes)
    n_tasks = len(task_classes)
    marginals = []
    for k in range(n_tasks):
        axis = 1 + (n_tasks - 1 - k)
        others = [1 + a for a in range(n_tasks) if 1 + a != axis]
        marginal = torch.logsumexp(axes, dim=others, keepdim=True) if others else axes
        marginals.append(marginal.movedim(axis, 1).flatten(1, n_tasks))
    return marginals


def task_probabilities(joint_probabilities: np.ndarray, task_classes: Sequence[int]) -> list[np.ndarray]:
    """Joint class probabilities ``(prod(n), *S)`` -> each task's probabilities ``(n_k, *S)`` (sums)."""
    n_tasks = len(task_classes)
    axes = joint_probabilities.reshape(*reversed(task_classes), *joint_probabilities.shape[1:])
    marginals = []
    for k in range(n_tasks):
        axis = n_tasks - 1 - k
        others = tuple(a for a in range(n_tasks) if a != axis)
        marginals.append(axes.sum(axis=others) if others else axes)
    return marginals


class MultiTaskUNet(nn.Module):
    """A U-Net with one output head (late) or one decoder (early) per task; see the module docstring.

    ``num_classes`` is what nnU-Net passes: the number of encoded classes,
    which must equal ``prod(task_classes)``.
    """

    def __init__(self, input_channels: int, num_classes: int, task_classes: Sequence[int], branching: str,
                 deep_supervision: bool = False, regression_channels: int = 0, **unet_kwargs):
        super().__init__()
        self.task_classes = tuple(int(n) for n in task_classes)
        if int(np.prod(self.task_classes)) != num_classes:
            raise ValueError(f"task classes {self.task_classes} encode {int(np.prod(self.task_classes))} classes, "
                             f"but the dataset has {num_classes}")
        if branching not in ("late", "early"):
            raise ValueError(f"branching must be 'late' or 'early', not {branching!r}")
        if regression_channels and branching != "late":
            raise ValueError("regression channels need late branching")
        self.branching = branching
        self.regression_channels = int(regression_channels)
        first_head = sum(self.task_classes) + self.regression_channels if branching == "late" \
            else self.task_classes[0]
        unet = PlainConvUNet(input_channels, num_classes=first_head, deep_supervision=deep_supervision,
                             **unet_kwargs)
        self.encoder = unet.encoder
        self.decoder = unet.decoder  # the decoder nnU-Net toggles deep supervision on
        extra = self.task_classes[1:] if branching == "early" else ()
        self.extra_decoders = nn.ModuleList(
            UNetDecoder(self.encoder, n, unet_kwargs["n_conv_per_stage_decoder"], deep_supervision,
                        nonlin_first=unet_kwargs.get("nonlin_first", False))
            for n in extra)

    def task_logits(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Per-task logits, then regression channels, on the channel axis (a list over scales with deep supervision)."""
        skips = self.encoder(x)
        outputs = [self.decoder(skips)]
        for decoder in self.extra_decoders:
            decoder.deep_supervision = self.decoder.deep_supervision
            outputs.append(decoder(skips))
        if len(outputs) == 1:
            return outputs[0]
        if isinstance(outputs[0], (list, tuple)):
            return [torch.cat(scales, dim=1) for scales in zip(*outputs)]
        return torch.cat(outputs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        logits = self.task_logits(x)
        if self.training:
            return logits
        n_class_channels = sum(self.task_classes)
        if isinstance(logits, (list, tuple)):
            return [joint_log_probabilities(scale[:, :n_class_channels], self.task_classes) for scale in logits]
        return joint_log_probabilities(logits[:, :n_class_channels], self.task_classes)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        PlainConvUNet.initialize(module)
