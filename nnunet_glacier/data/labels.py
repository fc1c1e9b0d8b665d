"""Label builders for the six experiments, and the multi-task label encoding.

All builders take and return 2-D ``numpy`` arrays of *class indices* (not CaFFe
pixel values); :mod:`nnunet_glacier.data.caffe` converts pixel values to classes.

Class conventions
-----------------
- zone classes: 0 no information (NA), 1 rock, 2 glacier, 3 ocean incl. ice melange
- front / boundary masks: 0 background, 1 line (after dilation)
- fused classes: the zone classes, with 4 = front burnt in on top

Multi-task encoding
-------------------
Several label maps are stored in one nnU-Net label image so that nnU-Net's
loading, augmentation and foreground oversampling work unchanged::

    encoded = map_0 + n_0 * map_1 + n_0 * n_1 * map_2 + ...

with ``n_k`` the number of classes of task ``k``. For (zone, front) that is
``zone + 4 * front`` (8 classes); for (zone, front, boundary)
``zone + 4 * front + 8 * boundary`` (16 classes).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

#: A label map as :func:`decode_tasks` takes and returns it: a numpy array or a torch tensor.
LabelArray = TypeVar("LabelArray", np.ndarray, "torch.Tensor")

NA, ROCK, GLACIER, OCEAN = 0, 1, 2, 3
FRONT_CLASS = 4  # the front's class in the fused label


def dilate(mask: np.ndarray, kernel_px: int) -> np.ndarray:
    """Dilate a binary mask once with a square ``kernel_px`` x ``kernel_px`` kernel.

    ``kernel_px`` <= 1 returns the mask unchanged. Returns ``uint8`` {0, 1}.
    """
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if kernel_px <= 1:
        return binary
    kernel = np.ones((kernel_px, kernel_px), np.uint8)
    return cv2.dilate(binary, kernel, iterations=1)


def front_label(front_mask: np.ndarray, dilation_px: int = 5) -> np.ndarray:
    """The front task's label: the one-pixel front line dilated to ~``dilation_px`` px."""
    return dilate(front_mask, dilation_px)


def has_4_neighbour(mask: np.ndarray) -> np.ndarray:
    """True where the pixel above, below, left or right is true in ``mask``.

    Pixels outside the image do not count as neighbours. Returns ``bool``.
    """
    padded = np.pad(np.asarray(mask) > 0, 1, constant_values=False)
    return padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]


def glacier_boundary(zones: np.ndarray, dilation_px: int = 5) -> np.ndarray:
    """Glacier pixels with a 4-neighbour of class rock or NA, dilated like the front.

    ``zones`` holds zone classes (0..3). Pixels outside the image do not count
    as neighbours. Returns ``uint8`` {0, 1}.
    """
    zones = np.asarray(zones)
    boundary = (zones == GLACIER) & has_4_neighbour((zones == ROCK) | (zones == NA))
    return dilate(boundary, dilation_px)


def front_from_zones(zones: np.ndarray) -> np.ndarray:
    """The calving front of a zone map: ocean pixels with a 4-neighbour glacier pixel.

    ``zones`` holds zone classes (0..3); returns a ``uint8`` {0, 1} mask.
    """
    zones = np.asarray(zones)
    return ((zones == OCEAN) & has_4_neighbour(zones == GLACIER)).astype(np.uint8)


def fused_label(zones: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Zone classes with the (already dilated) front burnt in as class 4."""
    fused = np.asarray(zones, dtype=np.uint8).copy()
    fused[np.asarray(front) > 0] = FRONT_CLASS
    return fused


def encode_tasks(maps: Sequence[np.ndarray], n_classes: Sequence[int]) -> np.ndarray:
    """Encode per-task class maps into one label map (see module docstring).

    Raises ``ValueError`` if a map holds a class outside ``0..n-1`` or the maps
    differ in shape.
    """
    if len(maps) != len(n_classes) or not maps:
        raise ValueError(f"need one class count per map, got {len(maps)} maps and {len(n_classes)} counts")
    shape = np.shape(maps[0])
    encoded = np.zeros(shape, dtype=np.int64)
    factor = 1
    for k, (task_map, n) in enumerate(zip(maps, n_classes)):
        task_map = np.asarray(task_map)
        if task_map.shape != shape:
            raise ValueError(f"task {k}: shape {task_map.shape} differs from {shape}")
        if task_map.size and (task_map.min() < 0 or task_map.max() >= n):
            raise ValueError(f"task {k}: classes must lie in 0..{n - 1}, found {task_map.min()}..{task_map.max()}")
        encoded += factor * task_map.astype(np.int64)
        factor *= n
    dtype = np.uint8 if factor <= 256 else np.uint16
    return encoded.astype(dtype)


def decode_tasks(encoded: LabelArray, n_classes: Sequence[int]) -> list[LabelArray]:
    """Split an encoded label map back into per-task class maps.

    Works on numpy arrays and on torch tensors; the maps keep the input's type
    and dtype.
    """
    total = int(np.prod(n_classes))
    if encoded.max() >= total or encoded.min() < 0:
        raise ValueError(f"encoded labels must lie in 0..{total - 1}, found {encoded.min()}..{encoded.max()}")
    maps: list[LabelArray] = []
    rest = encoded
    for n in n_classes:
        maps.append(rest % n)
        rest = rest // n
    return maps
