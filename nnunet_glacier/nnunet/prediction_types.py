"""What prediction hands on, without torch: one scene's prediction and the report of a run over scenes.

:mod:`nnunet_glacier.nnunet.predict` (torch-bound) makes these values;
field detection, the command line and stand-in predictors of tests and
benchmarks use them, so importing this module imports neither torch nor
nnU-Net.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_glacier.data.tasks import TASKS


@dataclass(frozen=True)
class ScenePrediction:
    """One scene's prediction in the input's pixel grid, per task (``{task name: array}``).

    ``class_maps``: ``uint8`` class indices ``(rows, cols)``, the argmax of
    the (ensemble's) class probabilities; ``probabilities``: ``float16``
    ``(n_classes, rows, cols)``, only when asked for; ``disagreement``:
    ``float16`` per pixel, the folds' mean total-variation distance from the
    ensemble (:func:`~nnunet_glacier.nnunet.uncertainty.fold_disagreement`: 0 all
    folds agree .. ``1 - 1/n_folds``), only for measured tasks of an
    ensemble of two or more folds; ``uncertainty``: ``float32`` per pixel,
    the normalised entropy of the ensemble's probabilities (0 certain .. 1
    all classes equally likely), only for measured tasks; ``members``: each
    fold's prediction (class maps, and probabilities when asked for), only
    when asked for. Pixels outside nnU-Net's non-zero crop are class 0 with
    probability 1.
    """

    class_maps: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    disagreement: dict[str, np.ndarray] = field(default_factory=dict)
    uncertainty: dict[str, np.ndarray] = field(default_factory=dict)
    members: list[ScenePrediction] = field(default_factory=list)

    @classmethod
    def from_probabilities(cls, probabilities: dict[str, np.ndarray]) -> ScenePrediction:
        """A prediction from per-task class probabilities ``(n_classes, rows, cols)``: their argmax, and them."""
        return cls({task: p.argmax(axis=0).astype(np.uint8) for task, p in probabilities.items()},
                   {task: np.asarray(p, dtype=np.float16) for task, p in probabilities.items()})

    def png(self, task: str) -> np.ndarray:
        """The task's class map in CaFFe pixel values."""
        return TASKS[task].to_png(self.class_maps[task])


@dataclass
class RunReport:
    """What a run over scenes did: stems written, stems skipped (already done), failures (file, problem)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
