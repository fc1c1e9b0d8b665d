"""The label tasks a network learns: classes, CaFFe pixel values, prediction file suffixes, label builders.

A *task* is one label map (zones, front, glacier boundary, fused zones +
front). Experiments (:mod:`nnunet_glacier.data.experiments`) combine tasks; the
data layer (:mod:`nnunet_glacier.data.caffe`) reads label and prediction PNGs by
task; prediction and evaluation name their files by the task's suffix.
Class indices follow :mod:`nnunet_glacier.data.labels` (zones 0 NA, 1 rock,
2 glacier, 3 ocean; lines 0 background, 1 line; fused adds 4 = front).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnunet_glacier.data import labels


@dataclass(frozen=True)
class Task:
    """One label map a network learns.

    ``png_values[c]`` is the CaFFe pixel value written for class ``c`` in
    prediction PNGs; ``suffix`` names the prediction file
    (``<stem><suffix>.png``).
    """

    name: str
    class_names: tuple[str, ...]
    png_values: tuple[int, ...]
    suffix: str
    build: Callable[[np.ndarray, np.ndarray, LabelSettings], np.ndarray] = field(repr=False, compare=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def to_png(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> CaFFe pixel values (``uint8``)."""
        return np.asarray(self.png_values, dtype=np.uint8)[classes]

    def from_png(self, pixels: np.ndarray) -> np.ndarray:
        """CaFFe pixel values -> class indices; raises ``ValueError`` on unknown values."""
        lut = np.full(256, 255, dtype=np.uint8)
        lut[list(self.png_values)] = np.arange(self.n_classes, dtype=np.uint8)
        classes = lut[pixels]
        if (classes == 255).any():
            bad = sorted(set(np.unique(pixels).tolist()) - set(self.png_values))
            raise ValueError(f"{self.name} map holds values {bad} outside {list(self.png_values)}")
        return classes


@dataclass(frozen=True)
class LabelSettings:
    front_dilation_px: int = 5
    boundary_dilation_px: int = 5


#: The zone classes by index (0 NA, 1 rock, 2 glacier, 3 ocean) as short keys: class names of the zone and
#: fused tasks, and in the evaluation's column names (``iou_rock``).
ZONE_CLASSES = ("na", "rock", "glacier", "ocean")
#: The zone classes by index as text for people: figure legends, class names in GIS rasters.
ZONE_LABELS = ("NA: no data or no information", "rock", "glacier", "ocean and ice melange")
ZONE_VALUES = (0, 64, 127, 254)
FRONT_VALUES = (0, 255)

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("zone", ZONE_CLASSES, ZONE_VALUES, "_zones",
             lambda zones, front, s: np.asarray(zones, dtype=np.uint8)),
        Task("front", ("background", "front"), FRONT_VALUES, "_front",
             lambda zones, front, s: labels.front_label(front, s.front_dilation_px)),
        Task("boundary", ("background", "boundary"), FRONT_VALUES, "_boundary",
             lambda zones, front, s: labels.glacier_boundary(zones, s.boundary_dilation_px)),
        Task("fused", (*ZONE_CLASSES, "front"), ZONE_VALUES + (255,), "_fused",
             lambda zones, front, s: labels.fused_label(zones, labels.front_label(front, s.front_dilation_px))),
    )
}
