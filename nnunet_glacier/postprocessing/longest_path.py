"""The longest path through each piece of a one-pixel skeleton, pixel for pixel as the CaFFe reference finds it.

The CaFFe evaluation (Gourmelon et al. 2022, reused by Herrmann et al. 2023)
runs FilFinder (``fil_finder``; ``FilFinder2D(skeleton, mask=skeleton)``,
``preprocess_image(skip_flatten=True)``, ``create_mask(use_existing_mask=True)``,
``medskel()``, ``analyze_skeletons(skel_thresh=5 px)``) on the skeleton of a
front-task prediction and keeps ``skeleton_longpath``. :func:`longest_paths`
computes the same pixels without FilFinder. What FilFinder does with these
arguments (read from fil_finder 1.8 and checked against it in
``tests/test_longest_path.py``):

1. **Medial-axis thinning** (``medskel``): ``skimage.morphology.medial_axis``
   of the skeleton. It visits every pixel once, by increasing distance to the
   background, then by decreasing number of neighbours, then by a random
   tie-break, and removes a pixel with at least two neighbours whose
   neighbours stay one 8-connected group without it. On a skeleton this
   removes redundant pixels at staircases and junctions; which of two
   competing pixels goes depends on the tie-break. FilFinder 1.8 with
   scikit-image >= 0.19 draws it unseeded (so the reference is not
   repeatable); scikit-image <= 0.18, current when the reference was
   published, used ``numpy.random.RandomState(0).permutation`` over the
   skeleton pixels in raster order. We use that fixed permutation
   (:data:`TIE_BREAK_SEED`). Narrow-width pruning removes nothing (every
   skeleton pixel is >= 1 px from the background).
2. **Short skeletons** (``skel_thresh``): FilFinder takes
   ``min(ceil(skel_thresh), 1 px)``, so only isolated single pixels go, not
   pieces of <= 5 px.
3. **Per piece** (8-connected), in a frame around the piece with a 1 px
   border:

   a. *Clean-up*, applied 9 times (FilFinder's pruning loop never stops early
      and runs 10 rounds; the path comes from the 10th): remove, all at once,
      every pixel whose neighbours form a single contiguous run (going round
      the 8 neighbours) of >= 2 pixels, and every pixel with no neighbour.
   b. *Pixel classes* from the 8 neighbours (``runs`` = contiguous runs of
      neighbours going round, ``n`` = number of neighbours): end (runs <= 1);
      body (runs 2, n 2); intersection (runs >= 3); with runs 2 and n >= 3: a
      full side row/column of 3 makes a "T" pixel (n 3 end, n 4 body, else
      intersection), an L of 3 closing a 2 x 2 block a block pixel (counts as
      intersection), anything else a corner pixel. Corner pixels are then
      visited in the iteration order of a Python ``set`` filled from the
      list of their ``(row, col)`` tuples in the frame, in raster order (as
      FilFinder does; how a set is filled changes its order): one stays on
      its branch if exactly one diagonal neighbour is an end pixel, else
      joins the intersections if exactly one of its neighbours is an
      intersection pixel (pixels joined before it count).
   c. *Intersections* are the 8-connected groups of intersection pixels,
      named A, B, ... in label order; *branches* the 8-connected pieces of the
      remaining pixels, labelled 1, 2, ... (end pixels touching another end
      pixel each become a branch of their own, labelled last).
   d. *Branch length*: 0.5 for one pixel, else FilFinder's morphological
      length: steps along 4-connected runs count 1, diagonal-only steps
      sqrt(2), plus sqrt(2) where a 4-connected run meets a diagonal step
      (hit-or-miss patterns, see :func:`_lengths`).
   e. *Graph*: nodes are the branches holding an end pixel and the
      intersections; a branch with an end joins each intersection it touches;
      two intersections touching the same branch are joined by it, and if
      they share several branches (a loop) only the one of least weight is an
      edge. A branch between one intersection and itself joins nothing. Edge
      weight = ``0.5 * length / total length + 0.5 * intensity / total
      intensity``, the intensity being the branch's mean over FilFinder's
      image, which is the skeleton itself: 1 on every branch, so each edge of
      a path adds a constant ``0.5 / number of branches`` -- except for a
      piece touching the top or left image edge, for which FilFinder reads
      its image one pixel off (:func:`intensity_samples`); its branches then
      read means between 0 and 1, or none at all (NaN). A NaN weight (also
      from a total intensity of 0) makes a branch equal to nothing, so it
      joins nothing.
   f. *Longest path*: the pair of nodes farthest apart by shortest-path
      weight (first in networkx's order on ties); then the simple paths
      between them in order of fewest edges, kept while their weight does not
      drop; the heaviest of those. (So around a loop the path follows the
      lighter side.)
   g. *Pixels*: the branches along the path (every branch that is an edge
      between consecutive nodes), plus the pixels of the intersections on it,
      from which pixels are removed one by one (path order, then raster
      order, repeated until none goes) wherever the path stays one 8-connected
      piece. A graph of one node keeps every branch pixel of the piece and no
      intersection pixel.

Where FilFinder fails (a closed loop with no end and no intersection: "Unable
to find maximum path") we keep the loop whole. A set's iteration order is
CPython's; the test against ``fil_finder`` checks it on the running Python.
"""
from __future__ import annotations

import heapq
import itertools
import operator
import string
from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
#: Seed of ``numpy.random.RandomState`` whose permutation breaks ties in the medial-axis thinning (see step 1).
TIE_BREAK_SEED = 0
#: FilFinder's pruning rounds: the clean-up (step 3a) is applied this many times minus one.
PRUNE_ROUNDS = 10
#: FilFinder's cap on the number of simple paths compared (it raises beyond; we keep the best so far).
MAX_SIMPLE_PATHS = 500

# The 8 neighbours (row, col offsets), going round clockwise from north; bit k of a neighbour code is OFFSETS[k].
OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
N, NE, E, SE, S, SW, W, NW = range(8)
DIAGONALS = (NE, SE, SW, NW)
SIDE_LINES = ((NW, N, NE), (NE, E, SE), (SE, S, SW), (SW, W, NW))      # a full row/column on one side: "T"
BLOCK_CORNERS = ((N, NE, E), (E, SE, S), (S, SW, W), (W, NW, N))        # an L closing a 2 x 2 block

END, BODY, INTERSECTION, BLOCK, CORNER = range(5)


# --- neighbour codes -------------------------------------------------------------------------------------------

def _bits(code: int) -> list[bool]:
    return [bool(code >> k & 1) for k in range(8)]


def _runs(bits: list[bool]) -> int:
    """Contiguous runs of set neighbours going round (0 if none or all are set)."""
    return sum(bits[k] and not bits[(k + 1) % 8] for k in range(8))


def _groups(bits: list[bool]) -> int:
    """8-connected groups formed by the set neighbours within the 3 x 3 window (centre left out)."""
    window = np.zeros((3, 3), dtype=bool)
    for k, (d_row, d_col) in enumerate(OFFSETS):
        window[1 + d_row, 1 + d_col] = bits[k]
    return ndimage.label(window, structure=EIGHT_CONNECTED)[1]


def _has_any(bits: list[bool], patterns: tuple[tuple[int, ...], ...]) -> bool:
    return any(all(bits[k] for k in pattern) for pattern in patterns)


def _pixel_class(bits: list[bool]) -> int:
    """FilFinder's class of a skeleton pixel from its neighbours (step 3b, before corner pixels are resolved)."""
    runs, count = _runs(bits), sum(bits)
    if runs <= 1:
        return END
    if runs >= 3:
        return INTERSECTION
    if count == 2:
        return BODY
    if _has_any(bits, SIDE_LINES):
        return {3: END, 4: BODY}.get(count, INTERSECTION)
    if _has_any(bits, BLOCK_CORNERS):
        return BLOCK
    return CORNER


_ALL_BITS = [_bits(code) for code in range(256)]
#: Neighbour code -> the pixel may go in the medial-axis thinning (>= 2 neighbours, one group without it).
THINNABLE = np.array([sum(b) >= 2 and _groups(b) == 1 for b in _ALL_BITS])
#: Neighbour code -> the clean-up of step 3a removes the pixel.
EXTRANEOUS = np.array([_runs(b) == 0 or (_runs(b) == 1 and sum(b) >= 2) for b in _ALL_BITS])
#: Neighbour code -> pixel class (step 3b).
PIXEL_CLASS = np.array([_pixel_class(b) for b in _ALL_BITS], dtype=np.int8)
#: Neighbour code -> number of set neighbours.
N_NEIGHBOURS = np.array([sum(b) for b in _ALL_BITS], dtype=np.int8)
#: Neighbour code -> number of neighbour groups within the 3 x 3 window.
NEIGHBOUR_GROUPS = np.array([_groups(b) for b in _ALL_BITS], dtype=np.int8)


# --- pixel sets as coordinates ---------------------------------------------------------------------------------

def neighbour_table(coords: np.ndarray) -> np.ndarray:
    """For pixels ``coords`` (``(n, 2)``, raster order), the index of each one's neighbour k, or -1: ``(n, 8)``."""
    coords = np.asarray(coords, dtype=np.int64)
    if len(coords) == 0:
        return np.zeros((0, 8), dtype=np.int64)
    rows, cols = coords[:, 0] + 1, coords[:, 1] + 1   # keep every neighbour's row and column >= 0
    width = int(cols.max()) + 2
    keys = rows * width + cols
    table = np.empty((len(coords), 8), dtype=np.int64)
    for k, (d_row, d_col) in enumerate(OFFSETS):
        wanted = (rows + d_row) * width + cols + d_col
        found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        table[:, k] = np.where(keys[found] == wanted, found, -1)
    return table


@dataclass(frozen=True)
class PixelSet:
    """Pixels (``coords``, ``(n, 2)`` rows and columns in raster order) and their :func:`neighbour_table`."""

    coords: np.ndarray
    table: np.ndarray

    @classmethod
    def of(cls, coords: np.ndarray) -> PixelSet:
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        return cls(coords, neighbour_table(coords))

    def __len__(self) -> int:
        return len(self.coords)

    def codes(self, members: np.ndarray) -> np.ndarray:
        """Neighbour codes within ``members`` (``bool`` per pixel)."""
        present = (self.table >= 0) & members[np.maximum(self.table, 0)]
        return (present.astype(np.uint8) << np.arange(8, dtype=np.uint8)).sum(axis=1).astype(np.uint8)

    def components(self, members: np.ndarray, four: bool = False) -> tuple[np.ndarray, int]:
        """Connected components of the ``members`` pixels (8-connected, or 4-connected if ``four``).

        Returns a label per pixel (0 for non-members; 1..n numbered in raster
        order of each component's first pixel, as ``scipy.ndimage.label``)
        and n. Labels a grid over the members' bounding box when that is
        small, else a sparse graph of the members.
        """
        index = np.flatnonzero(members)
        labels = np.zeros(len(members), dtype=np.int64)
        if len(index) == 0:
            return labels, 0
        coords = self.coords[index]
        low, high = coords.min(axis=0), coords.max(axis=0)
        if np.prod(high - low + 1) <= 16 * len(index) + 1024:
            grid = np.zeros(tuple(high - low + 1), dtype=bool)
            grid[coords[:, 0] - low[0], coords[:, 1] - low[1]] = True
            grid_labels, n_components = ndimage.label(grid, structure=None if four else EIGHT_CONNECTED)
            labels[index] = grid_labels[coords[:, 0] - low[0], coords[:, 1] - low[1]]
            return labels, n_components
        directions = (N, E, S, W) if four else tuple(range(8))
        position = np.full(len(members), -1, dtype=np.int64)
        position[index] = np.arange(len(index))
        neighbours = self.table[np.ix_(index, np.asarray(directions))]
        linked = (neighbours >= 0) & members[np.maximum(neighbours, 0)]
        sources = np.repeat(np.arange(len(index)), len(directions)).reshape(linked.shape)[linked]
        graph = csr_matrix((np.ones(len(sources), dtype=np.int8), (sources, position[neighbours[linked]])),
                           shape=(len(index), len(index)))
        n_components, raw = connected_components(graph, directed=False)
        first = np.unique(raw, return_index=True)[1]      # the first (raster order) pixel of each raw component
        renumber = np.empty(n_components, dtype=np.int64)
        renumber[raw[np.sort(first)]] = np.arange(1, n_components + 1)
        labels[index] = renumber[raw]
        return labels, n_components


def _code_at(pixel: tuple[int, int], pixels: set[tuple[int, int]]) -> int:
    """The neighbour code of one pixel within a set of pixels."""
    return sum(1 << k for k, (d_row, d_col) in enumerate(OFFSETS) if (pixel[0] + d_row, pixel[1] + d_col) in pixels)


# --- step 1: medial-axis thinning ------------------------------------------------------------------------------

def _distances_to_background(mask: np.ndarray, pixels: PixelSet) -> np.ndarray:
    """Euclidean distance (px) of each of the ``pixels`` of ``mask`` to the nearest unset pixel of the image.

    As ``scipy.ndimage.distance_transform_edt`` of the whole image, but
    computed in small windows: 1 where a 4-neighbour inside the image is
    unset, else in a window grown until it holds the nearest unset pixel.
    """
    rows, cols = mask.shape
    coords, table = pixels.coords, pixels.table
    distances = np.ones(len(coords))
    outside = [(coords[:, 0] + d_row < 0) | (coords[:, 0] + d_row >= rows) | (coords[:, 1] + d_col < 0)
               | (coords[:, 1] + d_col >= cols) for d_row, d_col in (OFFSETS[N], OFFSETS[E], OFFSETS[S], OFFSETS[W])]
    deep = np.logical_and.reduce([(table[:, k] >= 0) | out for k, out in zip((N, E, S, W), outside)])
    for index in np.flatnonzero(deep):
        row, col = coords[index]
        radius = 2
        while True:
            top, left = max(row - radius, 0), max(col - radius, 0)
            window = mask[top:row + radius + 1, left:col + radius + 1]
            distance = ndimage.distance_transform_edt(window)[row - top, col - left]
            if window.shape == mask.shape or (not window.all() and distance <= radius):
                distances[index] = distance
                break
            radius *= 2
    return distances


def thin_like_medial_axis(skeleton: np.ndarray) -> np.ndarray:
    """``skimage.morphology.medial_axis`` of a one-pixel skeleton with the published reference's tie-break.

    Pixels are visited by increasing distance to the background, then by
    decreasing number of neighbours, then by the rank that
    ``RandomState(TIE_BREAK_SEED).permutation`` gives them in raster order; a
    visited pixel goes if :data:`THINNABLE` (at that moment). Returns a new
    ``bool`` mask.
    """
    mask = np.asarray(skeleton) > 0
    coords = _thinned_pixels(mask)
    thinned = np.zeros_like(mask)
    thinned[coords[:, 0], coords[:, 1]] = True
    return thinned


def _thinned_pixels(mask: np.ndarray) -> np.ndarray:
    """The pixels (raster order) of :func:`thin_like_medial_axis`'s result for a ``bool`` mask.

    Only pixels that are thinnable at the start, and neighbours of removed
    pixels, can change, so only those are visited.
    """
    pixels = PixelSet.of(np.argwhere(mask))
    coords, table = pixels.coords, pixels.table
    alive = np.ones(len(coords), dtype=bool)
    codes = pixels.codes(alive)
    tie_break = np.random.RandomState(TIE_BREAK_SEED).permutation(len(coords))
    order = np.lexsort((tie_break, 8 - N_NEIGHBOURS[codes], _distances_to_background(mask, pixels)))
    rank = np.empty(len(coords), dtype=np.int64)
    rank[order] = np.arange(len(coords))
    heap = [(rank[i], i) for i in np.flatnonzero(THINNABLE[codes])]
    heapq.heapify(heap)
    visited = np.zeros(len(coords), dtype=bool)
    while heap:
        pixel_rank, i = heapq.heappop(heap)
        if visited[i]:
            continue
        visited[i] = True
        neighbours = table[i][table[i] >= 0]
        neighbours = neighbours[alive[neighbours]]
        code = sum(1 << k for k in range(8) if table[i, k] >= 0 and alive[table[i, k]])
        if not THINNABLE[code]:
            continue
        alive[i] = False
        for j in neighbours[rank[neighbours] > pixel_rank]:
            heapq.heappush(heap, (rank[j], j))
    return coords[alive]


# --- step 3: the pieces ----------------------------------------------------------------------------------------

def _intersection_names() -> Iterator[str]:
    """A, B, ..., Z, AA, AB, ...: FilFinder's intersection node names."""
    for length in itertools.count(1):
        for letters in itertools.product(string.ascii_uppercase, repeat=length):
            yield "".join(letters)


def _tuples(coords: np.ndarray) -> list[tuple[int, int]]:
    """Pixels as ``(row, col)`` tuples of Python ints (FilFinder keeps them in Python sets)."""
    return [(int(r), int(c)) for r, c in coords]


def _neighbours(pixel: tuple[int, int], offsets=OFFSETS) -> set[tuple[int, int]]:
    return {(pixel[0] + d_row, pixel[1] + d_col) for d_row, d_col in offsets}


def _members(values: np.ndarray, n: int) -> list[np.ndarray]:
    """For each value 1..n, the indices of the pixels with that value, in raster order."""
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(1, n + 2))
    return [order[bounds[k]:bounds[k + 1]] for k in range(n)]


def _resolve_corners(pixels: PixelSet, piece: np.ndarray, n_pieces: int, frame: np.ndarray,
                     classes: np.ndarray) -> np.ndarray:
    """Step 3b: which pixels are intersection pixels (intersections, blocks and the corners that join them).

    ``classes``: :data:`PIXEL_CLASS` per pixel (-1 for pixels gone); ``frame``:
    each pixel's coordinates in its piece's frame, which decide the order in
    which FilFinder (keeping a piece's corner pixels in a Python set) visits them.
    """
    ends = set(_tuples(pixels.coords[classes == END]))
    joining = set(_tuples(pixels.coords[classes == INTERSECTION]))
    diagonal = [OFFSETS[k] for k in DIAGONALS]
    for corners in _members(np.where(classes == CORNER, piece, 0), n_pieces):
        local_pixels = _tuples(frame[corners])
        index_of = dict(zip(local_pixels, corners))
        # FilFinder's order: a set filled from the raster-order list (not from a dict: CPython sizes a set made from
        # a dict at once and one made from a list step by step, so the same pixels can come out in another order)
        for local in list(set(local_pixels).difference(set())):
            row, col = pixels.coords[index_of[local]]
            corner = (int(row), int(col))
            if len(ends & _neighbours(corner, diagonal)) == 1:
                continue
            if len(joining & _neighbours(corner)) == 1:
                joining.add(corner)
    corner_index = np.flatnonzero(classes == CORNER)
    joints = (classes == INTERSECTION) | (classes == BLOCK)
    joints[corner_index] = [pixel in joining for pixel in _tuples(pixels.coords[corner_index])]
    return joints


def _numbered_in_pieces(labels: np.ndarray, n_labels: int, piece: np.ndarray,
                        n_pieces: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber component labels 1..n (raster order) 1, 2, ... within each piece.

    Returns the new number of each label (index 0 maps to 0) and each piece's
    number of labels (index 0 unused).
    """
    values, first_pixels = np.unique(labels, return_index=True)
    first_pixels = first_pixels[values > 0]
    label_piece = piece[first_pixels]
    counts = np.bincount(label_piece, minlength=n_pieces + 1)
    before = np.concatenate(([0], np.cumsum(counts)))
    order = np.argsort(label_piece, kind="stable")       # labels of each piece together, still in raster order
    numbers = np.zeros(n_labels + 1, dtype=np.int64)
    numbers[order + 1] = np.arange(n_labels) - before[label_piece[order]] + 1
    return numbers, counts


def _branch_labels(pixels: PixelSet, piece: np.ndarray, n_pieces: int, branches: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3c: each pixel's branch label within its piece (0 if none) and each piece's number of labels.

    Branches are 8-connected; an end pixel touching another end pixel gets a
    label of its own, after the others (group by group, raster order within).
    """
    end_groups, n_end_groups = pixels.components(ends)
    touching = ends & (np.bincount(end_groups, minlength=n_end_groups + 1)[end_groups] > 1)
    labels, n_labels = pixels.components(branches & ~touching)
    numbers, counts = _numbered_in_pieces(labels, n_labels, piece, n_pieces)
    labels = numbers[labels]
    extra = np.flatnonzero(touching)
    extra = extra[np.lexsort((extra, end_groups[extra], piece[extra]))]
    extra_piece = piece[extra]
    labels[extra] = counts[extra_piece] + 1 + np.arange(len(extra)) - np.searchsorted(extra_piece, extra_piece)
    return labels, counts + np.bincount(extra_piece, minlength=n_pieces + 1)


# FilFinder's length counts sqrt(2) per match of these hit-or-miss patterns (1 = set, 0 = unset, whole window,
# centred on the pixel at (rows // 2, cols // 2)): where a 4-connected run meets a diagonal step, in all four
# rotations ...
_JOINS = (np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], bool), np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0]], bool))
# ... less places that would count twice: a step between two diagonal steps (four rotations) and a staircase
# of two 2-pixel runs (two rotations each).
_DOUBLE_JOINS = (np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]], bool),)
_STAIRS = (np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool), np.array([[0, 0, 1, 1], [1, 1, 0, 0]], bool))


def _pattern_cells(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of all window cells from the pattern's centre, and whether each must be set."""
    cells = np.argwhere(np.ones(pattern.shape, bool)) - np.array(pattern.shape) // 2
    return cells, pattern.ravel()


#: (cells, wanted, sign) of every pattern rotation FilFinder counts (+1) or subtracts (-1).
_SIGNED_PATTERNS = ([(*_pattern_cells(np.rot90(p, k)), 1) for k in range(4) for p in _JOINS]
                    + [(*_pattern_cells(np.rot90(p, k)), -1) for k in range(4) for p in _DOUBLE_JOINS]
                    + [(*_pattern_cells(np.rot90(p, k)), -1) for k in range(2) for p in _STAIRS])


def join_counts(coords: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Per label 0..n, the signed number of pattern matches on that label's pixels alone.

    As ``binary_hit_or_miss`` on the bounding box of the label's pixels: a
    window matches where all its cells are as the pattern wants (other
    pixels and outside the box count unset) and its centre lies inside the
    box. Only windows with a pixel at the pattern's first set cell can match,
    so only those are looked at, all patterns and labels in one lookup.
    ``coords`` in raster order; ``labels`` per pixel, 0 = not counted.
    """
    counts = np.zeros(n_labels + 1, dtype=np.int64)
    counted = labels > 0
    if not counted.any():
        return counts
    own, own_labels = coords[counted], labels[counted]
    low = np.full((n_labels + 1, 2), np.iinfo(np.int64).max)
    high = np.full((n_labels + 1, 2), np.iinfo(np.int64).min)
    np.minimum.at(low, own_labels, own)
    np.maximum.at(high, own_labels, own)
    shift = coords.min(axis=0) - 3                           # keys over non-negative rows and columns
    width = int(coords[:, 1].max() - shift[1]) + 4
    keys = (coords[:, 0] - shift[0]) * width + coords[:, 1] - shift[1]
    windows, window_labels = [], []
    for cells, wanted, _ in _SIGNED_PATTERNS:
        centres = own - cells[np.argmax(wanted)]
        inside = np.all((centres >= low[own_labels]) & (centres <= high[own_labels]), axis=1)
        windows.append(centres[inside][:, None, :] + cells[None, :, :] - shift)
        window_labels.append(own_labels[inside])
    queries = np.concatenate([w.reshape(-1, 2) for w in windows])
    query_keys = queries[:, 0] * width + queries[:, 1]
    found = np.minimum(np.searchsorted(keys, query_keys), len(keys) - 1)
    present_anywhere = keys[found] == query_keys
    start = 0
    for (cells, wanted, sign), window, window_label in zip(_SIGNED_PATTERNS, windows, window_labels):
        stop = start + window.shape[0] * window.shape[1]
        present = present_anywhere[start:stop] & (labels[found[start:stop]] == np.repeat(window_label, len(cells)))
        matched = np.all(present.reshape(-1, len(cells)) == wanted, axis=1)
        counts += sign * np.bincount(window_label[matched], minlength=n_labels + 1)
        start = stop
    return counts


def _lengths(pixels: PixelSet, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Step 3d: FilFinder's length (px) of each branch label 0..n (index 0 unused).

    A branch of one pixel has length 0.5; otherwise 4-connected runs of n > 1
    pixels count n - 1; the remaining pixels form diagonal chains, each of n
    pixels counting (n - 1) sqrt(2); if there is any 4-connected run, each
    join between a run and a diagonal step adds sqrt(2) (:func:`join_counts`).
    Summed as FilFinder does, so that equal lengths compare equal. All
    branches at once: branches of >= 2 pixels never touch one another, so
    runs and chains never mix branches.
    """
    sizes = np.bincount(labels, minlength=n_labels + 1)
    multi = (labels > 0) & (sizes[labels] >= 2)
    runs, n_runs = pixels.components(multi, four=True)
    run_sizes = np.bincount(runs, minlength=n_runs + 1)
    run_labels = np.zeros(n_runs + 1, dtype=np.int64)
    run_labels[runs[multi]] = labels[multi]
    steps = np.where(run_sizes[1:] > 1, run_sizes[1:] - 1, 0)
    four = np.bincount(run_labels[1:], weights=steps, minlength=n_labels + 1)
    single = multi & (run_sizes[runs] == 1)
    chains, n_chains = pixels.components(single)
    chain_labels = np.zeros(n_chains + 1, dtype=np.int64)
    chain_labels[chains[single]] = labels[single]
    n_single = np.bincount(labels[single], minlength=n_labels + 1)
    diagonal = (n_single - np.bincount(chain_labels[1:], minlength=n_labels + 1)).astype(np.float64) * np.sqrt(2)
    joins = np.where(four != 0.0, join_counts(pixels.coords, np.where(multi, labels, 0), n_labels), 0)
    return np.where(sizes == 1, 0.5, np.sqrt(2) * joins.astype(np.float64) + diagonal + four)


def _intensities(labels: np.ndarray, n_labels: int, samples: np.ndarray) -> np.ndarray:
    """Mean of the ``samples`` over each label 0..n, of its finite values >= 0 (NaN if there are none)."""
    usable = np.isfinite(samples) & (samples >= 0) & (labels > 0)
    sums = np.bincount(labels[usable], weights=samples[usable], minlength=n_labels + 1)
    counts = np.bincount(labels[usable], minlength=n_labels + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _graph_parts(table: np.ndarray, labels: np.ndarray, ends: np.ndarray, intersections: list[np.ndarray],
                 lengths: list[float], intensities: list[float]) -> tuple[list, list]:
    """Step 3e for one piece: FilFinder's node list and edge list ``(node, node, (label, weight, length, intensity))``.

    ``ends`` and ``intersections`` (one array each) hold pixel indices;
    ``lengths`` and ``intensities`` belong to the piece's labels 1, 2, ...
    Built with the same set operations as FilFinder, since their iteration
    order decides ties (which of several equal branches is the edge, the
    order of edges and so of equal paths). A NaN weight makes its branch
    equal to nothing, as in FilFinder, so that branch joins nothing.
    """
    total_length, total_intensity = np.sum(lengths), np.sum(intensities)

    def branch(label: int) -> tuple:
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = (0.5 * (lengths[label - 1] / total_length)
                      + 0.5 * (np.float64(intensities[label - 1]) / total_intensity))
        return label, float(weight), lengths[label - 1], intensities[label - 1]

    end_branches = [branch(int(labels[i])) for i in ends]
    nodes = [b[0] for b in end_branches]
    touched = []
    for group in intersections:
        around: list[tuple] = []
        for pixel in group:
            neighbour_labels = labels[table[pixel][table[pixel] >= 0]]
            around.extend(branch(int(label)) for label in np.unique(neighbour_labels[neighbour_labels > 0]))
        touched.append(list(set(around)))
    names = list(itertools.islice(_intersection_names(), len(intersections)))
    nodes.extend(names)
    edges = []
    end_set = set(end_branches)
    for i, (name, branches) in enumerate(zip(names, touched)):
        for shared in list(set(branches) & end_set):
            edges.append((name, shared[0], shared))
        for j, (other_name, other_branches) in enumerate(zip(names, touched)):
            if i == j:
                continue
            common = list(set(branches) & set(other_branches))
            if not common:
                continue
            weights = [c[1] for c in common]
            edge = (name, other_name, common[weights.index(min(weights))])
            if edge not in edges and (edge[1], edge[0], edge[2]) not in edges:
                edges.append(edge)
    return nodes, edges


def _path_weight(graph: nx.Graph, path: list) -> float:
    return sum([graph[a][b]["weight"] for a, b in zip(path[:-1], path[1:])])


def _longest_path(nodes: list, edges: list) -> list:
    """Step 3f: the node path FilFinder calls longest (``[]`` for a graph without nodes)."""
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    for a, b, branch in edges:
        graph.add_edge(a, b, weight=branch[1])
    if graph.number_of_nodes() == 0:
        return []
    extremes, distances = [], []
    for source, reach in dict(nx.shortest_path_length(graph, weight="weight")).items():
        target, distance = max(reach.items(), key=operator.itemgetter(1))
        extremes.append((target, source))
        distances.append(distance)
    start, finish = extremes[distances.index(max(distances))]
    paths: list[list] = []
    weights: list[float] = []
    for count, path in enumerate(nx.shortest_simple_paths(graph, start, finish)):
        weight = _path_weight(graph, path)
        if path in paths or (paths and weights[-1] > weight) or count > MAX_SIMPLE_PATHS:
            break
        paths.append(path)
        weights.append(weight)
    return paths[weights.index(max(weights))]


def _trim_intersections(pixels: PixelSet, on_path: np.ndarray, candidates: list[int]) -> None:
    """Step 3g: remove intersection pixels (in order, repeatedly) wherever the path stays in one piece."""
    path_pixels = set(_tuples(pixels.coords[on_path]))
    whole = pixels.components(on_path)[1] <= 1
    while True:
        removed = 0
        for index in candidates:
            if not on_path[index]:
                continue
            on_path[index] = False
            pixel = (int(pixels.coords[index, 0]), int(pixels.coords[index, 1]))
            path_pixels.discard(pixel)
            if (whole and NEIGHBOUR_GROUPS[_code_at(pixel, path_pixels)] <= 1) or pixels.components(on_path)[1] <= 1:
                removed += 1
                whole = True
            else:
                on_path[index] = True
                path_pixels.add(pixel)
        if removed == 0:
            return


def _piece_path(pixels: PixelSet, members: np.ndarray, labels: np.ndarray, branch_members: list[np.ndarray],
                edges: list, path: list, intersections: list[np.ndarray]) -> np.ndarray:
    """Step 3g for one piece: the indices of its path pixels (branches along ``path``, trimmed intersections)."""
    if len(path) <= 1:
        return members[labels[members] > 0]
    drawn = [branch_members[edge[2][0] - 1] for a, b in zip(path[:-1], path[1:]) for edge in edges
             if {edge[0], edge[1]} == {a, b}]
    names = list(itertools.islice(_intersection_names(), len(intersections)))
    joint_pixels = [int(i) for node in path if isinstance(node, str) for i in intersections[names.index(node)]]
    candidates = np.unique(np.concatenate(drawn + [np.array(joint_pixels, dtype=np.int64)]))
    local = PixelSet.of(pixels.coords[candidates])
    on_path = np.ones(len(candidates), dtype=bool)
    _trim_intersections(local, on_path, list(np.searchsorted(candidates, joint_pixels)))
    return candidates[on_path]


def pieces_longest_paths(coords: np.ndarray, piece: np.ndarray, frame: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Steps 3a-3g on skeleton pieces that do not touch; returns which pixels are on the paths (``bool``).

    ``coords``: the pixels in raster order; ``piece``: each pixel's piece,
    1..m; ``frame``: each pixel's coordinates in its piece's FilFinder frame
    (bounding box corner at (1, 1)); ``samples``: the intensity FilFinder
    reads at each pixel (:func:`intensity_samples`). Steps 3a-3d run on all
    pieces at once, 3e-3g piece by piece.
    """
    pixels = PixelSet.of(coords)
    n_pieces = int(piece.max(initial=0))
    alive = np.ones(len(pixels), dtype=bool)
    for _ in range(PRUNE_ROUNDS - 1):
        extraneous = alive & EXTRANEOUS[pixels.codes(alive)]
        if not extraneous.any():
            break
        alive &= ~extraneous
    classes = np.where(alive, PIXEL_CLASS[pixels.codes(alive)], -1)
    ends = classes == END
    joints = _resolve_corners(pixels, piece, n_pieces, frame, classes)
    joint_labels, n_joints = pixels.components(joints)
    labels, counts = _branch_labels(pixels, piece, n_pieces, alive & ~joints, ends)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    branch_ids = np.where(labels > 0, offsets[piece] + labels, 0)     # unique over all pieces
    lengths = _lengths(pixels, branch_ids, int(offsets[-1]))
    intensities = _intensities(branch_ids, int(offsets[-1]), samples)
    branch_members = _members(branch_ids, int(offsets[-1]))
    # in raster order of their first pixels, as numbered
    intersections_of: list[list[np.ndarray]] = [[] for _ in range(n_pieces + 1)]
    for members in _members(joint_labels, n_joints):
        intersections_of[piece[members[0]]].append(members)
    on_path = np.zeros(len(pixels), dtype=bool)
    for index, members in enumerate(_members(piece, n_pieces), start=1):
        first, last = offsets[index] + 1, offsets[index + 1] + 1
        nodes, edges = _graph_parts(pixels.table, labels, members[ends[members]], intersections_of[index],
                                    list(lengths[first:last]), list(intensities[first:last]))
        path = _longest_path(nodes, edges)
        on_path[_piece_path(pixels, members, labels, branch_members[first - 1:last - 1], edges, path,
                            intersections_of[index])] = True
    return on_path


def piece_longest_path(coords: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Steps 3a-3g on one piece given in its FilFinder frame (``coords``, raster order); ``bool`` per pixel."""
    return pieces_longest_paths(coords, np.ones(len(coords), dtype=np.int64), coords, samples)


# --- the whole skeleton ----------------------------------------------------------------------------------------

def intensity_samples(shape: tuple[int, int], skeleton: np.ndarray, top_left: np.ndarray, bottom_right: np.ndarray,
                      frame: np.ndarray) -> np.ndarray:
    """The intensity FilFinder reads at pixels (``float``, NaN beyond its padded image).

    FilFinder's image is the skeleton itself (1 on it, 0 elsewhere). For a
    piece whose bounding box runs from ``top_left`` to ``bottom_right``
    (inclusive; given per pixel, as ``frame``, the pixel's coordinates in the
    piece's frame: box plus 1 px around), it pads the image by 1 px on each
    side where the frame runs over the image edge, then cuts out the frame at
    the piece's position *without* the shift that padding at the top or
    left caused, unless the padded image is the frame itself. So a piece
    touching the top (left) edge of the image reads the image one row
    (column) up (left) of its pixels.
    """
    size = np.asarray(shape)
    pad_before = (top_left == 0).astype(np.int64)
    padded_shape = size + pad_before + (bottom_right == size - 1)
    frame_shape = bottom_right - top_left + 3
    is_frame = np.all(padded_shape == frame_shape, axis=1)
    first = np.where(is_frame[:, None], 0, top_left - 1)
    padded = frame + first
    image = padded - pad_before
    inside_padded = np.all((padded >= 0) & (padded < padded_shape), axis=1)
    inside_image = np.all((image >= 0) & (image < size), axis=1)
    values = np.where(inside_padded, 0.0, np.nan)
    values[inside_image] = skeleton[image[inside_image, 0], image[inside_image, 1]]
    return values


def longest_paths(skeleton: np.ndarray) -> np.ndarray:
    """FilFinder's ``skeleton_longpath`` of a one-pixel skeleton (``bool``), without FilFinder (see module doc).

    Pieces without any intersection, block or removable pixel have a graph of
    at most one node and are kept whole; only the others (in practice the
    pieces with a junction or a loop) go through the graph steps.
    """
    skeleton = np.asarray(skeleton) > 0
    pixels = PixelSet.of(_thinned_pixels(skeleton))
    coords, everything = pixels.coords, np.ones(len(pixels), dtype=bool)
    pieces, n_pieces = pixels.components(everything)
    sizes = np.bincount(pieces, minlength=n_pieces + 1)
    codes = pixels.codes(everything)
    branched = EXTRANEOUS[codes] | np.isin(PIXEL_CLASS[codes], (INTERSECTION, BLOCK))
    needs_graph = np.zeros(n_pieces + 1, dtype=bool)
    needs_graph[pieces[branched]] = True
    needs_graph &= sizes > 1
    kept = sizes[pieces] > 1
    graph_pixels = needs_graph[pieces]
    if graph_pixels.any():
        numbers = np.cumsum(needs_graph)                  # the pieces that need a graph, renumbered 1..m
        piece = numbers[pieces[graph_pixels]]
        own = coords[graph_pixels]
        top_left = np.full((numbers[-1] + 1, 2), np.iinfo(np.int64).max)
        bottom_right = np.full((numbers[-1] + 1, 2), np.iinfo(np.int64).min)
        np.minimum.at(top_left, piece, own)
        np.maximum.at(bottom_right, piece, own)
        frame = own - top_left[piece] + 1
        samples = intensity_samples(skeleton.shape, skeleton, top_left[piece], bottom_right[piece], frame)
        kept[graph_pixels] = pieces_longest_paths(own, piece, frame, samples)
    result = np.zeros(skeleton.shape, dtype=bool)
    result[coords[kept, 0], coords[kept, 1]] = True
    return result
