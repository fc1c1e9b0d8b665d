"""The front route's longest path equals the CaFFe reference's (FilFinder's), pixel for pixel.

The comparison tests need ``fil_finder`` (the ``test`` extra) and are
skipped without it; the others check our own steps on arrays with known
answers.
"""
from __future__ import annotations

import front_cases
import numpy as np
import pytest
from conftest import CAFFE_256
from scipy import ndimage
from skimage.draw import circle_perimeter
from skimage.morphology import medial_axis, skeletonize

from nnunet_glacier.postprocessing import longest_path, postprocess

HAS_CAFFE_256 = (CAFFE_256 / "fronts" / "test").is_dir()
CASES = front_cases.all_cases(CAFFE_256 if HAS_CAFFE_256 else None)
MIN_PIXELS = 750.0 / 75.0   # the reference's 750 m at caffe_256's 75 m per pixel


@pytest.fixture(scope="module")
def reference():
    """The CaFFe reference post-processing (tests/caffe_reference.py); skipped without fil_finder."""
    pytest.importorskip("fil_finder", reason="fil_finder (test extra) runs the CaFFe reference")
    import caffe_reference

    return caffe_reference


def test_there_are_enough_varied_cases():
    if not HAS_CAFFE_256:
        pytest.skip(f"real CaFFe sample not found at {CAFFE_256}: its front maps are part of the 50 cases")
    names = [name for name, _ in CASES]
    assert len(names) == len(set(names)) >= 50
    for kind in ("loop", "spur", "gaps", "noise", "tiny", "edge", "bubble", "ladder"):
        assert any(kind in name for name in names), kind


@pytest.mark.parametrize("name, front_map", CASES, ids=[name for name, _ in CASES])
def test_front_route_equals_the_caffe_reference(reference, name, front_map):
    expected = reference.front_route(front_map, 0.0)
    np.testing.assert_array_equal(postprocess.front_route(front_map, 0.0), expected, err_msg=name)
    np.testing.assert_array_equal(postprocess.front_route(front_map, MIN_PIXELS),
                                  reference.drop_short(expected, MIN_PIXELS), err_msg=name)


def _random_pieces(n: int, seed: int = 3) -> list[np.ndarray]:
    """Random 8-connected pixel sets (the largest blob of random pixels): bounding box and a 1 px border.

    The frame matters: FilFinder visits corner pixels in an order that depends on their coordinates in it.
    """
    rng = np.random.default_rng(seed)
    pieces = []
    while len(pieces) < n:
        size = int(rng.integers(6, 16))
        blobs, n_blobs = ndimage.label(rng.random((size, size)) < rng.uniform(0.3, 0.6), structure=np.ones((3, 3)))
        if n_blobs:
            piece = blobs == np.bincount(blobs.ravel())[1:].argmax() + 1
            if piece.sum() >= 3:
                pieces.append(np.pad(piece[ndimage.find_objects(piece.astype(int))[0]], 1))
    return pieces


@pytest.mark.parametrize("index, piece", list(enumerate(_random_pieces(40))))
def test_piece_analysis_equals_filfinders_on_any_pixel_set(reference, index, piece):
    """Blocks, hooks and touching ends, which the medial-axis step rarely leaves, against FilFinder's own analysis."""
    try:
        expected = reference.filament_longpath(piece)
    except ValueError:
        pytest.skip("FilFinder fails on this pixel set")
    coords = np.argwhere(piece)
    on_path = longest_path.piece_longest_path(coords, np.ones(len(coords)))
    np.testing.assert_array_equal(on_path, expected[piece])


def test_a_closed_loop_fails_in_filfinder_and_is_kept_whole(reference):
    ring = np.zeros((30, 30), np.uint8)
    rows, cols = circle_perimeter(15, 15, 10)
    ring[rows, cols] = 1
    ring = skeletonize(ring).astype(np.uint8)
    with pytest.raises(ValueError, match="maximum path"):
        reference.skeleton_longpath(ring)
    np.testing.assert_array_equal(postprocess.longest_paths(ring), ring > 0)


def test_a_map_that_is_front_everywhere_is_returned_as_it_is(reference):
    everywhere = np.ones((8, 9), np.uint8)
    np.testing.assert_array_equal(reference.front_route(everywhere, MIN_PIXELS), everywhere > 0)
    np.testing.assert_array_equal(postprocess.front_route(everywhere, MIN_PIXELS), everywhere > 0)


class PublishedTieBreak(np.random.Generator):
    """``medial_axis``'s tie-break as in scikit-image <= 0.18: ``RandomState(0).permutation``."""

    def permutation(self, x):
        return np.random.RandomState(0).permutation(x)


# A junction where the medial-axis step can thin (4, 4) or (4, 5) but not both: the tie-break decides which.
TIED = np.zeros((12, 12), bool)
TIED[0:4, 5] = TIED[4, 1:9] = TIED[6:9, 5] = TIED[5, 4] = TIED[5, 0] = True


def test_thinning_is_scikit_images_medial_axis_with_the_published_tie_break():
    outcomes = {medial_axis(TIED, rng=seed).tobytes() for seed in range(8)}
    assert len(outcomes) > 1   # the tie-break matters here
    published = medial_axis(TIED, rng=PublishedTieBreak(np.random.PCG64(0)))
    np.testing.assert_array_equal(longest_path.thin_like_medial_axis(TIED), published)
    rng = np.random.default_rng(5)
    for _ in range(20):
        noise = ndimage.gaussian_filter(rng.random((60, 60)), 2.5)
        skeleton = skeletonize(noise > np.quantile(noise, 0.7))
        np.testing.assert_array_equal(longest_path.thin_like_medial_axis(skeleton),
                                      medial_axis(skeleton, rng=PublishedTieBreak(np.random.PCG64(0))))


def _length(mask: np.ndarray) -> float:
    pixels = longest_path.PixelSet.of(np.argwhere(mask))
    return longest_path._lengths(pixels, np.ones(len(pixels), dtype=np.int64), 1)[1]


def test_branch_length_counts_runs_diagonals_and_their_joins():
    assert _length(np.ones((1, 5), bool)) == 4.0
    assert _length(np.eye(4, dtype=bool)) == pytest.approx(3 * np.sqrt(2))
    bent = np.zeros((4, 5), bool)
    bent[0, 0:3] = True             # a run of 3 (length 2) ...
    bent[1, 3] = bent[2, 4] = True  # ... then two diagonal steps; the join adds one more sqrt(2)
    assert _length(bent) == pytest.approx(2 + np.sqrt(2) + np.sqrt(2))
    assert _length(np.ones((1, 1), bool)) == 0.5


def test_pattern_counts_equal_scipys_hit_or_miss_per_label():
    rng = np.random.default_rng(2)
    patterns = ([(np.rot90(p, k), 1) for k in range(4) for p in longest_path._JOINS]
                + [(np.rot90(p, k), -1) for k in range(4) for p in longest_path._DOUBLE_JOINS]
                + [(np.rot90(p, k), -1) for k in range(2) for p in longest_path._STAIRS])
    for _ in range(30):
        labels = ndimage.label(rng.random((12, 14)) < 0.45, structure=np.ones((3, 3)))[0]
        labels[rng.random(labels.shape) < 0.1] = 0   # pixels of no label, and labels split into several pieces
        n_labels = int(labels.max())
        expected = np.zeros(n_labels + 1, dtype=int)
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None:
                own = labels[box] == label
                expected[label] = sum(sign * int(ndimage.binary_hit_or_miss(own, structure1=p).sum())
                                      for p, sign in patterns)
        coords = np.argwhere(labels > 0)
        counts = longest_path.join_counts(coords, labels[labels > 0], n_labels)
        np.testing.assert_array_equal(counts[1:], expected[1:])


def test_pieces_on_the_top_or_left_edge_read_shifted_intensities():
    skeleton = np.zeros((6, 7), bool)
    skeleton[0, 1:6] = True
    frame = np.argwhere(np.ones((3, 7), bool))    # the frame of the piece: image rows -1..1, columns 0..6

    def samples(image: np.ndarray, top_left: tuple[int, int], bottom_right: tuple[int, int]) -> np.ndarray:
        corners = np.tile(top_left, (len(frame), 1)), np.tile(bottom_right, (len(frame), 1))
        return longest_path.intensity_samples(image.shape, image, *corners, frame).reshape(3, 7)

    on_edge = samples(skeleton, (0, 1), (0, 5))   # a piece on the top edge
    assert np.isnan(on_edge[0]).all()              # above the padded image
    np.testing.assert_array_equal(on_edge[1], 0.0)  # the padding row: the piece's own pixels read 0
    np.testing.assert_array_equal(on_edge[2], [0, 1, 1, 1, 1, 1, 0])
    lower = np.roll(skeleton, 2, axis=0)           # away from the edge: each pixel reads itself
    np.testing.assert_array_equal(samples(lower, (2, 1), (2, 5))[1], [0, 1, 1, 1, 1, 1, 0])
