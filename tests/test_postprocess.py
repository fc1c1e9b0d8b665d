"""Post-processing steps on small hand-made arrays with hand-derived expected outputs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nnunet_glacier import postprocess
from nnunet_glacier.caffe import BoundingBox
from nnunet_glacier.labels import FRONT_CLASS, GLACIER, NA, OCEAN, ROCK

G, O, R, N, F = GLACIER, OCEAN, ROCK, NA, FRONT_CLASS


def _pieces(mask: np.ndarray) -> int:
    return ndimage.label(mask, structure=np.ones((3, 3)))[1]


def test_min_front_pixels_is_a_float_threshold():
    assert postprocess.min_front_pixels(20.0) == 37.5
    assert postprocess.min_front_pixels(6.0) == 125.0
    assert postprocess.min_front_pixels(100.0, min_length_m=250.0) == 2.5
    with pytest.raises(ValueError, match="positive"):
        postprocess.min_front_pixels(0.0)


def test_remove_short_fronts_uses_8_connectivity_and_drops_equal_lengths():
    front = np.zeros((6, 8), np.uint8)
    front[0, 0], front[1, 1], front[2, 2] = 1, 1, 1   # one diagonal piece of 3 px
    front[5, 4:8] = 1                                  # a straight piece of 4 px
    assert postprocess.remove_short_fronts(front, 3.0).sum() == 4      # 3 px <= 3 dropped, 4 px kept
    assert postprocess.remove_short_fronts(front, 2.9).sum() == 7      # both kept
    assert not postprocess.remove_short_fronts(front, 4.0).any()       # both dropped
    assert postprocess.remove_short_fronts(front, 2.9).dtype == bool
    assert front.sum() == 7  # input untouched


def test_clean_zones_fills_islands_and_keeps_the_largest_ocean():
    zones = np.array([
        [R, R, G, G, O, O, O],
        [R, G, G, G, O, R, O],   # a rock island in the ocean -> ocean
        [N, G, O, G, O, O, O],   # a one-pixel ocean pool in the glacier -> glacier
        [N, G, G, G, O, O, O],
    ], np.uint8)
    expected = zones.copy()
    expected[1, 5] = O
    expected[2, 2] = G
    original = zones.copy()
    np.testing.assert_array_equal(postprocess.clean_zones(zones), expected)
    np.testing.assert_array_equal(zones, original)


def test_clean_zones_counts_diagonal_contacts_as_connected():
    zones = np.full((4, 4), G, np.uint8)
    zones[0, 0] = zones[1, 1] = O      # diagonal pair: one 8-connected ocean of 2 px
    zones[3, 3] = O                    # a separate ocean of 1 px -> glacier
    cleaned = postprocess.clean_zones(zones)
    assert cleaned[0, 0] == cleaned[1, 1] == O and cleaned[3, 3] == G


def test_clean_zones_without_ocean_or_land_is_unchanged():
    for value in (O, G):
        zones = np.full((3, 3), value, np.uint8)
        np.testing.assert_array_equal(postprocess.clean_zones(zones), zones)


def test_front_from_zones_takes_ocean_pixels_next_to_glacier():
    zones = np.full((6, 6), O, np.uint8)
    zones[:, :3] = G
    zones[0, 3] = R   # rock-ocean contact is no front
    front = postprocess.front_from_zones(zones, 4.9)
    expected = np.zeros((6, 6), bool)
    expected[1:, 3] = True   # (0, 3) is rock; (0, 4) touches glacier only diagonally
    np.testing.assert_array_equal(front, expected)
    assert not postprocess.front_from_zones(zones, 5.0).any()   # 5 px <= 5 dropped


def test_front_from_zones_treats_outside_as_non_glacier():
    zones = np.full((3, 3), O, np.uint8)
    zones[1, 1] = G
    front = postprocess.front_from_zones(zones, 0.0)
    expected = np.zeros((3, 3), bool)
    expected[0, 1] = expected[2, 1] = expected[1, 0] = expected[1, 2] = True
    np.testing.assert_array_equal(front, expected)


def test_zone_route_cleans_before_extracting():
    zones = np.full((5, 8), O, np.uint8)
    zones[:, :3] = G
    zones[2, 6] = G   # a glacier island in the ocean would add a front ring of 4 px
    front = postprocess.zone_route(zones, 0.0)
    expected = np.zeros((5, 8), bool)
    expected[:, 3] = True
    np.testing.assert_array_equal(front, expected)


def test_fused_to_zones_turns_front_into_ocean_and_dilates_glacier():
    fused = np.array([[G, G, F, F, O, O, R, N]] * 3, np.uint8)
    zones = postprocess.fused_to_zones(fused, dilation_px=3)   # 3 x 3 kernel: glacier grows by 1 px
    np.testing.assert_array_equal(zones, np.array([[G, G, G, O, O, O, R, N]] * 3, np.uint8))
    zones7 = postprocess.fused_to_zones(fused)                 # 7 x 7: by 3 px, over any class
    np.testing.assert_array_equal(zones7, np.array([[G, G, G, G, G, O, R, N]] * 3, np.uint8))
    assert (fused[:, 2] == F).all()  # input untouched


def test_fused_route_puts_the_front_inside_the_front_band():
    fused = np.full((40, 20), O, np.uint8)
    fused[:, :8] = G
    fused[:, 8:13] = F                     # a 5 px front band, columns 8..12
    front = postprocess.fused_route(fused, 10.0)
    expected = np.zeros((40, 20), bool)
    expected[:, 11] = True                 # glacier dilated by 3 px reaches column 10
    np.testing.assert_array_equal(front, expected)


def test_longest_paths_removes_side_branches_and_cuts_the_junction_corner():
    skeleton = np.zeros((12, 25), bool)
    skeleton[3, 2:22] = True    # 20 px main line
    skeleton[4:10, 12] = True   # 6 px side branch
    # As in the CaFFe reference (FilFinder), the medial-axis step first thins the junction pixel (3, 12) away:
    # its neighbours (3, 11), (4, 12), (3, 13) stay connected without it. The longest path then runs through
    # (4, 12), the branch's first pixel; the rest of the branch goes.
    expected = np.zeros_like(skeleton)
    expected[3, 2:22] = True
    expected[3, 12] = False
    expected[4, 12] = True
    np.testing.assert_array_equal(postprocess.longest_paths(skeleton), expected)


def test_longest_paths_keeps_the_longer_arms_of_each_piece():
    skeleton = np.zeros((20, 30), bool)
    skeleton[2, 0:10] = True                              # piece 1: a plain line stays whole
    skeleton[10, 5:25] = True                             # piece 2: a line with a diagonal spur
    for k in range(1, 4):
        skeleton[10 + k, 15 + k] = True
    kept = postprocess.longest_paths(skeleton)
    expected = np.zeros_like(skeleton)
    expected[2, 0:10] = True
    expected[10, 5:25] = True
    expected[10, 16], expected[11, 16] = False, True      # junction thinned away, as above; the spur's tip goes
    np.testing.assert_array_equal(kept, expected)
    assert not postprocess.longest_paths(np.zeros((4, 4), bool)).any()


def test_front_route_turns_a_band_into_one_line():
    band = np.zeros((15, 40), np.uint8)
    band[5:10, 3:37] = 1
    front = postprocess.front_route(band, 10.0)
    assert front.dtype == bool and _pieces(front) == 1
    assert (front <= (band > 0)).all()                 # inside the band
    assert front.sum(axis=0).max() == 1                # one pixel wide
    assert front.sum() >= 28                           # spans most of the band's 34 px length
    assert not postprocess.front_route(band, float(front.sum())).any()   # too short: dropped


def test_front_route_drops_short_blobs_and_branches():
    front_map = np.zeros((30, 60), np.uint8)
    front_map[4:9, 5:55] = 1        # long band
    front_map[9:20, 28:31] = 1      # a branch hanging off it
    front_map[24:27, 5:9] = 1       # a short blob
    front = postprocess.front_route(front_map, 8.0)
    assert _pieces(front) == 1
    assert not front[12:, :].any()  # the branch and the blob are gone
    assert front.sum(axis=0).max() == 1


def test_apply_bounding_box_clears_outside_and_none_keeps_all():
    front = np.ones((6, 8), bool)
    boxed = postprocess.apply_bounding_box(front, BoundingBox(x_min=2, x_max=5, y_min=1, y_max=4))
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(boxed, expected)
    np.testing.assert_array_equal(postprocess.apply_bounding_box(front, None), front)
    assert front.all()  # input untouched
