"""Post-processing of predictions into one-pixel calving fronts, as in the CaFFe evaluation.

Every function takes and returns 2-D ``numpy`` arrays of *class indices*
(see :mod:`nnunet_glacier.data.labels`: zones 0 NA, 1 rock, 2 glacier, 3 ocean;
fused adds 4 = front; front maps 0 background, 1 front) and never modifies
its input. Fronts are returned as ``bool`` masks. Lengths are given in
metres and turned into pixel counts with the pixel size (metres per pixel).

Three routes lead from a network's output to a front:

- zone route (:func:`zone_route`): zone map -> :func:`clean_zones` ->
  :func:`front_from_zones` (ocean pixels with a 4-neighbour glacier pixel,
  short pieces dropped)
- front route (:func:`front_route`): front map -> skeleton
  (``skimage.morphology.skeletonize``) -> longest path through each skeleton
  piece as the reference's FilFinder finds it (:func:`longest_paths`) ->
  short pieces dropped
- fused route (:func:`fused_route`): fused map -> :func:`fused_to_zones`
  (front class -> ocean, glacier dilated once with a 7 x 7 kernel) -> zone route

:func:`route_front_and_zones` runs a route with its :class:`PostprocessSettings`
for evaluation and detection alike; :func:`choose_route` picks a model's route.

No-data. Given a scene's no-data mask (``nodata``: ``True`` where the scene
has no data), the routes keep every front pixel more than
:data:`EDGE_MARGIN_PX` pixels from no-data and from the image border — the
*edge band* (:func:`edge_band`) is taken out of the map before the front is
extracted: for zone maps the band becomes NA after the clean-up (so no
glacier-ocean edge lies in it), for front maps background before the
skeleton. The clean-up treats no-data pixels as unknown: they join the
components on either side (a swath edge cutting a fjord does not split
its ocean or its glacier) and become NA afterwards. Without ``nodata`` the
routes are exactly CaFFe's (the benchmark's images declare no no-data).

"Short" means ``pixel count <= min_length_m / pixel_size_m`` (a float
threshold; CaFFe uses 750 m), for 8-connected pieces, in both routes
(:func:`remove_short_fronts`). Predictions outside a scene's bounding box
are removed afterwards (:func:`apply_bounding_box`).

All three routes give the reference's pixels (checked against the CaFFe
evaluation code with ``fil_finder`` in the tests); for the front route see
:mod:`nnunet_glacier.postprocessing.longest_path`, which reproduces FilFinder without
needing it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

from nnunet_glacier.data import labels
from nnunet_glacier.data.caffe import BoundingBox
from nnunet_glacier.data.labels import FRONT_CLASS, GLACIER, NA, OCEAN
from nnunet_glacier.postprocessing import longest_path

#: Fronts of at most this length (metres) are dropped (CaFFe reference evaluation).
MIN_FRONT_LENGTH_M = 750.0
#: Kernel size (pixels) of the glacier dilation of the fused route.
FUSED_GLACIER_DILATION_PX = 7
#: With a no-data mask, front pixels within this distance (pixels) of no-data or the image border are dropped.
EDGE_MARGIN_PX = 3.0

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
#: Routes in priority order; a route's name is the task whose prediction it reads (see :mod:`nnunet_glacier.data.tasks`).
ROUTES = ("fused", "zone", "front")
#: Routes beyond the benchmark's, run only on request (never by default): name -> the task whose map they read.
#: ``fused_split``: the fused map with its front band split down the middle (:func:`split_fused_front`), then
#: the zone route; ``fused_front``: the fused map's front class through the front route.
EXTRA_ROUTES = {"fused_split": "fused", "fused_front": "fused"}


def route_task(route: str) -> str:
    """The task whose prediction a route reads (a benchmark route's own name, or its extra route's source)."""
    return EXTRA_ROUTES.get(route, route)


@dataclass(frozen=True)
class PostprocessSettings:
    """Post-processing settings: fronts of ``<= min_length_m`` metres are dropped; fused glacier dilation kernel."""

    min_length_m: float = MIN_FRONT_LENGTH_M
    fused_dilation_px: int = FUSED_GLACIER_DILATION_PX


def min_front_pixels(pixel_size_m: float, min_length_m: float = MIN_FRONT_LENGTH_M) -> float:
    """The length threshold in pixels: ``min_length_m / pixel_size_m`` (not rounded)."""
    if pixel_size_m <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_m} m")
    return min_length_m / pixel_size_m


def remove_short_fronts(front: np.ndarray, min_pixels: float) -> np.ndarray:
    """Drop the 8-connected pieces of a front mask with ``pixel count <= min_pixels``; returns ``bool``."""
    pieces, n_pieces = ndimage.label(np.asarray(front) > 0, structure=EIGHT_CONNECTED)
    keep = np.bincount(pieces.ravel(), minlength=n_pieces + 1) > min_pixels
    keep[0] = False
    return keep[pieces]


def _largest_component(mask: np.ndarray, bridges: np.ndarray | None = None) -> np.ndarray:
    """The pixels of ``mask`` in its largest 8-connected component (the first in raster order on ties).

    ``bridges`` (``bool``, optional) are pixels that connect components
    without counting towards their size.
    """
    joined = mask if bridges is None else mask | bridges
    components, n_components = ndimage.label(joined, structure=EIGHT_CONNECTED)
    if n_components == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(components[mask], minlength=n_components + 1)
    sizes[0] = 0
    return mask & (components == sizes.argmax())


def clean_zones(zones: np.ndarray, nodata: np.ndarray | None = None) -> np.ndarray:
    """CaFFe's zone clean-up; returns a new zone map (classes 0..3, ``uint8``).

    1. Every 8-connected component of the non-ocean pixels except the largest
       becomes ocean (fills islands of NA, rock or glacier inside the ocean).
    2. Of the 8-connected ocean components only the largest stays ocean; the
       other ocean pixels become glacier.

    With ``nodata``, no-data pixels belong to neither side: they connect
    components of both steps, and are NA in the result (see the module doc).
    """
    cleaned = np.array(zones, dtype=np.uint8)
    known = np.ones(cleaned.shape, dtype=bool) if nodata is None else ~nodata
    non_ocean = (cleaned != OCEAN) & known
    cleaned[non_ocean & ~_largest_component(non_ocean, nodata)] = OCEAN
    ocean = (cleaned == OCEAN) & known
    cleaned[ocean & ~_largest_component(ocean, nodata)] = GLACIER
    if nodata is not None:
        cleaned[nodata] = NA
    return cleaned


def within_distance(mask: np.ndarray, radius_px: float, *, outside: bool = False) -> np.ndarray:
    """``bool``: the pixels within Euclidean distance ``radius_px`` (between pixel centres) of a pixel of ``mask``.

    With ``outside``, the pixels beyond the image border count as part of
    ``mask``. A dilation with a disk of that radius: the same pixels as
    thresholding a distance transform, at a fraction of its cost on large
    scenes.
    """
    reach = int(np.floor(radius_px))
    d_row, d_col = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    disk = (d_row ** 2 + d_col ** 2 <= radius_px ** 2).astype(np.uint8)
    dilated = cv2.dilate(np.asarray(mask, dtype=bool).astype(np.uint8), disk, borderType=cv2.BORDER_CONSTANT,
                         borderValue=int(outside))
    return dilated.astype(bool)


def edge_band(nodata: np.ndarray, margin_px: float = EDGE_MARGIN_PX) -> np.ndarray:
    """``bool``: no-data, and pixels within ``margin_px`` of no-data or of the image's outside.

    Distances are Euclidean between pixel centres; a pixel of the first row
    is 1 px from the outside.
    """
    return within_distance(nodata, margin_px, outside=True)


def front_touches_edge(front: np.ndarray, nodata: np.ndarray,
                       margin_px: float = EDGE_MARGIN_PX) -> tuple[bool, bool]:
    """Whether a front (``bool``) reaches the edge band along no-data, and along the image border.

    "Reaches" means a front pixel lies within ``margin_px + 1.5`` pixels —
    next to the band — which is where no-data-aware routes cut fronts that
    run on into no-data or out of the image.
    """
    front = np.asarray(front, dtype=bool)
    if not front.any():
        return False, False
    reach = margin_px + 1.5
    rows, cols = np.nonzero(front)
    height, width = front.shape
    to_border = np.minimum.reduce([rows + 1, height - rows, cols + 1, width - cols])
    touches_nodata = bool(nodata.any()) and bool(within_distance(nodata, reach)[rows, cols].any())
    return touches_nodata, bool((to_border <= reach).any())


def front_from_zones(zones: np.ndarray, min_pixels: float) -> np.ndarray:
    """Ocean pixels with a 4-neighbour glacier pixel, without pieces of ``<= min_pixels`` pixels.

    Pixels outside the image count as non-glacier. ``zones`` holds classes
    0..3 (normally cleaned by :func:`clean_zones` first); returns ``bool``.
    """
    return remove_short_fronts(labels.front_from_zones(zones), min_pixels)


def zone_route(zones: np.ndarray, min_pixels: float, nodata: np.ndarray | None = None) -> np.ndarray:
    """The front of a zone map: :func:`clean_zones`, then :func:`front_from_zones`; returns ``bool``.

    With ``nodata``, the edge band is NA between the two (see the module doc).
    """
    if nodata is None:
        return front_from_zones(clean_zones(zones), min_pixels)
    cleaned = clean_zones(zones, nodata)
    cleaned[edge_band(nodata)] = NA
    return front_from_zones(cleaned, min_pixels)


def fused_to_zones(fused: np.ndarray, dilation_px: int = FUSED_GLACIER_DILATION_PX) -> np.ndarray:
    """A fused map (zone classes plus 4 = front) as zone classes 0..3 (``uint8``).

    The front class becomes ocean; then the glacier mask is dilated once with
    a ``dilation_px`` x ``dilation_px`` kernel and every dilated pixel becomes
    glacier (whatever its class), which moves the glacier-ocean border back
    into the predicted front band.
    """
    zones = np.array(fused, dtype=np.uint8)
    zones[zones == FRONT_CLASS] = OCEAN
    zones[labels.dilate(zones == GLACIER, dilation_px) > 0] = GLACIER
    return zones


def split_fused_front(fused: np.ndarray) -> np.ndarray:
    """A fused map as zone classes 0..3 (``uint8``), the front band split down its middle.

    Not the benchmark's conversion (:func:`fused_to_zones`) but an option
    beside it: each front-class pixel becomes glacier if a predicted glacier
    pixel is strictly nearer (Euclidean) than a predicted ocean pixel, else
    ocean, so the glacier-ocean border runs along the middle of the predicted
    front band — without dilating the glacier anywhere else, which at coarse
    pixel sizes draws false fronts along narrow rocky coasts. Without any
    glacier or any ocean pixel the front class becomes ocean.
    """
    zones = np.array(fused, dtype=np.uint8)
    front = zones == FRONT_CLASS
    glacier, ocean = zones == GLACIER, zones == OCEAN
    if not front.any() or not glacier.any() or not ocean.any():
        zones[front] = OCEAN
        return zones
    to_glacier = ndimage.distance_transform_edt(~glacier)[front]
    to_ocean = ndimage.distance_transform_edt(~ocean)[front]
    zones[front] = np.where(to_glacier < to_ocean, GLACIER, OCEAN)
    return zones


def fused_route(fused: np.ndarray, min_pixels: float, dilation_px: int = FUSED_GLACIER_DILATION_PX,
                nodata: np.ndarray | None = None) -> np.ndarray:
    """The front of a fused map: :func:`fused_to_zones`, then :func:`zone_route`; returns ``bool``."""
    return zone_route(fused_to_zones(fused, dilation_px), min_pixels, nodata)


def front_route(front: np.ndarray, min_pixels: float, nodata: np.ndarray | None = None) -> np.ndarray:
    """The front of a front-task map (0/1, a few pixels wide); returns a one-pixel ``bool`` line.

    Skeletonize, keep the longest path through each skeleton piece
    (:func:`longest_paths`), then drop pieces of ``<= min_pixels`` pixels.
    As in the reference, a map that is front everywhere is returned as it is
    (the reference post-processes only maps with two values). With
    ``nodata``, the edge band is background before the skeleton.
    """
    front = np.asarray(front) > 0
    if nodata is not None:
        front &= ~edge_band(nodata)
    elif front.all():
        return front.copy()
    return remove_short_fronts(longest_paths(skeletonize(front)), min_pixels)


def _pixel_graph(mask: np.ndarray) -> tuple[np.ndarray, csr_matrix]:
    """Pixel coordinates ``(n, 2)`` of a ``bool`` mask and their 8-neighbour graph.

    Edge weights are the step lengths in pixels: 1 for a horizontal or
    vertical step, sqrt(2) for a diagonal one.
    """
    coords = np.argwhere(mask)
    index = np.full((mask.shape[0] + 2, mask.shape[1] + 2), -1, dtype=np.int64)
    index[coords[:, 0] + 1, coords[:, 1] + 1] = np.arange(len(coords))
    sources, targets, weights = [], [], []
    for d_row, d_col in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each undirected edge once
        neighbour = index[coords[:, 0] + 1 + d_row, coords[:, 1] + 1 + d_col]
        linked = neighbour >= 0
        sources.append(np.flatnonzero(linked))
        targets.append(neighbour[linked])
        weights.append(np.full(linked.sum(), np.hypot(d_row, d_col)))
    graph = csr_matrix((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
                       shape=(len(coords), len(coords)))
    return coords, graph


def _farthest(graph: csr_matrix, seeds: np.ndarray, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each piece, its pixel farthest from the piece's seed; and every pixel's predecessor.

    ``seeds`` holds one node per piece and ``piece[node]`` the piece of each
    node. Since pieces are not connected, one multi-source Dijkstra run gives
    each node's distance from its own piece's seed.
    """
    distance, predecessor, _ = dijkstra(graph, directed=False, indices=seeds, min_only=True,
                                        return_predecessors=True)
    order = np.lexsort((distance, piece))  # by piece, then by distance: the last of each piece is its farthest
    last_of_piece = np.r_[piece[order][1:] != piece[order][:-1], True]
    return order[last_of_piece], predecessor


def ordered_paths(mask: np.ndarray) -> list[np.ndarray]:
    """The longest path through each 8-connected piece of a ``bool`` mask, as ordered pixel coordinates.

    Path length is measured along the 8-neighbour pixel graph (diagonal
    steps count sqrt(2)). The path is found by a double sweep: the pixel
    ``a`` farthest from any start pixel, then the pixel ``b`` farthest from
    ``a``; the shortest path from ``b`` to ``a`` is the longest path of a
    tree-shaped piece. Returns one ``(n, 2)`` ``int64`` array of
    ``(row, col)`` per piece, consecutive pixels 8-neighbours, pieces in
    raster order of their first pixel. Pixels off the path (spurs, the
    inner corners of staircase lines) are not part of it. It orders the
    pixels of a post-processed front into lines (e.g. for GeoJSON); which
    pixels the front route keeps is :func:`longest_paths`' choice.
    """
    mask = np.asarray(mask) > 0
    if not mask.any():
        return []
    coords, graph = _pixel_graph(mask)
    pieces, _ = ndimage.label(mask, structure=EIGHT_CONNECTED)
    piece = pieces[coords[:, 0], coords[:, 1]]
    first_of_piece = np.unique(piece, return_index=True)[1]
    ends_a, _ = _farthest(graph, first_of_piece, piece)
    ends_b, predecessor = _farthest(graph, ends_a, piece)
    paths = []
    for node in ends_b:
        path = []
        while node >= 0:  # walk back to the sweep's source, whose predecessor is negative
            path.append(node)
            node = predecessor[node]
        paths.append(coords[path])
    return paths


def longest_paths(skeleton: np.ndarray) -> np.ndarray:
    """The longest path through each piece of a one-pixel skeleton, pixel for pixel as the CaFFe reference
    (FilFinder's ``skeleton_longpath``) finds it; ``bool``. See :mod:`nnunet_glacier.postprocessing.longest_path`."""
    return longest_path.longest_paths(skeleton)


def apply_bounding_box(front: np.ndarray, box: BoundingBox | None) -> np.ndarray:
    """Set front pixels outside ``box`` to background (CaFFe clipping, see ``BoundingBox.mask``); ``bool``.

    ``box`` of ``None`` keeps the whole front.
    """
    front = np.asarray(front) > 0
    return front if box is None else front & box.mask(front.shape)


def route_front_and_zones(route: str, class_map: np.ndarray, pixel_size_m: float, settings: PostprocessSettings,
                          nodata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The post-processed front (``bool``) of a route's class map, and its zone map for zone metrics (or ``None``).

    The zone map is the raw zone map for the zone route, :func:`fused_to_zones`
    of the fused map for the fused route (before clean-up),
    :func:`split_fused_front` of it for ``fused_split``, ``None`` for the front
    route and ``fused_front``. ``nodata`` (a scene's no-data mask) makes the
    route no-data aware (see the module doc); evaluation passes none.
    """
    min_pixels = min_front_pixels(pixel_size_m, settings.min_length_m)
    if route == "zone":
        return zone_route(class_map, min_pixels, nodata), class_map
    if route == "fused":
        zones = fused_to_zones(class_map, settings.fused_dilation_px)
        return zone_route(zones, min_pixels, nodata), zones
    if route == "front":
        return front_route(class_map, min_pixels, nodata), None
    if route == "fused_split":
        zones = split_fused_front(class_map)
        return zone_route(zones, min_pixels, nodata), zones
    if route == "fused_front":
        return front_route(class_map == FRONT_CLASS, min_pixels, nodata), None
    raise ValueError(f"unknown route {route!r}; routes are {', '.join([*ROUTES, *EXTRA_ROUTES])}")


def choose_route(tasks: Sequence[str]) -> str:
    """The post-processing route of a model with these tasks: the first of :data:`ROUTES` (fused, zone, front)."""
    for route in ROUTES:
        if route in tasks:
            return route
    raise ValueError(f"a model with tasks {list(tasks)} has no zone, fused or front task")
