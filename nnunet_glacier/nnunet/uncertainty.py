"""Per-pixel uncertainty of an ensemble's class probabilities: entropy, and the folds' disagreement.

Both take class probabilities shaped ``(n_classes, *pixels)`` (any float
dtype) and return one value per pixel; they work on any part of a scene, so
a streamed prediction computes them band by band.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Per pixel, the entropy of ``(n_classes, ...)`` class probabilities over ``log(n_classes)``, ``float32``.

    0 where one class has all the probability, 1 where all classes are
    equally likely. Of the ensemble's (mean) probabilities it grows both
    where each fold is unsure and where the folds disagree.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=0)
    return entropy / np.float32(np.log(len(p)))


def fold_disagreement(members: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Per pixel, the mean total-variation distance of the members' class probabilities from their mean, ``float32``.

    ``members``: one ``(n_classes, ...)`` array per fold (at least two; or them stacked). 0
    where every fold gives the same probabilities; at most ``1 - 1/n_folds``
    (each fold certain of a different class).
    """
    if len(members) < 2:
        raise ValueError(f"disagreement needs at least two members, got {len(members)}")
    stacked = np.stack([np.asarray(m, dtype=np.float32) for m in members])  # (folds, classes, ...)
    distance = 0.5 * np.abs(stacked - stacked.mean(axis=0)).sum(axis=1)
    return distance.mean(axis=0)


def mean_over(values: np.ndarray | None, where: np.ndarray) -> float | None:
    """The mean of a per-pixel map over the ``bool`` mask ``where``; ``None`` without a map or for an empty mask."""
    if values is None or not np.any(where):
        return None
    return float(np.asarray(values, dtype=np.float64)[where].mean())
