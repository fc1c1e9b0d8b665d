"""Deterministic front-task maps for checking the front route against the CaFFe reference.

Each case is a 0/1 ``uint8`` map (1 = front) as a network's front output
would be after the argmax: drawn one-pixel skeletons with junctions, loops
and spurs (the front route skeletonizes them again), thick bands with holes,
side blobs, gaps and noise, pieces on every image edge, pieces too small for
FilFinder, and real fronts of caffe_256 dilated and perturbed. Everything
is drawn from fixed seeds.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.draw import circle_perimeter, line

Case = tuple[str, np.ndarray]


def _canvas(rows: int = 48, cols: int = 64) -> np.ndarray:
    return np.zeros((rows, cols), np.uint8)


def _polyline(image: np.ndarray, *points: tuple[int, int]) -> np.ndarray:
    """Draw straight 8-connected segments through ``(row, col)`` points."""
    for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
        rows, cols = line(r0, c0, r1, c1)
        image[rows, cols] = 1
    return image


def _ring(image: np.ndarray, row: int, col: int, radius: int) -> np.ndarray:
    rows, cols = circle_perimeter(row, col, radius, shape=image.shape)
    image[rows, cols] = 1
    return image


def drawn_skeletons() -> Iterator[Case]:
    """One-pixel skeletons drawn by hand: junctions, ties, loops, spurs, staircases, tiny pieces, image edges."""
    yield "t_junction_equal_arms", _polyline(_polyline(_canvas(), (10, 4), (10, 44)), (10, 24), (30, 24))
    yield "t_junction_short_stem", _polyline(_polyline(_canvas(), (10, 4), (10, 60)), (10, 30), (16, 30))
    yield "cross", _polyline(_polyline(_canvas(), (24, 5), (24, 55)), (4, 30), (44, 30))
    yield "y_fork", _polyline(_canvas(), (40, 30), (24, 30), (6, 10)) | _polyline(_canvas(), (24, 30), (6, 52))
    yield "x_diagonals", _polyline(_polyline(_canvas(), (4, 4), (44, 44)), (4, 44), (44, 4))
    bubble = _polyline(_canvas(), (24, 2), (24, 20))
    _polyline(bubble, (24, 20), (16, 28), (16, 40), (24, 48), (32, 40), (32, 28), (24, 20))
    yield "line_with_bubble", _polyline(bubble, (24, 48), (24, 62))
    lopsided = _polyline(_canvas(), (24, 2), (24, 62))
    yield "line_with_side_loop", _polyline(lopsided, (24, 20), (12, 26), (12, 34), (24, 40))
    yield "ring_with_spur", _polyline(_ring(_canvas(), 24, 24, 12), (24, 36), (24, 58))
    yield "ring_with_two_spurs", _polyline(_polyline(_ring(_canvas(), 24, 30, 10), (24, 40), (24, 62)),
                                           (24, 20), (10, 2))
    eight = _ring(_ring(_canvas(), 24, 18, 9), 24, 36, 9)
    yield "figure_eight_with_tails", _polyline(_polyline(eight, (24, 45), (24, 62)), (24, 9), (24, 1))
    ladder = _polyline(_polyline(_canvas(), (14, 2), (14, 61)), (30, 2), (30, 61))
    for col in range(8, 60, 10):
        _polyline(ladder, (14, col), (30, col))
    yield "ladder", ladder
    comb = _polyline(_canvas(), (8, 2), (8, 61))
    for k, col in enumerate(range(5, 60, 7)):
        _polyline(comb, (8, col), (12 + 3 * k, col))
    yield "comb_of_spurs", comb
    stairs = _canvas()
    points = [(40, 2)]
    for _ in range(12):
        row, col = points[-1]
        points += [(row, col + 3), (row - 3, col + 3)]
    yield "staircase_4_connected", _polyline(stairs, *points)
    spiral = _canvas(64, 64)
    angle = np.linspace(0, 5 * np.pi, 400)
    spiral[np.round(32 + angle * 1.8 * np.sin(angle)).astype(int), np.round(32 + angle * 1.8 * np.cos(angle)).astype(int)] = 1
    yield "spiral", spiral
    grid = _canvas()
    for row in range(6, 44, 9):
        _polyline(grid, (row, 3), (row, 60))
    for col in range(3, 61, 11):
        _polyline(grid, (6, col), (42, col))
    yield "grid_of_loops", grid
    tiny = _canvas()
    tiny[5, 5] = 1
    tiny[10, 10:12] = 1
    tiny[15, 15:18] = 1
    tiny[20, 20:25] = 1
    tiny[26, 26:32] = 1
    _polyline(tiny, (32, 40), (40, 48))
    yield "tiny_pieces", tiny
    blocks = _canvas()
    blocks[5:7, 5:7] = 1
    blocks[12:15, 20:23] = 1
    _polyline(blocks, (30, 2), (30, 40))
    blocks[29:32, 18:21] = 1
    yield "blocks_on_a_line", blocks
    # pieces with junctions on every edge and corner of the image (FilFinder reads their intensities shifted)
    yield "junction_on_top_edge", _polyline(_polyline(_canvas(), (0, 4), (0, 50)), (0, 20), (20, 20))
    yield "junction_on_left_edge", _polyline(_polyline(_canvas(), (2, 0), (45, 0)), (20, 0), (20, 30))
    yield "junction_on_bottom_edge", _polyline(_polyline(_canvas(), (47, 3), (47, 60)), (47, 30), (25, 40))
    yield "junction_on_right_edge", _polyline(_polyline(_canvas(), (3, 63), (46, 63)), (25, 63), (25, 35))
    corner = _polyline(_polyline(_canvas(), (0, 0), (0, 30)), (0, 0), (30, 0))
    yield "junction_in_top_left_corner", _polyline(corner, (0, 10), (15, 25))
    loop_on_edge = _polyline(_canvas(), (0, 10), (10, 20), (0, 30))
    yield "loop_against_top_edge", _polyline(loop_on_edge, (10, 20), (40, 20))
    spanning = _polyline(_polyline(_canvas(), (0, 10), (47, 50)), (0, 0), (0, 63))
    yield "piece_spanning_the_image", _polyline(spanning, (47, 0), (47, 63), (20, 63))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random(shape), sigma)


def band_maps(seed: int = 0) -> Iterator[Case]:
    """Thick front bands as a network might predict them: holes (loops), side blobs (spurs), gaps, noise."""
    rng = np.random.default_rng(seed)
    for k in range(8):  # blobs of thresholded smooth noise: loops and spurs of every kind
        rows, cols = rng.integers(40, 96, size=2)
        noise = _smooth_noise(rng, (rows, cols), rng.uniform(1.5, 3.5))
        yield f"noise_blobs_{k}", (noise > np.quantile(noise, rng.uniform(0.5, 0.85))).astype(np.uint8)
    for k in range(8):
        rows, cols = 64, 96
        x = np.arange(cols)
        centre = rows / 2 + rng.uniform(4, 12) * np.sin(2 * np.pi * x / rng.uniform(30, 90) + rng.uniform(0, 6))
        width = rng.uniform(2, 5)
        band = (np.abs(np.arange(rows)[:, None] - centre[None, :]) <= width).astype(np.uint8)
        kind = ("holes", "spurs", "gaps", "speckle")[k % 4]
        if kind == "holes":
            for _ in range(rng.integers(2, 6)):
                col = rng.integers(5, cols - 5)
                band[int(centre[col]) - 1:int(centre[col]) + 2, col - 1:col + 2] = 0
        elif kind == "spurs":
            for _ in range(rng.integers(2, 6)):
                col = rng.integers(5, cols - 5)
                row = int(centre[col])
                end = int(np.clip(row + rng.choice([-1, 1]) * rng.integers(6, 20), 0, rows - 1))
                cv2.line(band, (int(col), row), (int(col + rng.integers(-8, 9)), end), 1, int(rng.integers(1, 4)))
        elif kind == "gaps":
            for _ in range(rng.integers(1, 4)):
                col = rng.integers(5, cols - 8)
                band[:, col:col + rng.integers(2, 6)] = 0
        else:
            band |= (rng.random(band.shape) < 0.02).astype(np.uint8)
        yield f"band_with_{kind}_{k}", band


def real_front_maps(caffe_256: Path, n_images: int = 6, seed: int = 1) -> Iterator[Case]:
    """caffe_256 test fronts dilated and perturbed (shifted, holes, spurs, gaps, noise), n_images of them."""
    rng = np.random.default_rng(seed)
    paths = sorted((caffe_256 / "fronts" / "test").glob("*_front.png"))[:n_images]
    for path in paths:
        front = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
        stem = path.name[:-len("_front.png")]
        band = ndimage.binary_dilation(front, np.ones((3, 3), bool), iterations=int(rng.integers(1, 3)))
        shifted = np.roll(band, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
        holes = band & ~(rng.random(band.shape) < 0.08)
        coords = np.argwhere(front)
        spurs = band.copy()
        for row, col in coords[rng.choice(len(coords), size=min(8, len(coords)), replace=False)]:
            end = (int(col + rng.integers(-15, 16)), int(row + rng.integers(-15, 16)))
            spurs = spurs | cv2.line(np.zeros(band.shape, np.uint8), (int(col), int(row)), end, 1, 2).astype(bool)
        gaps = band.copy()
        for row, col in coords[rng.choice(len(coords), size=min(3, len(coords)), replace=False)]:
            gaps[max(row - 4, 0):row + 5, max(col - 4, 0):col + 5] = False
        noisy = shifted | (_smooth_noise(rng, band.shape, 1.5) > 0.62)
        for kind, image in (("shifted", shifted), ("holes", holes), ("spurs", spurs), ("gaps", gaps),
                            ("noisy", noisy)):
            yield f"{stem}_{kind}", image.astype(np.uint8)


# A skeleton piece of bench_fidelity's perturbed Jorum_2010-11-05_TSX_7_1_110 (seed 0), after the medial-axis step:
# seven corner pixels, whose visiting order (a Python set's) decides which of the pixels at (row 6, column 8) and
# (row 7, column 7) joins the junction below the top line; here a set filled from a list of the corner pixels
# iterates in another order than one filled from a dict of them.
CORNER_ORDER_PIECE = (
    "........#............................",
    "........#............................",
    ".......#.............................",
    ".......#.............................",
    "........#............................",
    "........#............................",
    "........#............................",
    ".......##............................",
    "......#..#...........................",
    ".....#...#..#........................",
    "....#.....##.#.......................",
    "...#......#.#.#......................",
    "...#......#....#.....................",
    "..#.......#.....#....................",
    "..#........#.....#...................",
    ".#.........#......#..................",
    "#...........#......#.................",
    "#............##....#.................",
    "...............#####.................",
    "....................####.............",
    "........................##........#..",
    "..........................###.....#..",
    ".............................#####.##",
    ".............................#.......",
    ".............................#.......",
    ".............................#.......",
    "..............................###....",
)


def _from_art(rows: tuple[str, ...], margin: int = 3) -> np.ndarray:
    """A 0/1 map from rows of ``#`` (front) and ``.``, with an empty margin around."""
    return np.pad(np.array([[char == "#" for char in row] for row in rows], np.uint8), margin)


def found_cases() -> Iterator[Case]:
    """Pieces found where an earlier version of our route differed from the reference."""
    yield "junction_corners_in_set_order", _from_art(CORNER_ORDER_PIECE)


def all_cases(caffe_256: Path | None) -> list[Case]:
    """Every case: drawn skeletons, band maps, found cases and (if ``caffe_256`` is given) real perturbed fronts."""
    cases = [*drawn_skeletons(), *band_maps(), *found_cases()]
    if caffe_256 is not None:
        cases += list(real_front_maps(caffe_256))
    return cases
