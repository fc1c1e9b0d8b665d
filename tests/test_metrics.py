"""MDE and zone metrics on arrays where the answer is known exactly, and against all-pairs distances."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from nnunet_glacier.data.labels import GLACIER, NA, OCEAN, ROCK
from nnunet_glacier.data.tasks import ZONE_CLASSES
from nnunet_glacier.evaluation import metrics


def _lines(shape: tuple[int, int], rows: list[int], cols: slice) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for row in rows:
        mask[row, cols] = True
    return mask


def test_parallel_lines_d_pixels_apart():
    pred = _lines((10, 20), [2], slice(0, 15))
    true = _lines((10, 20), [5], slice(0, 15))
    error = metrics.front_error(pred, true, pixel_size_m=1.0)
    assert (error.n_pred_px, error.n_true_px, error.n_distances) == (15, 15, 30)
    assert error.distance_sum_m == pytest.approx(90.0)
    assert error.mde_m == pytest.approx(3.0)
    assert metrics.front_error(pred, true, pixel_size_m=20.0).mde_m == pytest.approx(60.0)   # pixel size scales


def test_single_point_against_a_line():
    pred = np.zeros((5, 5), bool)
    pred[2, 2] = True
    true = _lines((5, 5), [0], slice(0, 5))
    # point -> line: 2; line -> point: sqrt(8), sqrt(5), 2, sqrt(5), sqrt(8)
    expected_px = (2 + 2 * math.sqrt(8) + 2 * math.sqrt(5) + 2) / 6
    assert metrics.front_error(pred, true, 1.0).mde_m == pytest.approx(expected_px)
    assert metrics.front_error(pred, true, 7.0).mde_m == pytest.approx(7 * expected_px)
    assert metrics.front_error(true, pred, 1.0).mde_m == pytest.approx(expected_px)   # symmetric


def test_identical_fronts_have_zero_error():
    front = _lines((8, 8), [3], slice(1, 7))
    assert metrics.front_error(front, front, 20.0).mde_m == 0.0


def test_pooled_mean_and_median_over_images_of_different_front_lengths():
    long = metrics.front_error(_lines((4, 12), [0], slice(0, 10)), _lines((4, 12), [1], slice(0, 10)), 1.0)
    short = metrics.front_error(_lines((8, 4), [0], slice(0, 2)), _lines((8, 4), [5], slice(0, 2)), 1.0)
    assert (long.mde_m, short.mde_m) == (pytest.approx(1.0), pytest.approx(5.0))
    summary = metrics.summarise_fronts([long, short])
    assert summary.mde_pooled_m == pytest.approx(40 / 24)   # (20 x 1 + 4 x 5) / (20 + 4)
    assert summary.mde_mean_m == pytest.approx(3.0)
    assert summary.mde_median_m == pytest.approx(3.0)
    assert (summary.n_images, summary.no_front) == (2, 0)


def test_pixel_size_weights_the_pooled_mde():
    a = metrics.front_error(_lines((4, 4), [0], slice(0, 2)), _lines((4, 4), [1], slice(0, 2)), 10.0)   # 4 x 10 m
    b = metrics.front_error(_lines((4, 4), [0], slice(0, 1)), _lines((4, 4), [2], slice(0, 1)), 20.0)   # 2 x 40 m
    assert metrics.summarise_fronts([a, b]).mde_pooled_m == pytest.approx((40 + 80) / 6)


def test_images_without_a_front_are_counted_and_left_out():
    front = _lines((6, 6), [1], slice(0, 4))
    other = _lines((6, 6), [3], slice(0, 4))
    empty = np.zeros((6, 6), bool)
    no_pred = metrics.front_error(empty, front, 1.0)
    no_true = metrics.front_error(front, empty, 1.0)
    assert not no_pred.has_front and math.isnan(no_pred.mde_m) and no_pred.n_distances == 0
    assert (no_pred.n_pred_px, no_pred.n_true_px) == (0, 4)
    assert not no_true.has_front
    summary = metrics.summarise_fronts([metrics.front_error(front, other, 1.0), no_pred, no_true])
    assert (summary.n_images, summary.no_front) == (3, 2)
    assert summary.mde_pooled_m == summary.mde_mean_m == summary.mde_median_m == pytest.approx(2.0)
    nothing = metrics.summarise_fronts([no_pred])
    assert math.isnan(nothing.mde_pooled_m) and math.isnan(nothing.mde_mean_m) and math.isnan(nothing.mde_median_m)


def _all_pairs_mde_sum(pred: np.ndarray, true: np.ndarray) -> float:
    distances = cdist(np.argwhere(pred), np.argwhere(true))
    return distances.min(axis=1).sum() + distances.min(axis=0).sum()


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_all_pairs_distances(seed: int):
    rng = np.random.default_rng(seed)
    pred = rng.random((60, 90)) < 0.02
    true = rng.random((60, 90)) < 0.01
    error = metrics.front_error(pred, true, pixel_size_m=6.5)
    assert error.distance_sum_m == pytest.approx(6.5 * _all_pairs_mde_sum(pred, true), abs=1e-6)
    assert error.n_distances == pred.sum() + true.sum()


def test_zone_scores_by_hand():
    true = np.array([[GLACIER, GLACIER, OCEAN, OCEAN]] * 2)
    pred = np.array([[GLACIER, GLACIER, GLACIER, OCEAN], [GLACIER, GLACIER, OCEAN, OCEAN]])
    scores = metrics.zone_scores(true, pred)
    # glacier: TP 4, FP 1, FN 0; ocean: TP 3, FP 0, FN 1; NA and rock absent from both -> NaN
    np.testing.assert_allclose(scores.iou, [np.nan, np.nan, 4 / 5, 3 / 4])
    np.testing.assert_allclose(scores.precision, [np.nan, np.nan, 4 / 5, 1.0])
    np.testing.assert_allclose(scores.recall, [np.nan, np.nan, 1.0, 3 / 4])
    np.testing.assert_allclose(scores.f1, [np.nan, np.nan, 8 / 9, 6 / 7])
    assert scores.macro("iou") == pytest.approx((4 / 5 + 3 / 4) / 2)
    assert scores.macro("f1") == pytest.approx((8 / 9 + 6 / 7) / 2)


def test_zone_scores_for_classes_only_predicted_or_only_true():
    true = np.array([[NA, NA, GLACIER, GLACIER]])
    pred = np.array([[ROCK, ROCK, GLACIER, GLACIER]])
    scores = metrics.zone_scores(true, pred)
    # NA only in the label, rock only predicted: every score 0 (0/0 counts 0, as in the CaFFe reference);
    # ocean in neither map: undefined
    np.testing.assert_allclose(scores.iou, [0.0, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(scores.precision, [0.0, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(scores.recall, [0.0, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(scores.f1, [0.0, 0.0, 1.0, np.nan])
    assert scores.macro("iou") == pytest.approx(1 / 3)
    assert scores.macro("precision") == pytest.approx(1 / 3)
    assert scores.macro("recall") == pytest.approx(1 / 3)


def _random_zone_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A label and a prediction of 12 x 12 px with random classes; some classes dropped from either map."""
    true = rng.integers(0, 4, size=(12, 12))
    pred = np.where(rng.random((12, 12)) < 0.7, true, rng.integers(0, 4, size=(12, 12)))
    for zones in (true, pred):
        for dropped in rng.choice(4, size=rng.integers(0, 3), replace=False):
            zones[zones == dropped] = rng.choice([c for c in range(4) if c != dropped])
    return true, pred


def test_zone_scores_equal_scikit_learn_with_its_default_zero_division():
    """The CaFFe reference scores zones with scikit-learn (average=None); 0/0 counts 0 there."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test extra")
    functions = {"iou": sklearn_metrics.jaccard_score, "precision": sklearn_metrics.precision_score,
                 "recall": sklearn_metrics.recall_score, "f1": sklearn_metrics.f1_score}
    rng = np.random.default_rng(7)
    n_missing_from_pred = n_missing_from_true = 0
    for _ in range(60):
        true, pred = _random_zone_pair(rng)
        scores = metrics.zone_scores(true, pred)
        present = np.isin(np.arange(4), np.union1d(true, pred))
        n_missing_from_pred += int((present & ~np.isin(np.arange(4), pred)).sum())
        n_missing_from_true += int((present & ~np.isin(np.arange(4), true)).sum())
        for score, function in functions.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scikit-learn warns about each 0/0 it sets to 0
                expected = function(true.ravel(), pred.ravel(), labels=[0, 1, 2, 3], average=None)
                reference = function(true.ravel(), pred.ravel(), average=None)  # as CaFFe calls it
            ours = getattr(scores, score)
            np.testing.assert_allclose(ours[present], expected[present], rtol=0, atol=1e-12)
            np.testing.assert_allclose(ours[present], reference, rtol=0, atol=1e-12)
            assert np.isnan(ours[~present]).all()
            if present.all():  # the reference's macro: the plain mean over the four classes
                assert scores.macro(score) == pytest.approx(reference.mean(), abs=1e-12)
    assert n_missing_from_pred > 5 and n_missing_from_true > 5   # the cases that matter were drawn


def test_perfect_zones_score_one():
    zones = np.array([[NA, ROCK], [GLACIER, OCEAN]])
    scores = metrics.zone_scores(zones, zones)
    for score in metrics.ZONE_SCORES:
        assert scores.macro(score) == 1.0


def test_confusion_matrix_counts_and_rejects_shape_mismatch():
    matrix = metrics.confusion_matrix(np.array([0, 1, 1, 3]), np.array([0, 1, 2, 3]))
    expected = np.zeros((4, 4), int)
    expected[0, 0] = expected[1, 1] = expected[1, 2] = expected[3, 3] = 1
    np.testing.assert_array_equal(matrix, expected)
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))


def test_summarise_zones_leaves_undefined_values_out():
    both = metrics.zone_scores(np.array([[GLACIER, OCEAN]]), np.array([[GLACIER, OCEAN]]))      # IoU 1, 1
    glacier_only = metrics.zone_scores(np.array([[GLACIER, GLACIER]]), np.array([[GLACIER, OCEAN]]))
    # glacier_only: glacier IoU 1/2, ocean predicted only -> IoU 0; macro 1/4
    summary = metrics.summarise_zones([both, glacier_only])
    assert summary["iou_macro"] == pytest.approx((1.0 + 0.25) / 2)
    assert summary["iou_glacier"] == pytest.approx(0.75)
    assert summary["iou_ocean"] == pytest.approx(0.5)
    assert math.isnan(summary["iou_na"]) and math.isnan(summary["recall_rock"])
    assert set(summary) == {f"{s}_{c}" for s in metrics.ZONE_SCORES for c in ("macro", *ZONE_CLASSES)}


def test_nan_mean():
    assert metrics.nan_mean([1.0, np.nan, 3.0]) == 2.0
    assert math.isnan(metrics.nan_mean([np.nan])) and math.isnan(metrics.nan_mean([]))
