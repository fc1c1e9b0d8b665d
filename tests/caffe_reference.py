"""The CaFFe reference evaluation's front post-processing and zone scores, called as the published code calls them.

For tests and ``benchmarks/bench_fidelity.py`` only: needs ``fil_finder``
(with astropy) and scikit-learn, the ``test`` extra. Reference:
Gourmelon et al. 2022, "Calving fronts and where to find them"
(``data_processing/data_postprocessing.py``, ``validate_or_test.py``), reused
by Herrmann et al. 2023. Steps, with their calls:

- front route: a map with a single value is returned as it is; else
  ``skimage.morphology.skeletonize``, then
  ``FilFinder2D(skeleton, distance=None, mask=skeleton)``,
  ``preprocess_image(skip_flatten=True)``,
  ``create_mask(use_existing_mask=True)``, ``medskel(verbose=False)``,
  ``analyze_skeletons(skel_thresh=5 * u.pix)``; keep ``skeleton_longpath``
  and drop its 8-connected pieces of ``<= min_pixels`` pixels.
- zone route (``postprocess_zone_segmenation``, ``extract_front_from_zones``):
  in CaFFe pixel values, the non-ocean 8-connected components other than the
  largest become ocean, the ocean components other than the largest become
  glacier; front = ocean pixels with a 4-neighbour glacier pixel (outside the
  image is not glacier), 8-connected pieces of ``<= min_pixels`` dropped.
- fused route (Herrmann et al.'s ``Task500_Glacier_reverse.py``): front
  class -> ocean, glacier dilated once with a 7 x 7 kernel (``cv2.dilate``),
  then the zone route.
- MDE (``front_error``): all distances from ``scipy.spatial.distance.cdist``
  both ways; pooled = mean of all distances of all images, mean = mean of
  the per-image means; images with an empty front are left out.
- zones: ``precision_score`` / ``recall_score`` / ``f1_score`` /
  ``jaccard_score`` (scikit-learn) of the flattened maps with
  ``average=None``; the macro average is their plain mean over the 4 classes.

Two things are pinned that the published code leaves to its environment:
``medskel``'s random tie-break is the fixed ``RandomState(0)`` permutation
that scikit-image <= 0.18 used (FilFinder 1.8 with newer scikit-image draws
it unseeded; ``tie_break=None`` does that), and FilFinder runs its work in
the calling process instead of a process pool (same results, less time).
``numpy.in1d``, gone from numpy 2.4, is put back for FilFinder.
"""
from __future__ import annotations

import concurrent.futures
import warnings

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

if not hasattr(np, "in1d"):   # fil_finder 1.8 still calls numpy.in1d, removed in numpy 2.4
    np.in1d = np.isin

import astropy.units as u  # noqa: E402  (after the shim)
from fil_finder import FilFinder2D  # noqa: E402

ZONE_CLASSES = 4


class PublishedTieBreak(np.random.Generator):
    """A generator whose ``permutation`` is ``RandomState(0)``'s: ``medial_axis``'s tie-break in scikit-image <= 0.18."""

    def permutation(self, x):
        return np.random.RandomState(0).permutation(x)


class InProcess(concurrent.futures.Executor):
    """Runs FilFinder's per-filament work at once in the calling process."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def skeleton_longpath(skeleton: np.ndarray, tie_break: np.random.Generator | str | None = "published") -> np.ndarray:
    """FilFinder's ``skeleton_longpath`` of a skeleton, with the reference's arguments; ``bool``.

    ``tie_break``: ``"published"`` (default, see the module docstring), a
    generator, or ``None`` for FilFinder's own unseeded draw.
    """
    skeleton = np.asarray(skeleton, dtype=bool)
    rng = PublishedTieBreak(np.random.PCG64(0)) if isinstance(tie_break, str) else tie_break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # FilFinder warns about the missing beam, the mask, max iterations
        filfinder = FilFinder2D(skeleton, distance=None, mask=skeleton, pool=InProcess())
        filfinder.preprocess_image(skip_flatten=True)
        filfinder.create_mask(use_existing_mask=True)
        filfinder.medskel(verbose=False, rng=rng)
        filfinder.analyze_skeletons(skel_thresh=5 * u.pix)
    return np.asarray(filfinder.skeleton_longpath) > 0


def drop_short(front: np.ndarray, min_pixels: float) -> np.ndarray:
    """The reference's length filter: 8-connected pieces of ``<= min_pixels`` pixels go; ``bool``."""
    pieces, n_pieces = ndimage.label(front, structure=np.ones((3, 3)))
    sizes = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    return (sizes > min_pixels)[pieces] & (pieces > 0)


def front_route(front_map: np.ndarray, min_pixels: float,
                tie_break: np.random.Generator | str | None = "published") -> np.ndarray:
    """The reference's post-processing of a 0/1 front-task map (before the bounding box); ``bool``."""
    front_map = np.asarray(front_map, dtype=np.uint8)
    if len(np.unique(front_map)) == 1:
        return front_map > 0
    return drop_short(skeleton_longpath(skeletonize(front_map), tie_break), min_pixels)


ZONE_VALUES = np.array([0, 64, 127, 254], dtype=np.uint8)   # class -> CaFFe pixel value
NA_VALUE, ROCK_VALUE, GLACIER_VALUE, OCEAN_VALUE = (int(v) for v in ZONE_VALUES)


def _largest(labelled: np.ndarray, n_labels: int) -> int:
    """The label of the largest component (the first on ties), as ``argmax`` over the component sizes."""
    return int(np.bincount(labelled.ravel(), minlength=n_labels + 1)[1:].argmax()) + 1


def clean_zones(zone_values: np.ndarray) -> np.ndarray:
    """The reference's ``postprocess_zone_segmenation`` of a map in CaFFe pixel values (returns a new map)."""
    from skimage.measure import label

    zones = np.array(zone_values, dtype=np.uint8)
    non_ocean, n_non_ocean = label(zones != OCEAN_VALUE, connectivity=2, return_num=True)
    if n_non_ocean:
        zones[(non_ocean > 0) & (non_ocean != _largest(non_ocean, n_non_ocean))] = OCEAN_VALUE
    ocean, n_ocean = label(zones >= OCEAN_VALUE, connectivity=2, return_num=True)
    if n_ocean == 0:
        return zones
    largest = ocean == _largest(ocean, n_ocean)
    zones[zones == OCEAN_VALUE] = GLACIER_VALUE
    zones[largest] = OCEAN_VALUE
    return zones


def front_from_zones(zone_values: np.ndarray, min_pixels: float) -> np.ndarray:
    """The reference's ``extract_front_from_zones``: ocean pixels with a 4-neighbour glacier pixel; ``bool``."""
    padded = np.pad(zone_values, 1)
    neighbours = (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])
    front = (zone_values == OCEAN_VALUE) & np.logical_or.reduce([n == GLACIER_VALUE for n in neighbours])
    return drop_short(front, min_pixels)


def zone_route(zone_values: np.ndarray, min_pixels: float) -> np.ndarray:
    """The reference's front of a zone map in CaFFe pixel values; ``bool``."""
    return front_from_zones(clean_zones(zone_values), min_pixels)


def fused_to_zones(fused_classes: np.ndarray) -> np.ndarray:
    """Herrmann et al.'s conversion of a fused class map (0..4, 4 = front) to a zone map in CaFFe pixel values."""
    import cv2

    classes = np.asarray(fused_classes)
    zones = np.where(classes == 4, OCEAN_VALUE, ZONE_VALUES[np.minimum(classes, 3)]).astype(np.uint8)
    glacier = cv2.dilate((classes == 2).astype(np.uint8), np.ones((7, 7), np.uint8), iterations=1)
    zones[glacier == 1] = GLACIER_VALUE
    return zones


def front_distances(pred: np.ndarray, true: np.ndarray) -> np.ndarray | None:
    """The reference's ``front_error``: distances (px) both ways via ``cdist``; ``None`` if a front is empty."""
    from scipy.spatial.distance import cdist

    pred_px, true_px = np.argwhere(pred), np.argwhere(true)
    if len(pred_px) == 0 or len(true_px) == 0:
        return None
    return np.concatenate((cdist(pred_px, true_px).min(axis=1), cdist(true_px, pred_px).min(axis=1)))


def zone_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class IoU, precision, recall, F1 as the reference computes them (fails if a class is in neither map)."""
    from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

    functions = {"iou": jaccard_score, "precision": precision_score, "recall": recall_score, "f1": f1_score}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # scikit-learn warns about each 0/0 it sets to 0
        scores = {name: function(np.ravel(true), np.ravel(pred), average=None)
                  for name, function in functions.items()}
    for name, values in scores.items():
        if len(values) != ZONE_CLASSES:
            raise ValueError(f"{name}: the reference needs all {ZONE_CLASSES} classes in label or prediction")
    return scores


def filament_longpath(piece: np.ndarray) -> np.ndarray:
    """FilFinder's longest path of one piece (any 8-connected pixel set), by its per-filament analysis alone.

    Runs ``Filament2D.skeleton_analysis`` with ``analyze_skeletons``'
    arguments (branch threshold 0 px, 10 pruning rounds) on the piece placed
    inside a larger image of it, skipping the medial-axis step; so pixel sets
    that step would never leave (blocks, hooks, touching ends) can be checked
    too. ``piece``: the piece's bounding box with an unset border of 1 px
    (FilFinder's frame); returns a mask of its shape.
    """
    from fil_finder.filament import Filament2D

    image = np.pad(piece, 2).astype(float)
    filament = Filament2D(np.nonzero(image))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filament.skeleton_analysis(image * u.dimensionless_unscaled, branch_thresh=0 * u.pix, max_prune_iter=10)
    path = np.zeros(image.shape, dtype=bool)
    path[filament.longpath_pixel_coords] = True
    return path[2:-2, 2:-2]
