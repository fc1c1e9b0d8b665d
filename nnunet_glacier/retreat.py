"""Front time series from ``detect`` outputs: all fronts of a glacier by date, and the front position over time.

Reads the scene records (``<stem>_detect.json``) and front lines
(``<stem>_front.geojson``) that :func:`nnunet_glacier.detect.detect` wrote
into one folder, groups them by glacier and writes, per glacier, into
``OUT_DIR/retreat`` (or another folder)::

    <glacier>_fronts.png|pdf     every front coloured by date over the latest scene
    <glacier>_position.csv       date, stem, position_m, change_m, method, needs_check
    <glacier>_position.png|pdf   front position change over time (scenes flagged in quality.csv hollow)

Coordinates. Fronts of georeferenced scenes are in their (projected) CRS;
all scenes of a glacier must share it. Fronts of scenes without
georeferencing are in pixel coordinates and are taken to lie on one common
pixel grid (co-registered scenes), scaled to metres by its pixel size; scenes
whose size or pixel size differs from the latest scene's cannot share its
grid (e.g. CaFFe PNGs of another sensor) and are left out with a warning.
Mixed groups are refused.

Position (metres), two methods:

- ``centreline``: the distance along a user-given glacier centre line, from
  its first vertex, to its first crossing with the front. Draw the line from
  upstream (on the glacier) towards the ocean, in the scenes' coordinates
  (map coordinates, or pixel ``x, y`` for scenes without georeferencing);
  positions then grow when the front advances. Scenes whose front does not
  cross the line get no position.
- ``front_normal`` (default): the mean signed distance of a front's
  vertices along the mean front-normal direction — the second principal
  axis of all the glacier's front vertices pooled — measured from their
  centroid and oriented towards the ocean by the mean ocean direction of
  the records (positive = advance). Without zone predictions (front-only
  models) the sign is arbitrary and the CSV says so in ``method``.

``change_m`` is the position minus that of the earliest scene with a
position. Scenes without a date (neither in a CaFFe name nor as
``YYYY-MM-DD`` / ``YYYYMMDD`` in the file name) are left out with a warning.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier import geo
from nnunet_glacier.atomic import write_text
from nnunet_glacier.caffe import glacier_code
from nnunet_glacier.csv_tables import csv_text
from nnunet_glacier.detect import read_records
from nnunet_glacier.errors import InputError
from nnunet_glacier.figure_options import FORMATS
from nnunet_glacier.plots import plot_front_positions, plot_retreat, save_figure
from nnunet_glacier.quality import QUALITY_CSV




RETREAT_DIR = "retreat"
POSITION_COLUMNS = ("date", "stem", "position_m", "change_m", "method", "needs_check")


@dataclass(frozen=True)
class DatedFront:
    """One scene's front: its record, date and lines in the glacier's common frame (metres, ``(x, y)``)."""

    record: dict[str, Any]
    date: dt.date
    lines: list[np.ndarray]


@dataclass(frozen=True)
class Frame:
    """The common coordinates of a glacier's fronts.

    ``kind`` is ``"crs"`` (lines in the shared projected CRS's map units) or
    ``"pixel"`` (pixel ``x, y`` of the shared grid); ``unit_m`` is metres per
    map unit or per pixel.
    """

    kind: str
    unit_m: float


@dataclass(frozen=True)
class GlacierSeries:
    """A glacier's dated fronts and positions (metres; NaN where the front does not cross the centre line)."""

    glacier: str
    frame: Frame
    fronts: list[DatedFront]
    positions: list[float]
    method: str

    @property
    def changes(self) -> list[float]:
        """Position minus that of the earliest scene with a position (NaN without one)."""
        first = next((p for p in self.positions if math.isfinite(p)), math.nan)
        return [p - first for p in self.positions]


def read_centreline(path: str | Path) -> np.ndarray:
    """A centre line as ``(n, 2)`` ``(x, y)``: the first LineString of a GeoJSON, or a CSV with ``x``, ``y`` columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "centre line file not found")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                line = np.array([[float(row["x"]), float(row["y"])] for row in csv.DictReader(handle)])
        else:
            line = np.asarray(_first_linestring(json.loads(path.read_text())), dtype=np.float64)
    except (KeyError, ValueError, TypeError) as err:
        raise InputError(path, f"not a centre line: expected a GeoJSON LineString or a CSV with x,y columns "
                               f"({type(err).__name__}: {err})") from err
    if line.ndim != 2 or line.shape[1] != 2 or len(line) < 2:
        raise InputError(path, f"a centre line needs at least two (x, y) vertices, got shape {line.shape}")
    return line


def _first_linestring(geojson: dict[str, Any]) -> list[list[float]]:
    """The coordinates of the first LineString in a GeoJSON geometry, Feature or FeatureCollection."""
    if geojson["type"] == "FeatureCollection":
        for feature in geojson["features"]:
            if feature["geometry"]["type"] == "LineString":
                return [xy[:2] for xy in feature["geometry"]["coordinates"]]
        raise ValueError("no LineString feature")
    geometry = geojson["geometry"] if geojson["type"] == "Feature" else geojson
    if geometry["type"] != "LineString":
        raise ValueError(f"geometry is a {geometry['type']}, not a LineString")
    return [xy[:2] for xy in geometry["coordinates"]]


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

    systems = {r["coordinates"]["wkt"] for r in records}
    if len(systems) > 1:
        stems = ", ".join(r["stem"] for r in records)
        raise InputError(where, f"glacier {records[0]['glacier']}: scenes in {len(systems)} different CRSs "
                                f"({stems}); reproject them to one CRS first")
    crs = CRS.from_wkt(systems.pop())
    if not crs.is_projected:
        raise InputError(where, f"glacier {records[0]['glacier']}: CRS {crs.to_string()} is geographic; "
                                f"positions in metres need a projected CRS (warp the scenes, e.g. with gdalwarp)")
    return Frame("crs", float(crs.linear_units_factor[1])), list(records)


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


def read_fronts(out_dir: Path, records: Sequence[dict[str, Any]], frame: Frame) -> list[DatedFront]:
    """The records' front lines in metres of the common frame."""
    return [DatedFront(r, dt.date.fromisoformat(r["date"]),
                       [line * frame.unit_m for line in geo.read_front_geojson(out_dir / r["outputs"]["front_lines"])])
            for r in records]


def centreline_positions(fronts: Sequence[DatedFront], centreline_m: np.ndarray) -> list[float]:
    """Distance (m) along the centre line from its start to its first crossing with each front (NaN if none)."""
    from shapely import LineString, MultiLineString

    centre = LineString(centreline_m)
    positions = []
    for front in fronts:
        crossing = centre.intersection(MultiLineString([line for line in front.lines if len(line) >= 2]))
        points = [] if crossing.is_empty else [centre.project(p) for p in _crossing_points(crossing)]
        positions.append(min(points) if points else math.nan)
    return positions


def _crossing_points(geometry: Any) -> list[Any]:
    """The points of an intersection geometry (a point, several, or a shared piece of line: its ends)."""
    from shapely import get_parts, points

    return [p for part in get_parts(geometry) for p in points(np.asarray(part.coords))]


def front_normal(fronts: Sequence[DatedFront]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Centroid and unit normal of all front vertices pooled, and whether the normal points to the ocean.

    The normal is the second principal axis of the vertices; it is turned to
    point along the records' mean ocean direction when they have one.
    """
    vertices = np.concatenate([line for front in fronts for line in front.lines])
    centroid = vertices.mean(axis=0)
    _, _, axes = np.linalg.svd(vertices - centroid, full_matrices=False)
    normal = axes[-1]
    oceans = [f.record["ocean_direction"] for f in fronts if f.record.get("ocean_direction") is not None]
    if not oceans:
        return centroid, normal, False
    if float(np.dot(normal, np.mean(oceans, axis=0))) < 0:
        normal = -normal
    return centroid, normal, True


def normal_positions(fronts: Sequence[DatedFront]) -> tuple[list[float], bool]:
    """Mean signed distance (m) of each front's vertices along the pooled front normal; whether it is oriented."""
    fronts_with_lines = [f for f in fronts if f.lines]
    if not fronts_with_lines:
        return [math.nan] * len(fronts), False
    centroid, normal, oriented = front_normal(fronts_with_lines)
    positions = [float(((np.concatenate(f.lines) - centroid) @ normal).mean()) if f.lines else math.nan
                 for f in fronts]
    return positions, oriented


def glacier_series(out_dir: Path, glacier: str, records: Sequence[dict[str, Any]],
                   centreline: np.ndarray | None) -> GlacierSeries:
    """Dated fronts and positions of one glacier (see the module doc for the methods)."""
    dated = dated_records(out_dir, records)
    if not dated:
        raise InputError(out_dir, f"glacier {glacier}: no dated scenes")
    frame, on_frame = common_frame(dated, out_dir)
    fronts = read_fronts(out_dir, on_frame, frame)
    if centreline is not None:
        positions = centreline_positions(fronts, centreline * frame.unit_m)
        return GlacierSeries(glacier, frame, fronts, positions, "centreline")
    positions, oriented = normal_positions(fronts)
    return GlacierSeries(glacier, frame, fronts, positions,
                         "front_normal" if oriented else "front_normal (sign arbitrary: no ocean direction)")


def quality_flags(out_dir: Path) -> dict[str, bool]:
    """``needs_check`` per stem from ``quality.csv`` (empty when the file is absent)."""
    path = out_dir / QUALITY_CSV
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {row["stem"]: row["needs_check"] == "True" for row in csv.DictReader(handle)}


def position_csv(series: GlacierSeries, flags: dict[str, bool]) -> str:
    """The series as CSV text with :data:`POSITION_COLUMNS`."""
    rows = [[f.date.isoformat(), f.record["stem"], p, c, series.method, flags.get(f.record["stem"], "")]
            for f, p, c in zip(series.fronts, series.positions, series.changes)]
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


def to_index_pixels(xy_m: np.ndarray, record: dict[str, Any], frame: Frame) -> np.ndarray:
    """Common-frame metres -> ``(x, y)`` pixel indices of a record's grid (pixel centres at integers)."""
    xy = np.asarray(xy_m) / frame.unit_m
    if frame.kind == "crs":
        from rasterio import Affine

        xy = geo.map_to_pixel(xy, Affine(*record["transform"]))
    return xy - 0.5


def write_glacier(series: GlacierSeries, out_dir: Path, dest: Path, centreline: np.ndarray | None,
                  flags: dict[str, bool], formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the fronts map, the position CSV and the position plot of one glacier; returns the paths.

    ``flags``: ``needs_check`` per stem (:func:`quality_flags`).
    """
    frame = series.frame
    latest = series.fronts[-1]
    written = []
    drawn = [(f.date, to_index_pixels(line, latest.record, frame)) for f in series.fronts for line in f.lines]
    if drawn:
        guide = None if centreline is None else to_index_pixels(centreline * frame.unit_m, latest.record, frame)
        with_front = sum(bool(f.lines) for f in series.fronts)
        figure = plot_retreat(drawn, background_of(out_dir, latest), centreline=guide, title=(
            f"{series.glacier}: fronts of {with_front} of {len(series.fronts)} scenes, {series.fronts[0].date} to "
            f"{latest.date}\nbackground {latest.record['stem']}"))
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


def retreat(out_dir: str | Path, *, glacier: str | None = None, centreline: str | Path | None = None,
            dest: str | Path | None = None, formats: Sequence[str] = FORMATS) -> dict[str, list[Path]]:
    """Time series of every glacier (or ``glacier``) of a ``detect`` output folder; returns the files per glacier.

    ``centreline``: a GeoJSON or CSV centre line (see :func:`read_centreline`)
    used for every glacier selected; ``dest`` defaults to ``OUT_DIR/retreat``.
    """
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    if not records:
        raise InputError(out_dir, "no scene records (*_detect.json): run `nnunet-glacier detect` into it first")
    groups = select_records(records, glacier, out_dir)
    if centreline is not None and len(groups) > 1:
        raise InputError(Path(centreline), f"one centre line for {len(groups)} glaciers ({', '.join(groups)}): "
                                           f"choose one with --glacier")
    line = None if centreline is None else read_centreline(centreline)
    dest = out_dir / RETREAT_DIR if dest is None else Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    flags = quality_flags(out_dir)
    return {name: write_glacier(glacier_series(out_dir, name, group, line), out_dir, dest, line, flags, formats)
            for name, group in sorted(groups.items())}
