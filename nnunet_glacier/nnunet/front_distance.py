"""Front-distance regression: an auxiliary task that regresses every pixel's distance to the calving front.

An idea from the field beyond Herrmann et al. (2023): Davari et al. (2022,
"Pixelwise distance regression for glacier calving front detection and
segmentation", IEEE TGRS 60) regress a distance map to the front instead of
(or besides) classifying the thin front line, which gives every pixel near
the front a graded target rather than the front class's few pixels.

Here it is one extra output channel of the late-branching multi-task U-Net
(:class:`~nnunet_glacier.nnunet.networks.MultiTaskUNet`, ``regression_channels``),
trained beside the zone and front tasks and not used at prediction time:

- target: the chessboard (Chebyshev) distance in pixels of every pixel to the
  nearest pixel of the front task's label (the dilated front), capped at
  ``max_px`` and divided by it — 0 on the front, 1 at ``max_px`` or farther
  and everywhere in a patch without a front. It is computed in the loss from
  the augmented label of each deep-supervision scale, in that scale's pixels,
  so nnU-Net's data pipeline stays unchanged;
- prediction: the sigmoid of the channel; loss: mean absolute error.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def front_distance_target(front: torch.Tensor, max_px: int) -> torch.Tensor:
    """Capped, normalised chessboard distance to the front: ``(B, 1, H, W)`` {0, 1} -> float in [0, 1].

    Computed by repeated 3 x 3 max-pooling (one pixel per step), so pixels
    outside the patch do not count as front.
    """
    if max_px < 1:
        raise ValueError(f"max_px must be at least 1, got {max_px}")
    reached = (front > 0).float()
    distance = torch.where(reached > 0, 0.0, float(max_px))
    for step in range(1, max_px):
        reached = F.max_pool2d(reached, kernel_size=3, stride=1, padding=1)
        distance = torch.where((reached > 0) & (distance == max_px), float(step), distance)
    return distance / max_px


class FrontDistanceLoss(nn.Module):
    """Mean absolute error between ``sigmoid(logit)`` and :func:`front_distance_target` of the front label."""

    def __init__(self, max_px: int):
        super().__init__()
        self.max_px = max_px

    def forward(self, logit: torch.Tensor, front: torch.Tensor) -> torch.Tensor:
        target = front_distance_target(front, self.max_px)
        return F.l1_loss(torch.sigmoid(logit.float()), target)
