"""Post-processing steps on small hand-made arrays with hand-derived expected outputs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nnunet_glacier.data.caffe import BoundingBox
from nnunet_glacier.data.labels import FRONT_CLASS, GLACIER, NA, OCEAN, ROCK
from nnunet_glacier.postprocessing import postprocess

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


def test_split_fused_front_splits_the_band_down_its_middle_without_dilating_glacier():
    fused = np.full((6, 16), O, np.uint8)
    fused[:, :8] = G
    fused[:, 8:13] = F                     # a 5 px band around a front at column 10
    fused[0, :3] = R                       # other classes stay as they are (no glacier dilation)
    fused[1, 14] = R
    zones = postprocess.split_fused_front(fused)
    expected = fused.copy()
    expected[:, 8:10] = G                  # nearer to glacier (1, 2 px) than to ocean (5, 4 px)
    expected[:, 10:13] = O                 # column 10: 3 px to both, a tie goes to the ocean
    np.testing.assert_array_equal(zones, expected)
    assert (fused[:, 8:13] == F).all()     # input untouched
    front = postprocess.zone_route(zones, 3.0)
    assert set(np.argwhere(front)[:, 1].tolist()) == {10}


def test_split_fused_front_without_glacier_or_ocean_makes_the_front_ocean():
    no_glacier = np.array([[R, F, F, O]], np.uint8)
    np.testing.assert_array_equal(postprocess.split_fused_front(no_glacier), [[R, O, O, O]])
    no_ocean = np.array([[G, F, F, R]], np.uint8)
    np.testing.assert_array_equal(postprocess.split_fused_front(no_ocean), [[G, O, O, R]])


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


# --- no-data: the edge band, the clean-up across no-data, all three routes ----------------------------------------

def fjord(shape=(40, 60), front_col=30) -> np.ndarray:
    """Rock walls (top and bottom 5 rows), glacier left of ``front_col``, ocean right of it."""
    zones = np.full(shape, G, np.uint8)
    zones[:, front_col:] = O
    zones[:5], zones[-5:] = R, R
    return zones


def distance_to_edge(nodata: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(np.pad(~nodata, 1))[1:-1, 1:-1]


def test_edge_band_is_within_the_margin_of_nodata_and_the_border():
    nodata = np.zeros((12, 14), bool)
    nodata[5, 7] = True
    band = postprocess.edge_band(nodata, margin_px=2.0)
    assert band[0].all() and band[1].all() and not band[2, 3:-3].any()  # rows 0, 1: 1 and 2 px from the outside
    assert band[5, 5:10].all() and band[3, 7] and not band[5, 4] and not band[2, 7]  # 2 px around the pixel


@pytest.mark.parametrize("margin_px", [1.0, 2.5, 3.0, 4.5])
def test_edge_band_and_nodata_reach_by_dilation_equal_the_distance_transforms(margin_px):
    rng = np.random.default_rng(int(margin_px * 10))
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(1, 50, 2))
        nodata = rng.random(shape) < rng.choice([0.0, 0.002, 0.03, 0.3])
        assert (postprocess.edge_band(nodata, margin_px) == (distance_to_edge(nodata) <= margin_px)).all()
        if nodata.any():
            expected = ndimage.distance_transform_edt(~nodata) <= margin_px
            assert (postprocess.within_distance(nodata, margin_px) == expected).all()
    assert not postprocess.within_distance(np.zeros((3, 4), bool), 2.0).any()


def test_nodata_along_the_swath_edge_makes_no_false_front():
    zones = fjord()
    nodata = np.zeros(zones.shape, bool)
    nodata[:, 52:] = True  # outside the swath
    zones[:, 52:] = G  # ... which the network took for glacier
    plain = postprocess.zone_route(zones, min_pixels=0)
    assert plain[:, 51].sum() == 30  # CaFFe's route: a false front along the swath edge
    aware = postprocess.zone_route(zones, min_pixels=0, nodata=nodata)
    assert aware.any() and (distance_to_edge(nodata)[aware] > postprocess.EDGE_MARGIN_PX).all()
    np.testing.assert_array_equal(np.argwhere(aware)[:, 1], 30)  # only the real front, in column 30
    assert (postprocess.clean_zones(zones, nodata)[nodata] == N).all()


def test_nodata_gap_across_the_fjord_does_not_split_its_ocean():
    zones = fjord()
    nodata = np.zeros(zones.shape, bool)
    nodata[:, 44:48] = True  # a gap between two swaths, across the ocean
    zones[:, 44:48] = G
    assert (postprocess.clean_zones(zones)[5:-5, 48:] == G).all()  # CaFFe's clean-up: the far ocean turns glacier
    cleaned = postprocess.clean_zones(zones, nodata)
    assert (cleaned[5:-5, 48:] == O).all() and (cleaned[nodata] == N).all()
    np.testing.assert_array_equal(np.argwhere(postprocess.zone_route(zones, 0, nodata=nodata))[:, 1], 30)


def test_front_running_into_nodata_and_the_border_is_cut_short_and_flagged():
    zones = fjord(front_col=30)
    zones[:5] = zones[-5:] = zones[20]  # no rock walls: the front runs from the top border to the bottom one
    nodata = np.zeros(zones.shape, bool)
    nodata[30:, :] = True  # a no-data band over the lower part
    front = postprocess.zone_route(zones, min_pixels=0, nodata=nodata)
    rows = np.nonzero(front)[0]
    assert rows.min() == 3 and rows.max() == 26  # 3 px from the top border and from the no-data
    assert postprocess.front_touches_edge(front, nodata) == (True, True)
    inner = np.zeros(zones.shape, bool)
    inner[10:20, 30] = True
    assert postprocess.front_touches_edge(inner, nodata) == (False, False)


def test_fused_and_front_routes_respect_nodata():
    fused = fjord()
    fused[:, 29:32] = F
    nodata = np.zeros(fused.shape, bool)
    nodata[:, 50:] = True
    fused[:, 50:] = G
    front = postprocess.fused_route(fused, min_pixels=0, nodata=nodata)
    assert front.any() and (distance_to_edge(nodata)[front] > postprocess.EDGE_MARGIN_PX).all()
    assert not front[:, 45:].any()
    band = np.zeros((40, 60), np.uint8)
    band[:, 28:33] = 1  # a front band from the top to the bottom border
    nodata = np.zeros(band.shape, bool)
    nodata[:10] = True
    line = postprocess.front_route(band, min_pixels=0, nodata=nodata)
    assert line.any() and (distance_to_edge(nodata)[line] > postprocess.EDGE_MARGIN_PX).all()


def test_nodata_aware_route_only_trims_the_border_of_a_scene_without_nodata():
    rng = np.random.default_rng(3)
    for _ in range(20):
        zones = ndimage.zoom(rng.integers(0, 4, (6, 8)), 5, order=0).astype(np.uint8)
        zones[rng.random(zones.shape) < 0.05] = rng.integers(0, 4)
        empty = np.zeros(zones.shape, bool)
        np.testing.assert_array_equal(postprocess.clean_zones(zones, empty), postprocess.clean_zones(zones))
        aware, plain = postprocess.zone_route(zones, 0, nodata=empty), postprocess.zone_route(zones, 0)
        distance = distance_to_edge(empty)  # only the image border: CaFFe's front away from it stays
        assert not (aware & ~plain).any() and (distance[aware] > postprocess.EDGE_MARGIN_PX).all()
        assert aware[plain & (distance > postprocess.EDGE_MARGIN_PX + 1)].all()
