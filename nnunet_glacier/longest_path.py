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
      visited in the iteration order of a Python ``set`` of their
      ``(row, col)`` tuples (as FilFinder does): one stays on its branch if
      exactly one diagonal neighbour is an end pixel, else joins the
      intersections if exactly one of its neighbours is an intersection pixel
      (pixels joined before it count).
   c. *Intersections* are the 8-connected groups of intersection pixels,
      named A, B, ... in label order; *branches* the 8-connected pieces of the
      remaining pixels, labelled 1, 2, ... (end pixels touching another end
      pixel each become a branch of their own, labelled last).
   d. *Branch length*: 0.5 for one pixel, else FilFinder's morphological
      length: steps along 4-connected runs count 1, diagonal-only steps
      sqrt(2), plus sqrt(2) where a 4-connected run meets a diagonal step
      (hit-or-miss patterns, see :func:`_branch_length`).
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
      its image one pixel off (:func:`_intensity_frame`); its branches then
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

import networkx as nx
import numpy as np
from scipy import ndimage

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


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """For every pixel of a ``bool`` mask, the 8-bit code of its set neighbours (outside the mask counts unset)."""
    padded = np.pad(mask, 1)
    rows, cols = mask.shape
    codes = np.zeros(mask.shape, dtype=np.uint8)
    for k, (d_row, d_col) in enumerate(OFFSETS):
        codes |= padded[1 + d_row:1 + d_row + rows, 1 + d_col:1 + d_col + cols].astype(np.uint8) << k
    return codes


def codes_at(mask: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """The neighbour codes of the pixels ``coords`` (``(n, 2)`` rows and columns) of a ``bool`` mask."""
    padded = np.pad(mask, 1)
    rows, cols = coords[:, 0] + 1, coords[:, 1] + 1
    codes = np.zeros(len(coords), dtype=np.uint8)
    for k, (d_row, d_col) in enumerate(OFFSETS):
        codes |= padded[rows + d_row, cols + d_col].astype(np.uint8) << k
    return codes


def _code_at(mask: np.ndarray, row: int, col: int) -> int:
    """The neighbour code of one pixel (``mask`` must have a border of at least 1 px around it)."""
    return sum(1 << k for k, (d_row, d_col) in enumerate(OFFSETS) if mask[row + d_row, col + d_col])


# --- step 1: medial-axis thinning ------------------------------------------------------------------------------

def _distances_to_background(mask: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of each pixel ``coords`` of ``mask`` to the nearest unset pixel of the image.

    As ``scipy.ndimage.distance_transform_edt`` of the whole image, but
    computed in small windows: 1 where a 4-neighbour inside the image is
    unset, else in a window grown until it holds the nearest unset pixel.
    """
    rows, cols = mask.shape
    distances = np.ones(len(coords))
    padded = np.pad(mask, 1, constant_values=True)   # outside the image is not background
    r, c = coords[:, 0] + 1, coords[:, 1] + 1
    deep = padded[r - 1, c] & padded[r + 1, c] & padded[r, c - 1] & padded[r, c + 1]
    for index in np.flatnonzero(deep):
        row, col = coords[index]
        radius = 2
        while True:
            top, left = max(row - radius, 0), max(col - radius, 0)
            window = mask[top:row + radius + 1, left:col + radius + 1]
            distance = ndimage.distance_transform_edt(window)[row - top, col - left]
            whole = window.shape == mask.shape
            if whole or (not window.all() and distance <= radius):
                distances[index] = distance
                break
            radius *= 2
    return distances


def thin_like_medial_axis(skeleton: np.ndarray) -> np.ndarray:
    """``skimage.morphology.medial_axis`` of a one-pixel skeleton with the published reference's tie-break.

    Pixels are visited by increasing distance to the background, then by
    decreasing number of neighbours, then by the rank that
    ``RandomState(TIE_BREAK_SEED).permutation`` gives them in raster order; a
    visited pixel goes if :data:`THINNABLE` (at that moment). Only pixels that
    are thinnable at the start, and neighbours of removed pixels, can change,
    so only those are visited. Returns a new ``bool`` mask.
    """
    mask = np.asarray(skeleton) > 0
    coords = np.argwhere(mask)
    if len(coords) == 0:
        return mask.copy()
    codes = codes_at(mask, coords)
    n_neighbours = N_NEIGHBOURS[codes]
    tie_break = np.random.RandomState(TIE_BREAK_SEED).permutation(len(coords))
    order = np.lexsort((tie_break, 8 - n_neighbours, _distances_to_background(mask, coords)))
    rank = np.empty(len(coords), dtype=np.int64)
    rank[order] = np.arange(len(coords))

    top, left = coords.min(axis=0)
    state = np.pad(mask[top:coords[:, 0].max() + 1, left:coords[:, 1].max() + 1], 1)
    local = coords - (top, left) + 1
    index_of = np.full(state.shape, -1, dtype=np.int64)
    index_of[local[:, 0], local[:, 1]] = np.arange(len(coords))
    heap = [(rank[i], i) for i in np.flatnonzero(THINNABLE[codes])]
    heapq.heapify(heap)
    visited = np.zeros(len(coords), dtype=bool)
    while heap:
        pixel_rank, i = heapq.heappop(heap)
        if visited[i]:
            continue
        visited[i] = True
        row, col = local[i]
        if not THINNABLE[_code_at(state, row, col)]:
            continue
        state[row, col] = False
        for d_row, d_col in OFFSETS:
            j = index_of[row + d_row, col + d_col]
            if j >= 0 and state[row + d_row, col + d_col] and rank[j] > pixel_rank:
                heapq.heappush(heap, (rank[j], j))
    thinned = np.zeros_like(mask)
    kept = state[local[:, 0], local[:, 1]]
    thinned[coords[kept, 0], coords[kept, 1]] = True
    return thinned


# --- step 3: one piece -----------------------------------------------------------------------------------------

def drop_extraneous(piece: np.ndarray) -> np.ndarray:
    """Step 3a once: remove (all at once) pixels with no neighbour or one run of >= 2 neighbours."""
    return piece & ~EXTRANEOUS[neighbour_codes(piece)]


def _intersection_names() -> Iterator[str]:
    """A, B, ..., Z, AA, AB, ...: FilFinder's intersection node names."""
    for length in itertools.count(1):
        for letters in itertools.product(string.ascii_uppercase, repeat=length):
            yield "".join(letters)


def _pixels(mask: np.ndarray) -> list[tuple[int, int]]:
    """The set pixels of a mask as ``(row, col)`` tuples of Python ints, in raster order."""
    return [(int(r), int(c)) for r, c in np.argwhere(mask)]


def _neighbours(pixel: tuple[int, int], offsets=OFFSETS) -> set[tuple[int, int]]:
    return {(pixel[0] + d_row, pixel[1] + d_col) for d_row, d_col in offsets}


def _resolve_corners(classes: np.ndarray, piece: np.ndarray) -> set[tuple[int, int]]:
    """Step 3b: the intersection pixels (intersections, block pixels and the corner pixels that join them)."""
    ends = set(_pixels(piece & (classes == END)))
    intersections = set(_pixels(piece & (classes == INTERSECTION)))
    diagonal = [OFFSETS[k] for k in DIAGONALS]
    corners = _pixels(piece & (classes == CORNER))
    for corner in list(set(corners).difference(set())):  # FilFinder walks a set of the corner pixels
        if len(ends & _neighbours(corner, diagonal)) == 1:
            continue
        if len(intersections & _neighbours(corner)) == 1:
            intersections.add(corner)
    return intersections | set(_pixels(piece & (classes == BLOCK)))


def _branch_labels(branches: np.ndarray, ends: list[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """Step 3c: 8-connected branch labels; end pixels touching another end pixel get a label each, last."""
    end_mask = np.zeros(branches.shape, dtype=bool)
    for pixel in ends:
        end_mask[pixel] = True
    end_groups, n_end_groups = ndimage.label(end_mask, structure=EIGHT_CONNECTED)
    if n_end_groups == len(ends):
        return ndimage.label(branches, structure=EIGHT_CONNECTED)
    sizes = np.bincount(end_groups.ravel(), minlength=n_end_groups + 1)
    touching = [pixel for group in np.flatnonzero(sizes[1:] > 1) + 1 for pixel in _pixels(end_groups == group)]
    rest = branches.copy()
    for pixel in touching:
        rest[pixel] = False
    labels, n_labels = ndimage.label(rest, structure=EIGHT_CONNECTED)
    for offset, pixel in enumerate(touching, start=1):
        labels[pixel] = n_labels + offset
    return labels, n_labels + len(touching)


# FilFinder's length counts sqrt(2) per match of these hit-or-miss patterns (1 = set, 0 = unset, whole window):
# where a 4-connected run meets a diagonal step, in all four rotations ...
_JOINS = (np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], bool), np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0]], bool))
# ... less places that would count twice: a step between two diagonal steps (four rotations) and a staircase
# of two 2-pixel runs (two rotations each).
_DOUBLE_JOINS = (np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]], bool),)
_STAIRS = (np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool), np.array([[0, 0, 1, 1], [1, 1, 0, 0]], bool))


def _matches(mask: np.ndarray, pattern: np.ndarray) -> int:
    return int(ndimage.binary_hit_or_miss(mask, structure1=pattern).sum())


def _branch_length(branch: np.ndarray) -> float:
    """FilFinder's length (px) of one branch of >= 2 pixels (``branch``: its pixels in their bounding box).

    4-connected runs of n > 1 pixels count n - 1; the remaining pixels form
    diagonal chains, each of n pixels counting (n - 1) sqrt(2); if there is
    any 4-connected run, each join between a run and a diagonal step adds
    sqrt(2) (the pattern counts above). Summed as FilFinder does, so that
    equal lengths compare equal.
    """
    runs, n_runs = ndimage.label(branch)
    run_sizes = np.bincount(runs.ravel(), minlength=n_runs + 1)[1:]
    four = float(np.sum(run_sizes[run_sizes > 1]) - np.count_nonzero(run_sizes > 1))
    single = branch & np.isin(runs, np.flatnonzero(run_sizes == 1) + 1)
    n_chains = ndimage.label(single, structure=EIGHT_CONNECTED)[1]
    diagonal = (float(single.sum()) - n_chains) * np.sqrt(2)
    joins = 0
    if four != 0.0:
        for k in range(4):
            joins += sum(_matches(branch, np.rot90(p, k)) for p in _JOINS)
            joins -= sum(_matches(branch, np.rot90(p, k)) for p in _DOUBLE_JOINS)
            if k <= 1:
                joins -= sum(_matches(branch, np.rot90(p, k)) for p in _STAIRS)
    return np.sqrt(2) * float(joins) + diagonal + four


def _lengths(labels: np.ndarray, n_labels: int) -> list[float]:
    """Step 3d: the length of each branch label 1..n (0.5 for a single pixel)."""
    lengths = []
    for label, box in enumerate(ndimage.find_objects(labels, max_label=n_labels), start=1):
        branch = labels[box] == label
        lengths.append(0.5 if branch.sum() == 1 else _branch_length(branch))
    return lengths


def _intensities(labels: np.ndarray, n_labels: int, image: np.ndarray) -> list[float]:
    """Mean of ``image`` over each branch label 1..n, of its finite values >= 0 (NaN if there are none)."""
    means = []
    for label in range(1, n_labels + 1):
        values = image[labels == label]
        values = values[np.isfinite(values) & (values >= 0)]
        means.append(float(values.sum()) / len(values) if len(values) else float("nan"))
    return means


def _graph_parts(labels: np.ndarray, n_labels: int, ends: list[tuple[int, int]],
                 intersections: list[list[tuple[int, int]]], image: np.ndarray) -> tuple[list, list]:
    """Step 3e: FilFinder's node list and edge list ``(node, node, (label, weight, length, intensity))``.

    Built with the same set operations as FilFinder, since their iteration
    order decides ties (which of several equal branches is the edge, the
    order of edges and so of equal paths). A NaN weight (see
    :func:`_intensity_frame`) makes its branch equal to nothing, as in
    FilFinder, so that branch joins nothing.
    """
    lengths = _lengths(labels, n_labels)
    intensities = _intensities(labels, n_labels, image)
    total_length = np.sum(lengths)
    total_intensity = np.sum(intensities)

    def branch(label: int) -> tuple:
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = (0.5 * (lengths[label - 1] / total_length)
                      + 0.5 * (np.float64(intensities[label - 1]) / total_intensity))
        return label, float(weight), lengths[label - 1], intensities[label - 1]

    end_branches = [branch(int(labels[pixel])) for pixel in ends]
    nodes = [b[0] for b in end_branches]
    touched = []
    for group in intersections:
        around = []
        for row, col in group:
            window = labels[row - 1:row + 2, col - 1:col + 2].copy()
            window[1, 1] = 0
            around.extend(branch(int(label)) for label in np.unique(window[window > 0]))
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
    paths, weights = [], []
    for count, path in enumerate(nx.shortest_simple_paths(graph, start, finish)):
        weight = _path_weight(graph, path)
        if path in paths or (paths and weights[-1] > weight) or count > MAX_SIMPLE_PATHS:
            break
        paths.append(path)
        weights.append(weight)
    return paths[weights.index(max(weights))]


def _one_piece(piece_mask: np.ndarray) -> bool:
    return ndimage.label(piece_mask, structure=EIGHT_CONNECTED)[1] <= 1


def _trim_intersections(path_mask: np.ndarray, pixels: list[tuple[int, int]]) -> None:
    """Step 3g: remove intersection pixels (in order, repeatedly) wherever the path stays in one piece."""
    whole = _one_piece(path_mask)
    while True:
        removed = 0
        for pixel in pixels:
            if not path_mask[pixel]:
                continue
            path_mask[pixel] = False
            groups = NEIGHBOUR_GROUPS[_code_at(path_mask, *pixel)]
            if (whole and groups <= 1) or _one_piece(path_mask):
                removed += 1
                whole = True
            else:
                path_mask[pixel] = True
        if removed == 0:
            return


def piece_longest_path(piece: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Steps 3a-3g on one skeleton piece (``bool``, with an unset border of 1 px); returns the path mask.

    ``image``: the intensities FilFinder reads for this piece's frame
    (:func:`_intensity_frame`).
    """
    for _ in range(PRUNE_ROUNDS - 1):
        cleaned = drop_extraneous(piece)
        if np.array_equal(cleaned, piece):
            break
        piece = cleaned
    classes = np.where(piece, PIXEL_CLASS[neighbour_codes(piece)], -1)
    ends = _pixels(classes == END)
    joints = np.zeros(piece.shape, dtype=bool)
    for pixel in _resolve_corners(classes, piece):
        joints[pixel] = True
    joint_labels, n_joints = ndimage.label(joints, structure=EIGHT_CONNECTED)
    intersections = [_pixels(joint_labels == k) for k in range(1, n_joints + 1)]
    labels, n_labels = _branch_labels(piece & ~joints, ends)
    nodes, edges = _graph_parts(labels, n_labels, ends, intersections, image)
    path = _longest_path(nodes, edges)
    if len(path) <= 1:
        return labels > 0
    path_mask = np.zeros(piece.shape, dtype=bool)
    for a, b in zip(path[:-1], path[1:]):
        for edge in edges:
            if {edge[0], edge[1]} == {a, b}:
                path_mask[labels == edge[2][0]] = True
    names = list(itertools.islice(_intersection_names(), n_joints))
    joint_pixels = [pixel for node in path if isinstance(node, str) for pixel in intersections[names.index(node)]]
    for pixel in joint_pixels:
        path_mask[pixel] = True
    _trim_intersections(path_mask, joint_pixels)
    return path_mask


# --- the whole skeleton ----------------------------------------------------------------------------------------

def _intensity_frame(skeleton: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """The intensities FilFinder reads for the frame of a piece (its bounding box ``box`` plus 1 px around).

    FilFinder's image is the skeleton itself (1 on it, 0 elsewhere). It pads
    the image by 1 px on each side where the frame runs over the image edge,
    then cuts out the frame at the piece's position *without* the shift that
    the padding at the top or left caused, unless the padded image is the
    frame itself. So a piece touching the top (left) edge of the image reads
    the image one row (column) up (left) of its pixels, NaN beyond the padded
    image. Returns a ``float`` array of the frame's shape.
    """
    rows, cols = skeleton.shape
    (top, bottom), (left, right) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
    frame_shape = (bottom - top + 2, right - left + 2)
    pad_top, pad_left = int(top == 0), int(left == 0)
    padded_shape = (rows + pad_top + int(bottom == rows), cols + pad_left + int(right == cols))
    if padded_shape == frame_shape:
        first_row, first_col = 0, 0
    else:
        first_row, first_col = top - 1, left - 1
    padded_rows = np.arange(first_row, first_row + frame_shape[0])[:, None]
    padded_cols = np.arange(first_col, first_col + frame_shape[1])[None, :]
    inside_padded = ((padded_rows >= 0) & (padded_rows < padded_shape[0])
                     & (padded_cols >= 0) & (padded_cols < padded_shape[1]))
    image_rows, image_cols = padded_rows - pad_top, padded_cols - pad_left
    inside_image = (image_rows >= 0) & (image_rows < rows) & (image_cols >= 0) & (image_cols < cols)
    values = np.zeros(frame_shape)
    values[inside_image] = skeleton[np.broadcast_to(image_rows, frame_shape)[inside_image],
                                    np.broadcast_to(image_cols, frame_shape)[inside_image]]
    values[~inside_padded] = np.nan
    return values


def longest_paths(skeleton: np.ndarray) -> np.ndarray:
    """FilFinder's ``skeleton_longpath`` of a one-pixel skeleton (``bool``), without FilFinder (see module doc).

    Pieces without any intersection, block or removable pixel have a graph of
    at most one node and are kept whole; only the others (in practice the
    pieces with a junction or a loop) go through the graph steps.
    """
    skeleton = np.asarray(skeleton) > 0
    thinned = thin_like_medial_axis(skeleton)
    coords = np.argwhere(thinned)
    if len(coords) == 0:
        return thinned
    top, left = coords.min(axis=0)
    bottom, right = coords.max(axis=0) + 1
    region = thinned[top:bottom, left:right]
    pieces, n_pieces = ndimage.label(region, structure=EIGHT_CONNECTED)
    local = coords - (top, left)
    piece_of = pieces[local[:, 0], local[:, 1]]
    sizes = np.bincount(piece_of, minlength=n_pieces + 1)
    codes = codes_at(region, local)
    branched = EXTRANEOUS[codes] | np.isin(PIXEL_CLASS[codes], (INTERSECTION, BLOCK))
    needs_graph = np.zeros(n_pieces + 1, dtype=bool)
    needs_graph[piece_of[branched]] = True
    needs_graph &= sizes > 1
    result = region & (sizes[pieces] > 1)
    boxes = ndimage.find_objects(pieces)
    for label in np.flatnonzero(needs_graph):
        box = boxes[label - 1]
        own = pieces[box] == label
        image_box = (slice(box[0].start + top, box[0].stop + top), slice(box[1].start + left, box[1].stop + left))
        path = piece_longest_path(np.pad(own, 1), _intensity_frame(skeleton, image_box))[1:-1, 1:-1]
        result[box] = (result[box] & ~own) | path
    out = np.zeros(thinned.shape, dtype=bool)
    out[top:bottom, left:right] = result
    return out
