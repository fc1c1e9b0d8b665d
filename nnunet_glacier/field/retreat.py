"""Front time series from ``detect`` outputs: all fronts of a glacier by date, and the front position over time.

Reads the scene records (``<stem>_detect.json``, which hold each scene's
front lines in pixel coordinates, its grid and CRS) that
:func:`nnunet_glacier.field.detect.detect` wrote into one folder, groups them by
glacier and writes, per glacier, into ``OUT_DIR/retreat`` (or another folder)::

    <glacier>_fronts.png|pdf     every front coloured by date over the latest scene, in map coordinates
    <glacier>_position.csv       date, stem, position_m, change_m, method, coverage, needs_check
    <glacier>_position.png|pdf   front position change over time (scenes flagged in quality.csv hollow)

Coordinates. Fronts of georeferenced scenes are in their (projected) CRS;
all scenes of a glacier must share it, and plots are in its map coordinates
(metres). Fronts of scenes without georeferencing are in pixel coordinates
and are taken to lie on one common pixel grid (co-registered scenes), scaled
to metres by its pixel size (plots: metres from the image's top-left corner,
y down); scenes whose size or pixel size differs from the latest scene's
cannot share its grid (e.g. CaFFe PNGs of another sensor) and are left out
with a warning. Mixed groups are refused.

Position (metres, positive = towards the ocean, so an advance raises it):

- ``box`` — the rectilinear box method (Moon & Joughin 2008; Lea et al.
  2014), used whenever a box or a centre line is given. The box is a
  rectangle across the glacier's fjord: given as a polygon whose first edge
  (first to second vertex) is the box's upstream edge, or derived from a
  centre line drawn from upstream towards the ocean and a width — the
  rectangle along the line's chord (first to last vertex), its upstream
  edge centred on the first vertex. A front's position is the area of the
  box between its upstream edge and the front, divided by the box width:
  the front's width-averaged distance from the upstream edge. The front's
  pieces inside the box are ordered across it; gaps between pieces are
  bridged by straight lines and the ends are extended straight to the box
  sides. ``coverage`` is the fraction of the box width the front itself
  spans (gaps and extensions excluded); scenes without front in the box get
  no position, and a box that crosses none of a glacier's fronts (drawn in
  the wrong place or CRS, most often) is reported with a warning naming the
  glacier.
- ``front_normal`` — the fallback without box or centre line: the mean
  signed distance of the *fjord front*'s vertices along the mean
  front-normal direction (the second principal axis of all the glacier's
  fjord-front vertices pooled, measured from their centroid and oriented
  towards the ocean by the records' mean ocean direction). The fjord front
  is the front without its vertices within :data:`COAST_DISTANCE_PX`
  pixels of rock or of the NA class (which holds the scene's no-data) in
  the scene's zone mask: false segments along rocky coasts and no-data
  would otherwise pull the mean towards positions that do not move.
  Front-only models have no zone mask: all vertices are used and the sign
  is arbitrary; ``method`` says so.

``change_m`` is the position minus that of the earliest scene with a
position. Scenes without a date (neither in a CaFFe name nor as
``YYYY-MM-DD`` / ``YYYYMMDD`` in the file name) are left out with a warning.

Box and centre-line files (a box or a centre line, not both): any vector file
GDAL reads (GeoJSON, GeoPackage, Shapefile, ...; the first Polygon, or
LineString, feature) or a CSV with ``x``, ``y`` columns
(:func:`~nnunet_glacier.field.geo.read_vector`). For georeferenced scenes, a
file with a CRS is reprojected to the scenes' CRS (a GeoJSON without a ``crs`` member is WGS84
longitude, latitude, as RFC 7946 says); CSV coordinates are in the scenes'
CRS. For scenes without georeferencing, coordinates are pixel ``x, y``
(pixel corners at integers, y down) and any CRS is ignored.
"""
from __future__ import annotations

import datetime as dt
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from nnunet_glacier.data.caffe import glacier_code
from nnunet_glacier.data.labels import GLACIER, OCEAN
from nnunet_glacier.data.tasks import TASKS
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation.figure_options import FORMATS
from nnunet_glacier.evaluation.plots import plot_front_positions, plot_retreat, save_figure
from nnunet_glacier.field import geo
from nnunet_glacier.field.detect import read_records
from nnunet_glacier.field.quality import QUALITY_CSV
from nnunet_glacier.utilities.atomic import write_text
from nnunet_glacier.utilities.csv_tables import csv_text, read_csv

RETREAT_DIR = "retreat"
POSITION_COLUMNS = ("date", "stem", "position_m", "change_m", "method", "coverage", "needs_check")
#: Front vertices closer than this (pixels) to rock or NA are not part of the fjord front (fallback method).
COAST_DISTANCE_PX = 6.0


@dataclass(frozen=True)
class Frame:
    """The common coordinates of a glacier's fronts, in metres.

    ``kind`` is ``"crs"`` (the shared projected CRS, ``crs_wkt``, whose map
    units are ``unit_m`` metres) or ``"pixel"`` (the shared pixel grid,
    ``unit_m`` metres per pixel, ``crs_wkt`` ``None``).
    """

    kind: str
    unit_m: float
    crs_wkt: str | None = None


@dataclass(frozen=True)
class DatedFront:
    """One scene's front: its record, date, and lines in metres of the glacier's frame (``(x, y)``).

    ``fjord`` holds, per line, which vertices belong to the fjord front
    (``None`` without a zone mask: all of them).
    """

    record: dict[str, Any]
    date: dt.date
    lines: list[np.ndarray]
    fjord: list[np.ndarray] | None


@dataclass(frozen=True)
class Box:
    """A rectilinear box in frame metres: upstream edge from ``origin`` along ``across`` (``width_m``), flow ``along``.

    ``across`` and ``along`` are perpendicular unit vectors; the box spans
    ``0..length_m`` along the flow and ``0..width_m`` across it.
    """

    origin: np.ndarray
    across: np.ndarray
    along: np.ndarray
    width_m: float
    length_m: float

    def to_box(self, xy: np.ndarray) -> np.ndarray:
        """Frame metres ``(n, 2)`` -> box coordinates ``(u, v)``: ``u`` along the flow, ``v`` across."""
        offset = np.asarray(xy) - self.origin
        return np.column_stack([offset @ self.along, offset @ self.across])

    def corners(self) -> np.ndarray:
        """The closed outline ``(5, 2)`` in frame metres."""
        a, w, l = self.origin, self.across * self.width_m, self.along * self.length_m
        return np.array([a, a + w, a + w + l, a + l, a])


@dataclass(frozen=True)
class GlacierSeries:
    """A glacier's dated fronts and positions (metres; NaN without a position), with box coverage (or NaN)."""

    glacier: str
    frame: Frame
    fronts: list[DatedFront]
    positions: list[float]
    coverage: list[float]
    method: str

    @property
    def changes(self) -> list[float]:
        """Position minus that of the earliest scene with a position (NaN without one)."""
        first = next((p for p in self.positions if math.isfinite(p)), math.nan)
        return [p - first for p in self.positions]


# --- box and centre-line files -----------------------------------------------------------------------------------

def to_frame(coords: np.ndarray, crs: str | None, frame: Frame, where: Path) -> np.ndarray:
    """A file's coordinates ``(n, 2)`` (``crs`` as :func:`geo.read_vector` gives it) -> frame metres, reprojected
    for CRS frames when the file has another CRS (:func:`geo.reproject`; ``where``: the file)."""
    coords = np.asarray(coords, dtype=np.float64)
    if frame.crs_wkt is not None and crs is not None:  # a CRS frame
        coords = geo.reproject(coords, crs, frame.crs_wkt, where)
    return coords * frame.unit_m


def box_from_polygon(ring_m: np.ndarray, where: Path) -> Box:
    """The :class:`Box` of a rectangle's ring (frame metres), its first edge upstream; refuses non-rectangles."""
    corners = ring_m[:-1] if np.allclose(ring_m[0], ring_m[-1]) else ring_m
    if len(corners) != 4:
        raise InputError(where, f"a box is a rectangle of 4 corners, got {len(corners)}")
    a, b, c, d = corners
    width, length = float(np.hypot(*(b - a))), float(np.hypot(*(c - b)))
    if min(width, length) == 0 or not (np.allclose(c - b, d - a, atol=0.01 * max(width, length))
                                       and abs(np.dot(b - a, c - b)) <= 0.01 * width * length):
        raise InputError(where, "the box is not a rectangle (sides must be parallel and at right angles, within 1 %)")
    return Box(a, (b - a) / width, (c - b) / length, width, length)


def box_from_centreline(line_m: np.ndarray, width_m: float | None, where: Path) -> Box:
    """The rectangle along a centre line's chord (frame metres), upstream edge centred on its first vertex."""
    if width_m is None:
        raise InputError(where, "a box along a centre line needs its width (--box-width, metres)")
    chord = line_m[-1] - line_m[0]
    length = float(np.hypot(*chord))
    if length == 0 or width_m <= 0:
        raise InputError(where, f"a box needs a centre line of non-zero length and a positive width, got "
                                f"{length:g} m and {width_m:g} m")
    along = chord / length
    across = np.array([-along[1], along[0]])
    return Box(line_m[0] - across * width_m / 2, across, along, float(width_m), length)


# --- positions ---------------------------------------------------------------------------------------------------

def box_position(lines_m: Sequence[np.ndarray], box: Box) -> tuple[float, float]:
    """The front's position in the box (m from the upstream edge) and its coverage (0..1); NaN, 0 without front.

    See the module doc: area between the upstream edge and the front,
    divided by the box width.
    """
    from shapely import LineString, MultiLineString, get_parts
    from shapely import box as rectangle

    if not lines_m:
        return math.nan, 0.0
    inside = MultiLineString([box.to_box(line) for line in lines_m]).intersection(
        rectangle(0, 0, box.length_m, box.width_m))
    pieces = [np.asarray(p.coords) for p in get_parts(inside) if isinstance(p, LineString) and len(p.coords) >= 2]
    pieces = [p if p[-1, 1] >= p[0, 1] else p[::-1] for p in pieces]  # each running across the box, v increasing
    pieces = [p for p in sorted(pieces, key=lambda p: p[0, 1]) if p[-1, 1] > p[0, 1]]
    if not pieces:
        return math.nan, 0.0
    chain = np.concatenate(pieces)
    outline = np.vstack([[0.0, 0.0], [chain[0, 0], 0.0], chain, [chain[-1, 0], box.width_m], [0.0, box.width_m]])
    u, v = outline.T
    area = 0.5 * abs(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1)))
    return float(area / box.width_m), covered_fraction([(p[0, 1], p[-1, 1]) for p in pieces], box.width_m)


def covered_fraction(intervals: Sequence[tuple[float, float]], width: float) -> float:
    """The fraction of ``0..width`` covered by the union of sorted ``(start, end)`` intervals."""
    covered, reach = 0.0, 0.0
    for start, end in intervals:
        start = max(start, reach)
        if end > start:
            covered += end - start
            reach = end
    return covered / width


def fjord_vertices(line_px: np.ndarray, zones: np.ndarray, distance_px: float = COAST_DISTANCE_PX) -> np.ndarray:
    """``bool`` per vertex (pixel coordinates ``(x, y)``, centres at +0.5): farther than ``distance_px`` from rock/NA.

    ``zones`` holds the scene's zone classes 0..3.
    """
    distance = ndimage.distance_transform_edt(np.isin(zones, (GLACIER, OCEAN)))
    cols, rows = np.floor(line_px).astype(int).T
    return distance[rows, cols] > distance_px


def fjord_front(front: DatedFront) -> np.ndarray:
    """The vertices ``(n, 2)`` of a front's fjord front (all its vertices without a zone mask)."""
    if not front.lines:
        return np.empty((0, 2))
    if front.fjord is None:
        return np.concatenate(front.lines)
    return np.concatenate([line[keep] for line, keep in zip(front.lines, front.fjord)])


def normal_positions(fronts: Sequence[DatedFront]) -> tuple[list[float], bool]:
    """Mean signed distance (m) of each fjord front along the pooled front normal; whether it points to the ocean."""
    kept = [fjord_front(f) for f in fronts]
    pooled = [vertices for vertices in kept if len(vertices)]
    if not pooled:
        return [math.nan] * len(fronts), False
    vertices = np.concatenate(pooled)
    centroid = vertices.mean(axis=0)
    _, _, axes = np.linalg.svd(vertices - centroid, full_matrices=False)
    normal = axes[-1]
    oceans = [f.record["ocean_direction"] for f in fronts if f.record.get("ocean_direction") is not None]
    if oceans and float(np.dot(normal, np.mean(oceans, axis=0))) < 0:
        normal = -normal
    positions = [float(((k - centroid) @ normal).mean()) if len(k) else math.nan for k in kept]
    return positions, bool(oceans)


# --- reading a detect folder -------------------------------------------------------------------------------------

def dated_records(out_dir: Path, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with a date, in date order; undated ones are left out with a warning."""
    for record in records:
        if record["date"] is None:
            warnings.warn(f"{out_dir / record['stem']}: no date in the file name, left out of the time series",
                          stacklevel=2)
    return sorted((r for r in records if r["date"] is not None), key=lambda r: (r["date"], r["stem"]))


def common_frame(records: Sequence[dict[str, Any]], where: Path) -> tuple[Frame, list[dict[str, Any]]]:
    """The common frame of a glacier's dated records (in date order) and the records on it.

    :class:`InputError` if they mix CRSs, CRS and pixel scenes, or have a
    geographic CRS. Pixel scenes must share the latest scene's grid (see
    :func:`on_latest_grid`).
    """
    kinds = {r["coordinates"]["kind"] for r in records}
    if len(kinds) > 1:
        raise InputError(where, f"glacier {records[0]['glacier']}: georeferenced and non-georeferenced scenes "
                                f"cannot be put on one map; run retreat on separate folders")
    if kinds == {"pixel"}:
        on_grid = on_latest_grid(where, records)
        return Frame("pixel", on_grid[-1]["pixel_size_m"]), on_grid
    from rasterio.crs import CRS

    systems = {CRS.from_wkt(r["coordinates"]["wkt"]) for r in records}
    if len(systems) > 1:
        stems = ", ".join(r["stem"] for r in records)
        raise InputError(where, f"glacier {records[0]['glacier']}: scenes in {len(systems)} different CRSs "
                                f"({stems}); reproject them to one CRS first")
    crs = systems.pop()
    if not crs.is_projected:
        raise InputError(where, f"glacier {records[0]['glacier']}: CRS {crs.to_string()} is geographic; "
                                f"positions in metres need a projected CRS (warp the scenes, e.g. with gdalwarp)")
    return Frame("crs", float(crs.linear_units_factor[1]), crs.to_wkt()), list(records)


def on_latest_grid(where: Path, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records (in date order, without georeferencing) that can share the latest scene's pixel grid.

    Those of another image size or pixel size are left out with a warning
    naming them.
    """
    latest = records[-1]

    def same_grid(record: dict[str, Any]) -> bool:
        return record["shape"] == latest["shape"] and math.isclose(record["pixel_size_m"], latest["pixel_size_m"])

    left_out = [r["stem"] for r in records if not same_grid(r)]
    if left_out:
        warnings.warn(f"{where}: glacier {latest['glacier']}: scenes without georeferencing are drawn on the latest "
                      f"scene's pixel grid ({latest['shape'][1]}x{latest['shape'][0]} px of "
                      f"{latest['pixel_size_m']:g} m); {len(left_out)} of another size or pixel size left out: "
                      f"{', '.join(left_out)} (georeferenced GeoTIFFs can be combined)", stacklevel=3)
    return [r for r in records if same_grid(r)]


def record_transform(record: dict[str, Any]) -> Any:
    """A record's affine pixel-to-map transform (``None`` without georeferencing)."""
    from rasterio import Affine

    return None if record["transform"] is None else Affine(*record["transform"])


def pixel_to_frame(xy_px: np.ndarray, record: dict[str, Any], frame: Frame) -> np.ndarray:
    """Pixel coordinates ``(x, y)`` of a record's grid -> frame metres."""
    transform = record_transform(record)
    xy = np.asarray(xy_px, dtype=np.float64) if transform is None else geo.apply_affine(transform, xy_px)
    return xy * frame.unit_m


def read_zone_classes(path: Path) -> np.ndarray:
    """A zone mask written by ``detect`` (GeoTIFF or PNG, CaFFe values) as zone classes 0..3."""
    return TASKS["zone"].from_png(geo.read_raster(path))


def read_fronts(out_dir: Path, records: Sequence[dict[str, Any]], frame: Frame) -> list[DatedFront]:
    """The records' front lines in frame metres, with their fjord vertices where a zone mask exists."""
    fronts = []
    for record in records:
        lines_px = [np.asarray(line, dtype=np.float64) for line in record["front_lines_px"]]
        fjord = None
        if "zones" in record["outputs"] and lines_px:
            zones = read_zone_classes(out_dir / record["outputs"]["zones"])
            fjord = [fjord_vertices(line, zones) for line in lines_px]
        fronts.append(DatedFront(record, dt.date.fromisoformat(record["date"]),
                                 [pixel_to_frame(line, record, frame) for line in lines_px], fjord))
    return fronts


@dataclass(frozen=True)
class Guide:
    """What the user gave to measure positions: a box file, or a centre line and a box width (metres).

    :class:`ValueError` when given both a box and a centre line (the box
    method needs one box).
    """

    box: Path | None = None
    centreline: Path | None = None
    box_width_m: float | None = None

    def __post_init__(self) -> None:
        if self.box is not None and self.centreline is not None:
            raise ValueError(f"give a box or a centre line, not both (box {self.box}, centre line {self.centreline})")

    def box_in(self, frame: Frame) -> Box | None:
        """The :class:`Box` in the frame's metres, or ``None`` without box and centre line."""
        if self.box is not None:
            ring, crs = geo.read_vector(self.box, "Polygon")
            return box_from_polygon(to_frame(ring, crs, frame, self.box), self.box)
        if self.centreline is not None:
            line, crs = geo.read_vector(self.centreline, "LineString")
            return box_from_centreline(to_frame(line, crs, frame, self.centreline), self.box_width_m,
                                       self.centreline)
        return None


def glacier_series(out_dir: Path, glacier: str, records: Sequence[dict[str, Any]],
                   guide: Guide) -> tuple[GlacierSeries, Box | None]:
    """Dated fronts and positions of one glacier (see the module doc for the methods), and the box used."""
    dated = dated_records(out_dir, records)
    if not dated:
        raise InputError(out_dir, f"glacier {glacier}: no dated scenes")
    frame, on_frame = common_frame(dated, out_dir)
    fronts = read_fronts(out_dir, on_frame, frame)
    box = guide.box_in(frame)
    if box is not None:
        measured = [box_position(f.lines, box) for f in fronts]
        positions, coverage = [p for p, _ in measured], [c for _, c in measured]
        if not any(math.isfinite(p) for p in positions):
            warnings.warn(f"{out_dir}: glacier {glacier}: the box crosses none of its {len(fronts)} fronts, so no "
                          f"scene has a position; check the box's place and CRS", UserWarning, stacklevel=2)
        return GlacierSeries(glacier, frame, fronts, positions, coverage, f"box ({box.width_m:g} m wide)"), box
    positions, oriented = normal_positions(fronts)
    method = "front_normal" if oriented else "front_normal (sign arbitrary: no ocean direction)"
    if all(f.fjord is None for f in fronts):
        method += ", all vertices (no zone masks)"
    return GlacierSeries(glacier, frame, fronts, positions, [math.nan] * len(fronts), method), None


# --- outputs -----------------------------------------------------------------------------------------------------

def quality_flags(out_dir: Path) -> dict[str, bool]:
    """``needs_check`` per stem from ``quality.csv`` (empty when the file is absent)."""
    path = out_dir / QUALITY_CSV
    if not path.is_file():
        return {}
    return {row["stem"]: row["needs_check"] == "True" for row in read_csv(path, ("stem", "needs_check"))}


def position_csv(series: GlacierSeries, flags: dict[str, bool]) -> str:
    """The series as CSV text with :data:`POSITION_COLUMNS` (metres rounded to millimetres)."""
    rows = [[f.date.isoformat(), f.record["stem"], round(p, 3), round(c, 3), series.method, cover,
             flags.get(f.record["stem"], "")]
            for f, p, c, cover in zip(series.fronts, series.positions, series.changes, series.coverage)]
    return csv_text(POSITION_COLUMNS, rows)


def background_of(out_dir: Path, front: DatedFront) -> np.ndarray:
    """The scene image of a record when its input is still readable at the recorded size, else zeros."""
    shape = tuple(front.record["shape"])
    try:
        image = geo.read_scene(front.record["input"], default_pixel_size_m=front.record["pixel_size_m"]).image
    except InputError:
        warnings.warn(f"{out_dir / front.record['stem']}: input {front.record['input']} not readable, "
                      f"drawing fronts on a blank background", stacklevel=2)
        return np.zeros(shape, dtype=np.uint8)
    return image if image.shape == shape else np.zeros(shape, dtype=np.uint8)


def map_extent(record: dict[str, Any], frame: Frame) -> tuple[float, float, float, float] | None:
    """``(left, right, bottom, top)`` of a record's image in frame metres, ``None`` for a rotated grid."""
    transform = record_transform(record)
    if transform is not None and (transform.b or transform.d):
        return None
    rows, cols = record["shape"]
    (left, top), (right, bottom) = pixel_to_frame(np.array([[0.0, 0.0], [cols, rows]]), record, frame)
    return left, right, bottom, top


def axis_labels(frame: Frame) -> tuple[str, str]:
    """Axis labels of map plots in the frame's metres."""
    if frame.kind == "pixel":
        return "x (m from the image's left edge)", "y (m from the image's top edge, down)"
    assert frame.crs_wkt is not None  # a "crs" frame has its CRS
    name = geo.crs_name(frame.crs_wkt)
    return f"easting (m, {name})", f"northing (m, {name})"


def write_glacier(series: GlacierSeries, box: Box | None, out_dir: Path, dest: Path, flags: dict[str, bool],
                  formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the fronts map, the position CSV and the position plot of one glacier; returns the paths.

    ``flags``: ``needs_check`` per stem (:func:`quality_flags`).
    """
    frame, latest = series.frame, series.fronts[-1]
    written = []
    drawn = [(f.date, line) for f in series.fronts for line in f.lines]
    if drawn:
        extent = map_extent(latest.record, frame)
        background = background_of(out_dir, latest) if extent is not None else None
        with_front = sum(bool(f.lines) for f in series.fronts)
        figure = plot_retreat(drawn, background, extent=extent, outline=None if box is None else box.corners(),
                              axis_labels=axis_labels(frame), title=(
                f"{series.glacier}: fronts of {with_front} of {len(series.fronts)} scenes, {series.fronts[0].date} "
                f"to {latest.date}\nbackground {latest.record['stem']}"))
        written += save_figure(figure, dest / f"{series.glacier}_fronts", formats)
    csv_path = dest / f"{series.glacier}_position.csv"
    write_text(csv_path, position_csv(series, flags))
    written.append(csv_path)
    if any(math.isfinite(p) for p in series.positions):
        figure = plot_front_positions([f.date for f in series.fronts], series.changes,
                                      [flags.get(f.record["stem"], False) for f in series.fronts],
                                      title=f"{series.glacier}: front position change ({series.method})")
        written += save_figure(figure, dest / f"{series.glacier}_position", formats)
    return written


def select_records(records: Sequence[dict[str, Any]], glacier: str | None, where: Path) -> dict[str, list[dict]]:
    """Records grouped by glacier, only ``glacier`` (code or full CaFFe name, any case) when given."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record["glacier"]].append(record)
    if glacier is None:
        return dict(groups)
    code = glacier_code(glacier)
    chosen = {name: group for name, group in groups.items() if name.lower() == code.lower()}
    if not chosen:
        raise InputError(where, f"no scenes of glacier {glacier!r}; glaciers present: {', '.join(sorted(groups))}")
    return chosen


def retreat(out_dir: str | Path, *, glacier: str | None = None, box: str | Path | None = None,
            centreline: str | Path | None = None, box_width_m: float | None = None,
            dest: str | Path | None = None, formats: Sequence[str] = FORMATS) -> dict[str, list[Path]]:
    """Time series of every glacier (or ``glacier``) of a ``detect`` output folder; returns the files per glacier.

    ``box`` (a rectangle, first edge upstream) or ``centreline`` with
    ``box_width_m`` select the box method for every glacier selected (see
    the module doc; :class:`ValueError` when given both); ``dest`` defaults
    to ``OUT_DIR/retreat``.
    """
    guide = Guide(None if box is None else Path(box), None if centreline is None else Path(centreline), box_width_m)
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    if not records:
        raise InputError(out_dir, "no scene records (*_detect.json): run `nnunet-glacier detect` into it first")
    groups = select_records(records, glacier, out_dir)
    given = box if box is not None else centreline
    if given is not None and len(groups) > 1:
        raise InputError(Path(given), f"one box for {len(groups)} glaciers ({', '.join(groups)}): "
                                      f"choose one with --glacier")
    dest = out_dir / RETREAT_DIR if dest is None else Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    flags = quality_flags(out_dir)
    written = {}
    for name, group in sorted(groups.items()):
        series, used_box = glacier_series(out_dir, name, group, guide)
        written[name] = write_glacier(series, used_box, out_dir, dest, flags, formats)
    return written
