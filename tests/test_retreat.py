"""Front time series (nnunet_glacier.retreat) on detect outputs whose fronts are known exactly."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from nnunet_glacier import geo, postprocess
from nnunet_glacier.atomic import write_png, write_text
from nnunet_glacier.cli import main
from nnunet_glacier.detect import SceneFront, read_records, write_scene
from nnunet_glacier.errors import InputError
from nnunet_glacier.quality import QUALITY_CSV, QualitySettings, quality_csv, quality_rows
from nnunet_glacier.retreat import read_centreline, retreat


SHAPE = (30, 40)
PIXEL_M = 10.0
FRONT_COLUMNS = {"2019-03-01": 10, "2019-09-01": 12, "2020-03-01": 15}  # the front advances 20 m, then 30 m
UTM_22N = CRS.from_epsg(32622)
TRANSFORM = from_origin(1000.0, 2000.0, PIXEL_M, PIXEL_M)


def write_detected(out: Path, stem: str, front_col: int, *, georeferenced: bool = False,
                   disagreement: float = 0.05, crs: CRS = UTM_22N, pixel_m: float = PIXEL_M) -> None:
    """detect's outputs for a scene whose glacier (left) meets the ocean (right) along one column."""
    image = np.full(SHAPE, 120, dtype=np.uint8)
    path = out.parent / "inputs" / f"{stem}.png"
    write_png(path, image)
    scene = geo.GeoScene(path, image, crs if georeferenced else None, TRANSFORM if georeferenced else None,
                         pixel_m, "transform" if georeferenced else "option", None)
    zones = np.full(SHAPE, 2, dtype=np.uint8)
    zones[:, front_col:] = 3
    front = postprocess.front_from_zones(zones, min_pixels=0)
    lines = geo.front_lines(postprocess.ordered_paths(front), scene)
    write_scene(out, scene, SceneFront(zones, front, lines, disagreement), "zone", [0, 1], Path("model"), "Fjord")


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


def test_centreline_in_pixels_gives_distance_along_it(detected, tmp_path):
    line = tmp_path / "centre.csv"
    line.write_text("x,y\n0,15\n39,15\n")
    assert main(["retreat", str(detected), "--centreline", str(line), "-o", str(tmp_path / "series")]) == 0
    rows = position_rows(tmp_path / "series" / "Fjord_position.csv")
    expected = [(col + 0.5) * PIXEL_M for col in FRONT_COLUMNS.values()]  # fronts at pixel centres x = col + 0.5
    assert [float(row["position_m"]) for row in rows] == pytest.approx(expected)
    assert [float(row["change_m"]) for row in rows] == pytest.approx([0.0, 20.0, 50.0])
    assert {row["method"] for row in rows} == {"centreline"}


def test_centreline_in_map_coordinates_for_georeferenced_scenes(tmp_path):
    out = tmp_path / "detect"
    out.mkdir()
    for date, col in FRONT_COLUMNS.items():
        write_detected(out, f"fjord_{date}", col, georeferenced=True)
    y = 2000.0 - 15 * PIXEL_M
    line = tmp_path / "centre.geojson"
    line.write_text(json.dumps({"type": "Feature", "properties": {},
                                "geometry": {"type": "LineString", "coordinates": [[1000.0, y], [1400.0, y]]}}))
    retreat(out, centreline=line)
    rows = position_rows(out / "retreat" / "Fjord_position.csv")
    assert [float(row["position_m"]) for row in rows] == pytest.approx(
        [(col + 0.5) * PIXEL_M for col in FRONT_COLUMNS.values()])


def test_front_missing_the_centreline_has_no_position(detected, tmp_path):
    line = tmp_path / "centre.csv"
    line.write_text("x,y\n0,15\n11,15\n")  # ends before the later fronts
    retreat(detected, centreline=line)
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
    with pytest.raises(InputError, match=r"line\.geojson: not a centre line"):
        read_centreline(bad)
    assert main(["retreat", str(detected), "--centreline", str(tmp_path / "missing.csv")]) == 1
