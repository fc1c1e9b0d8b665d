"""Front time series (nnunet_glacier.field.retreat) on detect outputs whose fronts are known exactly."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from standin_predictor import StandInPredictor

from nnunet_glacier.cli import main
from nnunet_glacier.errors import InputError
from nnunet_glacier.field import geo
from nnunet_glacier.field.detect import SceneFront, SceneSettings, read_records, scene_made_from, write_scene
from nnunet_glacier.field.quality import QUALITY_CSV, QualitySettings, quality_csv, quality_rows
from nnunet_glacier.field.retreat import retreat
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.utilities.atomic import write_png, write_text

SHAPE = (30, 40)
PIXEL_M = 10.0
FRONT_COLUMNS = {"2019-03-01": 10, "2019-09-01": 12, "2020-03-01": 15}  # the front advances 20 m, then 30 m
UTM_22N = CRS.from_epsg(32622)
TRANSFORM = from_origin(1000.0, 2000.0, PIXEL_M, PIXEL_M)


def write_detected(out: Path, stem: str, front_col: int, *, georeferenced: bool = False,
                   disagreement: float = 0.05, crs: CRS = UTM_22N, pixel_m: float = PIXEL_M,
                   coast: bool = False) -> None:
    """Detect's outputs for a scene whose glacier (left) meets the ocean (right) along one column.

    With ``coast``, rock walls (5 rows at the top and bottom) line the fjord,
    and a 2 px glacier strip along them out in the ocean makes false fronts
    along the coast, the same in every scene.
    """
    image = np.full(SHAPE, 120, dtype=np.uint8)
    path = out.parent / "inputs" / f"{stem}.png"
    write_png(path, image)
    scene = geo.GeoScene(path, image, crs if georeferenced else None, TRANSFORM if georeferenced else None,
                         pixel_m, "transform" if georeferenced else "option", None)
    zones = np.full(SHAPE, 2, dtype=np.uint8)
    zones[:, front_col:] = 3
    if coast:
        zones[:5], zones[-5:] = 1, 1
        zones[5:7, front_col:], zones[-7:-5, front_col:] = 2, 2
    front = postprocess.front_from_zones(zones, min_pixels=0)
    lines_px = geo.pixel_lines(postprocess.ordered_paths(front))
    result = SceneFront(zones, front, lines_px, disagreement, np.zeros(SHAPE, np.float32), False, False)
    predictor, settings = StandInPredictor(Path("model")), SceneSettings(glacier="Fjord")
    write_scene(out, scene, result, "zone", predictor, settings, scene_made_from(path, settings.made_with(predictor)),
                {"no_contrast": None, "resolution_mismatch": None})


@pytest.fixture
def detected(tmp_path) -> Path:
    out = tmp_path / "detect"
    out.mkdir()
    for date, col in FRONT_COLUMNS.items():
        write_detected(out, f"fjord_{date}", col, disagreement=0.3 if date == "2019-09-01" else 0.05)
    write_text(out / QUALITY_CSV, quality_csv(quality_rows(read_records(out), QualitySettings())))
    return out


def position_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_front_normal_positions_follow_the_advance(detected):
    written = retreat(detected)
    rows = position_rows(detected / "retreat" / "Fjord_position.csv")
    assert [row["date"] for row in rows] == list(FRONT_COLUMNS)
    assert [float(row["change_m"]) for row in rows] == pytest.approx([0.0, 20.0, 50.0])
    assert {row["method"] for row in rows} == {"front_normal"}  # oriented to the ocean: advance is positive
    assert [row["needs_check"] for row in rows] == ["False", "True", "False"]  # low agreement flagged
    names = {p.name for p in written["Fjord"]}
    assert names == {"Fjord_fronts.png", "Fjord_fronts.pdf", "Fjord_position.csv", "Fjord_position.png",
                     "Fjord_position.pdf"}


def test_centreline_in_pixels_gives_the_box_method(detected, tmp_path):
    line = tmp_path / "centre.csv"
    line.write_text("x,y\n0,15\n39,15\n")
    assert main(["retreat", str(detected), "--centreline", str(line), "--box-width", "200",
                 "-o", str(tmp_path / "series")]) == 0
    rows = position_rows(tmp_path / "series" / "Fjord_position.csv")
    expected = [(col + 0.5) * PIXEL_M for col in FRONT_COLUMNS.values()]  # fronts at pixel centres x = col + 0.5
    assert [float(row["position_m"]) for row in rows] == pytest.approx(expected)
    assert [float(row["change_m"]) for row in rows] == pytest.approx([0.0, 20.0, 50.0])
    assert {row["method"] for row in rows} == {"box (200 m wide)"}
    assert [float(row["coverage"]) for row in rows] == pytest.approx([1.0] * 3)


def test_a_box_crossing_no_front_warns_naming_the_glacier(detected, tmp_path):
    box = tmp_path / "box.csv"  # across the fjord, but downstream of every front (columns 10..15)
    box.write_text("x,y\n30,0\n30,30\n38,30\n38,0\n")
    with pytest.warns(UserWarning, match=r"glacier Fjord: the box crosses none of its 3 fronts"):
        retreat(detected, box=box, dest=tmp_path / "series")
    rows = position_rows(tmp_path / "series" / "Fjord_position.csv")
    assert [row["position_m"] for row in rows] == ["", "", ""]


def georeferenced_series(tmp_path: Path) -> Path:
    out = tmp_path / "detect"
    out.mkdir()
    for date, col in FRONT_COLUMNS.items():
        write_detected(out, f"fjord_{date}", col, georeferenced=True)
    return out


def test_centreline_in_map_coordinates_for_georeferenced_scenes(tmp_path):
    out = georeferenced_series(tmp_path)
    y = 2000.0 - 15 * PIXEL_M
    line = tmp_path / "centre.geojson"
    line.write_text(json.dumps({"type": "FeatureCollection",
                                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32622"}},
                                "features": [{"type": "Feature", "properties": {}, "geometry": {
                                    "type": "LineString", "coordinates": [[1000.0, y], [1400.0, y]]}}]}))
    retreat(out, centreline=line, box_width_m=200)
    rows = position_rows(out / "retreat" / "Fjord_position.csv")
    assert [float(row["position_m"]) for row in rows] == pytest.approx(
        [(col + 0.5) * PIXEL_M for col in FRONT_COLUMNS.values()])


def test_box_drawn_in_longitude_latitude_is_reprojected(tmp_path):
    from pyproj import Transformer

    out = georeferenced_series(tmp_path)
    corners = np.array([[1000.0, 1900.0], [1000.0, 1800.0], [1350.0, 1800.0], [1350.0, 1900.0], [1000.0, 1900.0]])
    lon, lat = Transformer.from_crs("EPSG:32622", "EPSG:4326", always_xy=True).transform(*corners.T)
    box = tmp_path / "box.geojson"  # RFC 7946, as QGIS saves a layer in EPSG:4326: no crs member
    box.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [np.column_stack([lon, lat]).tolist()]}}))
    assert main(["retreat", str(out), "--box", str(box)]) == 0
    rows = position_rows(out / "retreat" / "Fjord_position.csv")
    assert [float(row["position_m"]) for row in rows] == pytest.approx(
        [(col + 0.5) * PIXEL_M for col in FRONT_COLUMNS.values()], abs=0.01)
    assert {row["method"] for row in rows} == {"box (100 m wide)"}


def test_map_coordinates_without_a_crs_member_are_refused(tmp_path):
    out = georeferenced_series(tmp_path)
    line = tmp_path / "centre.geojson"
    line.write_text(json.dumps({"type": "LineString", "coordinates": [[1000.0, 1850.0], [1400.0, 1850.0]]}))
    with pytest.raises(InputError, match=r"centre\.geojson: coordinates out of range .* add the scenes' CRS"):
        retreat(out, centreline=line)


def test_a_box_must_be_a_rectangle(tmp_path, detected):
    box = tmp_path / "box.csv"
    box.write_text("x,y\n0,5\n0,25\n30,30\n30,5\n")
    with pytest.raises(InputError, match=r"box\.csv: the box is not a rectangle"):
        retreat(detected, box=box)


def test_front_missing_the_centreline_has_no_position(detected, tmp_path):
    line = tmp_path / "centre.csv"
    line.write_text("x,y\n0,15\n11,15\n")  # ends before the later fronts
    retreat(detected, centreline=line, box_width_m=200)
    rows = position_rows(detected / "retreat" / "Fjord_position.csv")
    assert [row["position_m"] for row in rows] == ["105", "", ""]


def test_undated_scenes_are_left_out_with_a_warning(detected):
    write_detected(detected, "fjord_latest", 20)
    with pytest.warns(UserWarning, match="fjord_latest: no date"):
        retreat(detected)
    assert len(position_rows(detected / "retreat" / "Fjord_position.csv")) == 3


def test_cli_prints_warnings_as_one_line(detected, capsys):
    write_detected(detected, "fjord_latest", 20)
    assert main(["retreat", str(detected)]) == 0
    warning_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warning_lines) == 1 and "fjord_latest: no date in the file name" in warning_lines[0]


def test_pixel_scenes_off_the_latest_grid_are_left_out(detected):
    write_detected(detected, "fjord_2018-03-01", 8, pixel_m=20.0)  # another sensor's resolution
    with pytest.warns(UserWarning, match=r"1 of another size or pixel size left out: fjord_2018-03-01"):
        retreat(detected)
    rows = position_rows(detected / "retreat" / "Fjord_position.csv")
    assert [row["date"] for row in rows] == list(FRONT_COLUMNS)


def test_mixed_coordinate_systems_are_refused(detected):
    write_detected(detected, "fjord_2021-03-01", 18, georeferenced=True)
    with pytest.raises(InputError, match="georeferenced and non-georeferenced"):
        retreat(detected)


def test_two_crss_are_refused(tmp_path):
    out = tmp_path / "detect"
    out.mkdir()
    write_detected(out, "fjord_2019-03-01", 10, georeferenced=True)
    write_detected(out, "fjord_2019-09-01", 12, georeferenced=True, crs=CRS.from_epsg(32623))
    with pytest.raises(InputError, match="2 different CRSs"):
        retreat(out)


def test_glacier_filter_and_errors_name_the_folder(detected, tmp_path):
    assert set(retreat(detected, glacier="fjord")) == {"Fjord"}
    with pytest.raises(InputError, match=r"detect: no scenes of glacier 'JAC'; glaciers present: Fjord"):
        retreat(detected, glacier="JAC")
    with pytest.raises(InputError, match="no scene records"):
        retreat(tmp_path / "inputs")
    bad = tmp_path / "line.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(InputError, match=r"line\.geojson: no LineString feature"):
        geo.read_vector(bad, "LineString")
    assert main(["retreat", str(detected), "--centreline", str(tmp_path / "missing.csv"), "--box-width", "500"]) == 1
    assert main(["retreat", str(detected), "--centreline", str(tmp_path / "missing.csv")]) == 2  # needs a width


def test_a_box_and_a_centre_line_at_once_are_refused(detected, tmp_path):
    box, line = tmp_path / "box.csv", tmp_path / "centre.csv"
    box.write_text("x,y\n0,5\n0,25\n30,25\n30,5\n")
    line.write_text("x,y\n0,15\n30,15\n")
    with pytest.raises(ValueError, match=r"give a box or a centre line, not both \(box .*box\.csv, centre line "):
        retreat(detected, box=box, centreline=line, box_width_m=200.0)
    assert not (detected / "retreat").exists()  # refused before anything is written


def test_quality_flags_are_read_through_the_csv_reader(detected):
    (detected / QUALITY_CSV).write_text("stem,flag\nfjord_2019-03-01,x\n")
    with pytest.raises(InputError, match=r"quality\.csv: missing column\(s\) needs_check"):
        retreat(detected)


# --- the box method on fronts rasterised from known curves -------------------------------------------------------

def rasterised_front(box, curve, scene) -> list[np.ndarray]:
    """The front (map coordinates) of a scene whose glacier lies where ``u < curve(v)`` in the box's frame."""
    rows, cols = np.indices(scene.image.shape)
    centres = scene.pixel_to_map(np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5]))
    u, v = box.to_box(centres).T
    zones = np.where(u < curve(v), 2, 3).reshape(scene.image.shape).astype(np.uint8)
    return geo.front_lines(postprocess.ordered_paths(postprocess.front_from_zones(zones, 0)), scene)


def test_box_method_measures_a_known_area_change_to_one_percent():
    from nnunet_glacier.field.retreat import box_from_polygon, box_position

    pixel = 10.0
    transform = from_origin(500_000.0, 7_006_000.0, pixel, pixel)
    scene = geo.GeoScene(Path("s.tif"), np.zeros((600, 600), np.uint8), UTM_22N, transform, pixel, "transform", None)
    angle = np.radians(30)  # the fjord runs 30 degrees north of east
    along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    width, length = 3000.0, 3500.0
    origin = np.array([501_500.0, 7_000_500.0])
    ring = np.array([origin, origin + across * width, origin + across * width + along * length,
                     origin + along * length, origin])
    box = box_from_polygon(ring, Path("box.geojson"))
    before = lambda v: 2000 + 300 * np.sin(2 * np.pi * v / width) + 0.1 * v  # mean over the box: 2150 m
    after = lambda v: 1200 + 200 * np.cos(3 * np.pi * v / width)  # mean: 1200 m
    positions = [box_position(rasterised_front(box, curve, scene), box) for curve in (before, after)]
    (first, cover_first), (second, cover_second) = positions
    assert cover_first == pytest.approx(1.0) and cover_second == pytest.approx(1.0)
    assert second - first == pytest.approx(1200 - 2150, rel=0.01)
    assert first == pytest.approx(2150, abs=pixel)  # front pixels lie up to a pixel on the ocean side


def test_box_bridges_gaps_and_reports_coverage():
    from nnunet_glacier.field.retreat import Box, box_position

    box = Box(np.zeros(2), np.array([0.0, 1.0]), np.array([1.0, 0.0]), 100.0, 500.0)  # flow along x, 100 m wide
    pieces = [np.array([[200.0, -10.0], [200.0, 30.0]]), np.array([[300.0, 60.0], [300.0, 80.0]])]
    position, coverage = box_position(pieces, box)
    # 200 m for v in 0..30, a straight bridge to 300 m over 30..60, 300 m over 60..100
    assert position == pytest.approx((200 * 30 + 250 * 30 + 300 * 40) / 100)
    assert coverage == pytest.approx(0.5)
    assert box_position([np.array([[600.0, 0.0], [600.0, 100.0]])], box) == (pytest.approx(np.nan, nan_ok=True), 0.0)


def test_fallback_uses_the_front_inside_the_fjord_not_the_coast(tmp_path):
    from nnunet_glacier.field.retreat import Frame, normal_positions, read_fronts

    out = tmp_path / "detect"
    out.mkdir()
    for date, col in FRONT_COLUMNS.items():
        write_detected(out, f"fjord_{date}", col, coast=True)
    retreat(out)
    rows = position_rows(out / "retreat" / "Fjord_position.csv")
    assert [float(row["change_m"]) for row in rows] == pytest.approx([0.0, 20.0, 50.0])
    fronts = read_fronts(out, read_records(out), Frame("pixel", PIXEL_M))
    assert all(len(f.lines[0]) > 30 for f in fronts)  # the front runs along the coast too
    every_vertex = [dataclasses.replace(f, fjord=None) for f in fronts]
    positions, _ = normal_positions(every_vertex)
    assert positions[2] - positions[0] < 0.8 * 50  # with the coast the advance would be underestimated
