"""Front delineation error (MDE) and zone segmentation metrics, as defined for CaFFe.

Front delineation (Gourmelon et al. 2022; Herrmann et al. 2023, Eq. 1)
-----------------------------------------------------------------------
For one image with predicted front pixels P and true front pixels Q, every
pixel of P gets its Euclidean distance (in pixels) to the nearest pixel of Q,
and every pixel of Q its distance to the nearest pixel of P; times the pixel
size these are distances in metres. :class:`FrontError` keeps their sum and
count, so that over a set of images

- the pooled MDE (Eq. 1) = sum of all distances / number of all distances,
- the mean MDE = mean of the per-image MDEs, and
- the median MDE = median of the per-image MDEs

are exact (:func:`summarise_fronts`). An image whose predicted (or true)
front is empty has no MDE: it is left out of all three and counted as
"no front". Nearest pixels are found with KD-trees (``scipy.spatial``), not
all pairs.

Zones
-----
Per image and class c of {NA, rock, glacier, ocean}, from the confusion
matrix (rows true, columns predicted): TP, FP, FN and

    IoU = TP / (TP + FP + FN)        precision = TP / (TP + FP)
    recall = TP / (TP + FN)          F1 = 2 TP / (2 TP + FP + FN)

Absent classes, as in the CaFFe reference evaluation (scikit-learn's
``precision_score`` / ``recall_score`` / ``f1_score`` / ``jaccard_score`` with
``average=None``, whose default ``zero_division`` counts 0/0 as 0): a class
present in the label or the prediction but not in both scores 0 in all four
(e.g. a class missing from the prediction has precision 0/0 = 0 and recall
0/FN = 0) and counts in the macro average. A class absent from both label and
prediction (where the reference code fails: scikit-learn then returns fewer
than four values) is NaN ("undefined") in all four and left out of every
average. The macro average of an image is the mean over its defined classes
(all four unless one is absent from both maps); a set of images is summarised
by the mean over images of each (defined) value (:func:`summarise_zones`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from nnunet_glacier.data.tasks import ZONE_CLASSES

ZONE_SCORES = ("iou", "precision", "recall", "f1")


def nan_mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the non-NaN values; NaN if there are none (and no warning)."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


# --- fronts ----------------------------------------------------------------------------------------------------

def nearest_distances(from_px: np.ndarray, to_px: np.ndarray) -> np.ndarray:
    """For each pixel ``(row, col)`` of ``from_px`` (``(n, 2)``), the distance in pixels to the nearest of ``to_px``."""
    return cKDTree(to_px).query(from_px)[0]


@dataclass(frozen=True)
class FrontError:
    """The front delineation error of one image.

    ``n_pred_px`` / ``n_true_px`` count the predicted and true front pixels;
    ``distance_sum_m`` is the sum in metres of the distances of both
    directions (0 when the image has no front).
    """

    n_pred_px: int
    n_true_px: int
    distance_sum_m: float

    @property
    def has_front(self) -> bool:
        """True if both fronts are non-empty, i.e. the image has an MDE."""
        return self.n_pred_px > 0 and self.n_true_px > 0

    @property
    def n_distances(self) -> int:
        """Number of distances behind the MDE: ``n_pred_px + n_true_px``, or 0 without a front."""
        return self.n_pred_px + self.n_true_px if self.has_front else 0

    @property
    def mde_m(self) -> float:
        """This image's mean distance error in metres; NaN if it has no front."""
        return self.distance_sum_m / self.n_distances if self.has_front else float("nan")


def front_error(pred: np.ndarray, true: np.ndarray, pixel_size_m: float) -> FrontError:
    """The :class:`FrontError` of a predicted and a true front mask (non-zero = front) of one image."""
    pred_px = np.argwhere(np.asarray(pred) > 0)
    true_px = np.argwhere(np.asarray(true) > 0)
    if len(pred_px) == 0 or len(true_px) == 0:
        return FrontError(len(pred_px), len(true_px), 0.0)
    total_px = nearest_distances(pred_px, true_px).sum() + nearest_distances(true_px, pred_px).sum()
    return FrontError(len(pred_px), len(true_px), float(total_px) * pixel_size_m)


@dataclass(frozen=True)
class FrontSummary:
    """MDEs of a set of images in metres (NaN where no image has a front); see the module docstring."""

    n_images: int
    no_front: int
    mde_pooled_m: float
    mde_mean_m: float
    mde_median_m: float


def summarise_fronts(errors: Sequence[FrontError]) -> FrontSummary:
    """Pooled, mean and median MDE over images, leaving out (and counting) images with no front."""
    with_front = [e for e in errors if e.has_front]
    per_image = np.array([e.mde_m for e in with_front])
    n_distances = sum(e.n_distances for e in with_front)
    pooled = sum(e.distance_sum_m for e in with_front) / n_distances if n_distances else float("nan")
    return FrontSummary(
        n_images=len(errors), no_front=len(errors) - len(with_front), mde_pooled_m=pooled,
        mde_mean_m=float(per_image.mean()) if per_image.size else float("nan"),
        mde_median_m=float(np.median(per_image)) if per_image.size else float("nan"),
    )


# --- zones -----------------------------------------------------------------------------------------------------

def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int = len(ZONE_CLASSES)) -> np.ndarray:
    """``(n_classes, n_classes)`` pixel counts, rows = true class, columns = predicted class (``int64``)."""
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"label shape {true.shape} differs from prediction shape {pred.shape}")
    codes = true.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator``: 0 where the denominator is 0, NaN where ``present`` is False."""
    result = np.zeros(numerator.shape)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    result[~present] = np.nan
    return result


@dataclass(frozen=True)
class ZoneScores:
    """Per-class scores of one image, each an array over :data:`~nnunet_glacier.data.tasks.ZONE_CLASSES`.

    NaN = undefined: the class is absent from both label and prediction.
    """

    iou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray

    def macro(self, score: str) -> float:
        """Mean of ``score`` (one of :data:`ZONE_SCORES`) over the classes where it is defined."""
        return nan_mean(getattr(self, score))


def zone_scores(true: np.ndarray, pred: np.ndarray) -> ZoneScores:
    """IoU, precision, recall and F1 per zone class of one image (classes 0..3 in both maps).

    A 0/0 ratio of a class in either map is 0 (CaFFe reference); a class in
    neither map is NaN in all four (see the module docstring).
    """
    matrix = confusion_matrix(true, pred)
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    present = tp + fp + fn > 0
    return ZoneScores(iou=_ratio(tp, tp + fp + fn, present), precision=_ratio(tp, tp + fp, present),
                      recall=_ratio(tp, tp + fn, present), f1=_ratio(2 * tp, 2 * tp + fp + fn, present))


def summarise_zones(scores: Sequence[ZoneScores]) -> dict[str, float]:
    """Means over images: ``<score>_macro`` of the per-image macro averages and ``<score>_<class>``.

    NaN (undefined) values are left out; keys cover every score of
    :data:`ZONE_SCORES` and class of :data:`~nnunet_glacier.data.tasks.ZONE_CLASSES`.
    """
    summary = {}
    for score in ZONE_SCORES:
        summary[f"{score}_macro"] = nan_mean([s.macro(score) for s in scores])
        per_class = np.array([getattr(s, score) for s in scores]).reshape(len(scores), len(ZONE_CLASSES))
        for index, name in enumerate(ZONE_CLASSES):
            summary[f"{score}_{name}"] = nan_mean(per_class[:, index])
    return summary
