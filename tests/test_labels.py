"""Label builders and the multi-task encoding, checked against brute-force per-pixel definitions."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnunet_glacier.data import labels

NEIGHBOURS_4 = ((-1, 0), (1, 0), (0, -1), (0, 1))

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
zone_maps = shapes.flatmap(lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 3)))


def brute_force_touches(mask: np.ndarray, row: int, col: int) -> bool:
    """Whether a 4-neighbour of (row, col) inside the image is true in ``mask``."""
    return any(0 <= row + dr < mask.shape[0] and 0 <= col + dc < mask.shape[1] and mask[row + dr, col + dc]
               for dr, dc in NEIGHBOURS_4)


def brute_force_dilate(mask: np.ndarray, kernel_px: int) -> np.ndarray:
    """Dilation with a square kernel centred as OpenCV centres it (anchor at ``kernel_px // 2``)."""
    out = np.zeros(mask.shape, np.uint8)
    before = kernel_px // 2
    after = kernel_px - 1 - before
    for row, col in zip(*np.nonzero(mask)):
        out[max(row - after, 0):row + before + 1, max(col - after, 0):col + before + 1] = 1
    return out


@settings(max_examples=60, deadline=None)
@given(zone_maps)
def test_glacier_boundary_matches_its_per_pixel_definition(zones):
    not_ice = (zones == labels.ROCK) | (zones == labels.NA)
    boundary = np.zeros(zones.shape, np.uint8)
    for row, col in np.ndindex(zones.shape):
        boundary[row, col] = zones[row, col] == labels.GLACIER and brute_force_touches(not_ice, row, col)
    np.testing.assert_array_equal(labels.glacier_boundary(zones, 1), boundary)
    np.testing.assert_array_equal(labels.glacier_boundary(zones, 5), brute_force_dilate(boundary, 5))


@settings(max_examples=60, deadline=None)
@given(zone_maps)
def test_front_from_zones_is_ocean_next_to_glacier(zones):
    glacier = zones == labels.GLACIER
    expected = np.zeros(zones.shape, np.uint8)
    for row, col in np.ndindex(zones.shape):
        expected[row, col] = zones[row, col] == labels.OCEAN and brute_force_touches(glacier, row, col)
    np.testing.assert_array_equal(labels.front_from_zones(zones), expected)


@settings(max_examples=40, deadline=None)
@given(zone_maps, st.data())
def test_fused_label_burns_the_front_into_the_zones(zones, data):
    front = data.draw(arrays(np.uint8, zones.shape, elements=st.integers(0, 1)))
    fused = labels.fused_label(zones, front)
    for row, col in np.ndindex(zones.shape):
        assert fused[row, col] == (labels.FRONT_CLASS if front[row, col] else zones[row, col])


@pytest.mark.parametrize("kernel_px", range(1, 10))
def test_dilate_grows_a_single_pixel_to_a_square_of_the_kernel_size(kernel_px):
    mask = np.zeros((21, 21), np.uint8)
    mask[10, 10] = 1
    grown = labels.dilate(mask, kernel_px)
    rows, cols = np.nonzero(grown)
    assert grown.sum() == kernel_px ** 2
    assert rows.max() - rows.min() + 1 == kernel_px and cols.max() - cols.min() + 1 == kernel_px
    assert grown[10, 10] == 1


def test_front_label_dilates_a_line_to_five_pixels():
    front = np.zeros((11, 11), np.uint8)
    front[:, 5] = 1
    widths = labels.front_label(front, 5).sum(axis=1)
    assert (widths == 5).all()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_encode_decode_round_trip(data):
    class_counts = data.draw(st.lists(st.integers(2, 6), min_size=1, max_size=3))
    shape = data.draw(shapes)
    maps = [data.draw(arrays(np.uint8, shape, elements=st.integers(0, n - 1))) for n in class_counts]
    encoded = labels.encode_tasks(maps, class_counts)
    assert encoded.max() < np.prod(class_counts)
    for decoded, original in zip(labels.decode_tasks(encoded, class_counts), maps):
        np.testing.assert_array_equal(decoded, original)


def test_encoding_is_zone_plus_four_times_front_plus_eight_times_boundary():
    zones, front, boundary = np.array([[3]]), np.array([[1]]), np.array([[1]])
    assert labels.encode_tasks([zones, front], [4, 2])[0, 0] == 3 + 4
    assert labels.encode_tasks([zones, front, boundary], [4, 2, 2])[0, 0] == 3 + 4 + 8


def test_encoding_uses_the_smallest_sufficient_dtype():
    assert labels.encode_tasks([np.zeros((2, 2))], [256]).dtype == np.uint8
    assert labels.encode_tasks([np.zeros((2, 2)), np.zeros((2, 2))], [16, 17]).dtype == np.uint16


def test_decode_works_on_torch_tensors():
    torch = pytest.importorskip("torch")
    zone, front = labels.decode_tasks(torch.tensor([[7, 2]]), [4, 2])
    assert zone.tolist() == [[3, 2]] and front.tolist() == [[1, 0]]


@pytest.mark.parametrize("maps, counts, problem", [
    ([np.array([[4]])], [4], "0..3"),
    ([np.array([[-1]])], [4], "0..3"),
    ([np.zeros((2, 2)), np.zeros((2, 3))], [4, 2], "shape"),
    ([np.zeros((2, 2))], [4, 2], "one class count per map"),
    ([], [], "one class count per map"),
])
def test_encode_rejects_bad_maps(maps, counts, problem):
    with pytest.raises(ValueError, match=problem):
        labels.encode_tasks(maps, counts)


def test_decode_rejects_classes_beyond_the_encoding():
    with pytest.raises(ValueError, match="0..7"):
        labels.decode_tasks(np.array([[8]]), [4, 2])
