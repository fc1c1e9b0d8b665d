"""``detect`` over PNG, GeoTIFF and corrupt scenes, no-data and GIS outputs; ``retreat`` on its outputs.

The GIS outputs, no-data handling, GeoPackage, records and re-runs are checked with the stand-in predictor of
tests/standin_predictor.py (zones from grey values: known fronts, no network, seconds); the last two tests run
the demo's trained model end to end (detect over a folder; a model installed from a URL, then by its name).
"""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from geotiffs import write_geotiff
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy import ndimage
from standin_predictor import StandInPredictor, scene_image

from nnunet_glacier.cli import main
from nnunet_glacier.data.caffe import ConversionWarning, read_grey
from nnunet_glacier.errors import ModelError
from nnunet_glacier.field import geo
from nnunet_glacier.field.detect import OutputOptions, detect, read_records
from nnunet_glacier.field.quality import QUALITY_COLUMNS, QUALITY_FLAGS, QualitySettings, quality_rows
from nnunet_glacier.nnunet.predict import GlacierPredictor
from nnunet_glacier.nnunet.uncertainty import fold_disagreement, mean_over, normalised_entropy
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.postprocessing.postprocess import choose_route
from nnunet_glacier.utilities.atomic import write_png

UTM_22N = CRS.from_epsg(32622)
TRANSFORM = from_origin(480_000.0, 7_670_000.0, 40.0, 40.0)
GEOTIFF_STEM = "fjord_2021-06-01"


# --- units: route, agreement, quality flags ---------------------------------------------------------------------

def test_route_prefers_fused_then_zone_then_front():
    assert choose_route(["zone", "front"]) == "zone"
    assert choose_route(["fused"]) == "fused"
    assert choose_route(["front"]) == "front"
    with pytest.raises(ValueError, match="boundary"):
        choose_route(["boundary"])


def test_disagreement_is_total_variation_from_the_mean():
    certain_a = np.zeros((2, 2, 2))
    certain_a[0] = 1
    certain_b = 1 - certain_a
    everywhere = np.ones((2, 2), dtype=bool)
    assert mean_over(fold_disagreement([certain_a, certain_a]), everywhere) == 0
    assert mean_over(fold_disagreement([certain_a, certain_b]), everywhere) == pytest.approx(0.5)
    five = [np.eye(5)[k][:, None, None] * np.ones((5, 1, 1)) for k in range(5)]
    assert mean_over(fold_disagreement(five), np.ones((1, 1), bool)) == pytest.approx(0.8)  # 1 - 1/5
    mixed = certain_a.copy()
    mixed[:, 0, 0] = [0.6, 0.4]  # differs from certain_a by 0.4 at one pixel: 0.2 from their mean
    only_that = np.zeros((2, 2), dtype=bool)
    only_that[0, 0] = True
    assert mean_over(fold_disagreement([certain_a, mixed]), only_that) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="at least two"):
        fold_disagreement([certain_a])
    assert mean_over(fold_disagreement([certain_a, certain_b]), ~everywhere) is None


def test_normalised_entropy_is_0_when_certain_and_1_when_all_classes_are_equally_likely():
    probabilities = np.zeros((4, 1, 3))
    probabilities[2, 0, 0] = 1  # certain
    probabilities[:, 0, 1] = 0.25  # all four classes equally likely
    probabilities[:2, 0, 2] = 0.5  # two of four classes: log 2 / log 4
    entropy = normalised_entropy(probabilities)
    assert entropy.dtype == np.float32 and entropy.shape == (1, 3)
    assert entropy[0] == pytest.approx([0.0, 1.0, 0.5], abs=1e-6)


def test_a_folder_that_is_no_model_is_a_model_error(tmp_path, capsys):
    with pytest.raises(ModelError, match="not an nnU-Net results folder"):
        GlacierPredictor(tmp_path)
    scene = tmp_path / "scene.png"
    scene.write_bytes(b"")
    assert main(["detect", "-m", str(tmp_path), "-i", str(scene), "-o", str(tmp_path / "out")]) == 1
    assert f"error: {tmp_path}: not an nnU-Net results folder" in capsys.readouterr().err


def test_fold_all_is_a_fold_like_any_other(tmp_path, capsys):
    from nnunet_glacier.cli import build_parser
    from nnunet_glacier.nnunet.predict import available_folds

    parse = build_parser().parse_args
    assert parse(["train", "--experiment", "fused", "--fold", "0", "all"]).fold == [0, "all"]
    assert parse(["predict", "-m", "m", "-i", "i", "-o", "o", "--folds", "all"]).folds == ["all"]
    assert parse(["detect", "-m", "m", "-i", "i", "-o", "o", "--folds", "1", "all"]).folds == [1, "all"]
    assert parse(["reproduce", "--data", "d", "--folds", "all"]).folds == ["all"]
    for bad in (["train", "--experiment", "fused", "--fold", "5"], ["predict", "-m", "m", "-i", "i", "-o", "o",
                                                                    "--folds", "some"]):
        with pytest.raises(SystemExit) as exit_:
            parse(bad)
        assert exit_.value.code == 2
    for fold, files in (("0", ["checkpoint_final.pth"]), ("all", ["checkpoint_final.pth"]),
                        ("3", ["checkpoint_latest.pth"]), ("x", ["checkpoint_final.pth"])):
        (tmp_path / f"fold_{fold}").mkdir()
        for name in files:
            (tmp_path / f"fold_{fold}" / name).write_bytes(b"")
    assert available_folds(tmp_path) == [0, "all"]  # nnU-Net's own auto-detection leaves fold_all out


def test_a_model_folder_without_usable_folds_says_what_it_holds(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "dataset.json").write_text(json.dumps({"caffe": {"tasks": ["fused"]}}))
    (model / "fold_0").mkdir()
    (model / "fold_0" / "checkpoint_latest.pth").write_bytes(b"")
    with pytest.raises(ModelError, match=r"no fold_\*/checkpoint_final.pth found.*holds dataset.json, fold_0/"):
        GlacierPredictor(model)
    with pytest.raises(ModelError, match=r"fold_0/checkpoint_final.pth: checkpoint not found; fold_0 holds "
                                         r"checkpoint_latest.pth"):
        GlacierPredictor(model, [0])


def record(stem, length_m, *, segments=1, disagreement=0.05, glacier="JAC", touches=(False, False)):
    return {"stem": stem, "glacier": glacier, "date": "2020-01-01", "pixel_size_m": 20.0,
            "pixel_size_source": "name", "coordinates": {"kind": "pixel"}, "route": "zone", "folds": [0, 1],
            "n_segments": segments, "front_length_m": length_m, "disagreement": disagreement,
            "nodata_fraction": 0.1, "touches_nodata": touches[0], "touches_border": touches[1],
            "no_contrast": False, "resolution_mismatch": False}


def test_quality_flags_name_the_scenes_to_check():
    records = [record("a", 10_000), record("b", 11_000), record("c", 9_000), record("d", 30_000),
               record("e", 0, segments=0, disagreement=None), record("f", 10_500, disagreement=0.4),
               record("g", 50_000, glacier="COL"), record("h", 10_200, touches=(True, False)),
               record("i", 10_300, touches=(False, True))]
    rows = {row["stem"]: row for row in quality_rows(records, QualitySettings())}
    assert rows["a"]["usual_length_m"] == 10_300  # median of the seven JAC fronts
    assert not rows["a"]["needs_check"] and not rows["c"]["needs_check"]
    assert rows["d"]["length_outlier"] and rows["d"]["length_ratio"] == pytest.approx(30_000 / 10_300)
    assert rows["e"]["no_front"] and rows["e"]["needs_check"] and rows["e"]["length_ratio"] is None
    assert rows["f"]["low_agreement"] and not rows["f"]["length_outlier"]
    assert rows["g"]["usual_length_m"] is None and not rows["g"]["needs_check"]  # one COL scene: no usual length
    assert rows["h"]["touches_nodata"] and rows["h"]["needs_check"] and not rows["h"]["touches_border"]
    assert rows["i"]["touches_border"] and rows["i"]["needs_check"]


# --- a folder of PNG, GeoTIFF and corrupt scenes: the stand-in predictor (known fronts, no network) ----------------

#: CaFFe-named PNG scenes (20 m pixels by their names): one glacier at three dates, its front retreating.
PNG_FRONTS = {"JAC_2015-01-01_TSX_20_1_001": 20, "JAC_2015-02-01_TSX_20_1_002": 24, "JAC_2015-03-01_TSX_20_1_003": 28}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Stand-in scenes (tests/standin_predictor.py: ocean left of the known front column) as PNGs, one as a
    GeoTIFF on a UTM grid, and a corrupt GeoTIFF."""
    folder = tmp_path_factory.mktemp("scenes")
    for seed, (stem, front_col) in enumerate(PNG_FRONTS.items()):
        write_png(folder / f"{stem}.png", scene_image(front_col=front_col, seed=seed))
    write_geotiff(folder / f"{GEOTIFF_STEM}.tif", scene_image(seed=9), UTM_22N, TRANSFORM)
    (folder / "broken.tif").write_bytes(b"II*\x00 this is not a TIFF")
    return folder


@pytest.fixture(scope="module")
def standin_model(tmp_path_factory):
    """The folder the stand-in predictor names as its model (it holds nothing)."""
    return tmp_path_factory.mktemp("standin_model")


@pytest.fixture(scope="module")
def detected(standin_model, scenes, tmp_path_factory):
    """``detect`` with the two-fold stand-in over the scenes folder: (run report, output folder)."""
    out = tmp_path_factory.mktemp("detect")
    return detect(StandInPredictor(standin_model), geo.list_scenes(scenes), out, progress=False), out


@pytest.fixture
def standin_cli(monkeypatch):
    """``nnunet-glacier detect`` with the stand-in in place of the model's predictor (the rest is the CLI's)."""
    import nnunet_glacier.cli

    monkeypatch.setattr(nnunet_glacier.cli, "_predictor",
                        lambda args: StandInPredictor(args.model, *([args.folds] if args.folds else [])))


def records(out):
    return {p.name.removesuffix("_detect.json"): json.loads(p.read_text()) for p in out.glob("*_detect.json")}


def test_corrupt_scene_fails_alone_and_every_other_scene_is_complete(detected, scenes):
    report, out = detected
    assert [path.name for path, _ in report.failed] == ["broken.tif"]
    stems = {p.stem for p in scenes.iterdir()} - {"broken"}
    assert set(records(out)) == set(report.written) == stems
    assert not list(out.glob("broken*"))
    for record in records(out).values():
        assert record["folds"] == [0, 1] and record["route"] == "zone" and record["n_segments"] == 1
        for name in record["outputs"].values():
            assert (out / name).stat().st_size > 0
        assert 0 <= record["disagreement"] <= 0.5  # two folds: total variation from their mean is <= 1/2


def test_geotiff_scene_gets_georeferenced_masks(detected):
    _, out = detected
    record = records(out)[GEOTIFF_STEM]
    assert record["pixel_size_source"] == "transform" and record["pixel_size_m"] == 40.0
    assert record["coordinates"]["epsg"] == 32622
    for suffix in ("_zones", "_front"):
        with rasterio.open(out / f"{GEOTIFF_STEM}{suffix}.tif") as src:
            assert src.crs == UTM_22N and src.transform == TRANSFORM


def test_geojson_lines_lie_on_the_predicted_front_pixels(detected):
    _, out = detected
    for stem, record in records(out).items():
        front = geo.read_scene(out / record["outputs"]["front"], default_pixel_size_m=1.0,
                               zero_border=False).image == 255
        lines = [np.asarray(shapely.from_wkb(wkb).coords)
                 for wkb in pyogrio.raw.read(out / record["outputs"]["front_lines"])[2]]
        assert len(lines) == record["n_segments"] == 1
        for line in lines:
            xy = line if record["transform"] is None else geo.map_to_pixel(line, TRANSFORM)
            cols, rows = np.floor(xy).astype(int).T
            assert front[rows, cols].all()
            assert (np.abs(np.diff(np.column_stack([rows, cols]), axis=0)).max(axis=1) == 1).all()
            assert np.abs(cols - PNG_FRONTS.get(stem, 24)).max() <= 1  # the stand-in's front column


def test_quality_csv_has_a_row_per_scene(detected):
    _, out = detected
    with (out / "quality.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == QUALITY_COLUMNS
    assert {row["stem"] for row in rows} == set(records(out))
    for row in rows:
        flagged = {row[flag] == "True" for flag in QUALITY_FLAGS}
        assert (row["needs_check"] == "True") == (True in flagged)


def test_rerun_skips_done_scenes(detected, standin_model, scenes):
    _, out = detected
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")}
    predictor = StandInPredictor(standin_model)  # the same model, folds and settings
    report = detect(predictor, geo.list_scenes(scenes), out, progress=False)
    assert sorted(report.skipped) == sorted(records(out)) and not report.written
    assert [path.name for path, _ in report.failed] == ["broken.tif"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")} == before
    assert predictor.calls == 0


def test_retreat_writes_positions_and_plots_per_glacier(detected, tmp_path):
    _, out = detected
    assert main(["retreat", str(out), "-o", str(tmp_path)]) == 0
    glaciers = {scene["glacier"] for scene in records(out).values()}
    assert glaciers == {"JAC", "unknown"}  # the GeoTIFF's name does not say its glacier
    for glacier in glaciers:
        with (tmp_path / f"{glacier}_position.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and [row["date"] for row in rows] == sorted(row["date"] for row in rows)
        assert all(row["method"].startswith("front_normal") for row in rows)
        assert all(row["position_m"] for row in rows)  # every scene has its front
        for figure in ("position.png", "fronts.pdf"):  # drawn for glaciers with a front
            assert (tmp_path / f"{glacier}_{figure}").is_file()


def test_given_pixel_size_wins_over_a_caffe_name_and_is_printed(standin_cli, standin_model, scenes, tmp_path,
                                                                 capsys):
    """Issue 12: a CaFFe-named 256-px copy with --pixel-size must use the given size (it used the name's)."""
    scene = next(p for p in sorted(scenes.glob("*.png")))
    base = ["detect", "-m", str(standin_model), "-i", str(scene), "--device", "cpu", "--no-mirroring",
            "--folds", "0"]
    assert main([*base, "-o", str(tmp_path / "given"), "--pixel-size", "100"]) == 0
    assert f"{scene.stem}: pixel size 100 m (option)" in capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "default"), "--default-pixel-size", "100"]) == 0
    name_m = geo.read_scene(scene).pixel_size_m
    assert name_m == 20.0
    assert f"{scene.stem}: pixel size {name_m:g} m (name)" in capsys.readouterr().out  # only fills in: the name wins
    for folder, expected in (("given", (100.0, "option")), ("default", (name_m, "name"))):
        record = records(tmp_path / folder)[scene.stem]
        assert (record["pixel_size_m"], record["pixel_size_source"]) == expected
        assert record["folds"] == [0]


def test_geopackage_has_a_layer_per_coordinate_system(detected):
    _, out = detected
    layers = dict(pyogrio.list_layers(out / "fronts.gpkg"))
    assert layers == {"fronts": "MultiLineString", "fronts_pixel": "MultiLineString"}
    meta, _, _, fields = pyogrio.raw.read(out / "fronts.gpkg", layer="fronts")
    assert CRS.from_user_input(meta["crs"]) == UTM_22N and list(fields[0]) == [GEOTIFF_STEM]
    info = pyogrio.read_info(out / "fronts.gpkg", layer="fronts_pixel")
    assert info["crs"] is None and info["features"] == len(records(out)) - 1


def test_records_of_an_older_format_are_redone_not_read(detected, standin_model, scenes, tmp_path):
    _, out = detected
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    path = copy / f"{GEOTIFF_STEM}_detect.json"
    old = json.loads(path.read_text())
    del old["format"], old["front_lines_px"]  # as written before no-data handling and fronts.gpkg
    path.write_text(json.dumps(old))
    with pytest.warns(UserWarning, match=f"{GEOTIFF_STEM}_detect.json: written by an older nnunet_glacier"):
        assert GEOTIFF_STEM not in {r["stem"] for r in read_records(copy)}
    report = detect(StandInPredictor(standin_model), [scenes / f"{GEOTIFF_STEM}.tif"], copy, progress=False)
    assert report.written == [GEOTIFF_STEM] and "front_lines_px" in json.loads(path.read_text())


def test_a_run_without_scenes_still_writes_the_geopackage_schema(standin_model, scenes, tmp_path):
    folder = tmp_path / "only_broken"
    folder.mkdir()
    shutil.copy(scenes / "broken.tif", folder)
    report = detect(StandInPredictor(standin_model, [0]), geo.list_scenes(folder), tmp_path / "out", progress=False)
    assert [path.name for path, _ in report.failed] == ["broken.tif"] and not report.written
    info = pyogrio.read_info(tmp_path / "out" / "fronts.gpkg", layer="fronts")
    assert info["features"] == 0 and "needs_check" in info["fields"] and info["geometry_type"] == "MultiLineString"


# --- field-ready: a real scene on a custom polar grid with a no-data border (the stand-in predictor) ---------------

POLAR_STEREO = CRS.from_proj4("+proj=stere +lat_0=-90 +lat_ts=-71 +lon_0=-60 +x_0=0 +y_0=0 +datum=WGS84 +units=m")
POLAR_TRANSFORM = from_origin(-2_450_000.0, 1_050_000.0, 20.0, 20.0)
POLAR_STEM = "jorum_polar_2020-06-12"
BAND_STEM = "fjord_band_2021-07-01"
#: The band scene: the stand-in's front runs down column 48 over all 128 rows, into the no-data below row 70.
BAND_SHAPE, BAND_FRONT_COL = (128, 128), 48


def swath_edge(shape) -> np.ndarray:
    """A diagonal swath edge: no data left of it."""
    rows, cols = np.indices(shape)
    return cols + 0.3 * rows < 60


def band_nodata(shape) -> np.ndarray:
    """No data below row 70 (across the band scene's front)."""
    nodata = np.zeros(shape, bool)
    nodata[70:] = True
    return nodata


@pytest.fixture(scope="module")
def field_scenes(caffe_256, tmp_path_factory):
    """A Jorum scene of caffe_256 as float backscatter on a polar stereographic grid without EPSG code, with a
    declared no-data swath edge; and a stand-in scene (its front known to cross row 70) with an internal mask."""
    folder = tmp_path_factory.mktemp("field_scenes")
    jorum = read_grey(caffe_256 / "sar_images" / "test" / "Jorum_2020-06-12_S1_20_3_009.png")
    values = np.where(swath_edge(jorum.shape), -9999.0, jorum / 255.0).astype(np.float32)
    with rasterio.open(folder / f"{POLAR_STEM}.tif", "w", driver="GTiff", width=256, height=256, count=1,
                       dtype="float32", crs=POLAR_STEREO, transform=POLAR_TRANSFORM, nodata=-9999.0) as dst:
        dst.write(values, 1)
    band = scene_image(BAND_SHAPE, front_col=BAND_FRONT_COL, rock_col=96, seed=4)
    write_geotiff(folder / f"{BAND_STEM}.tif", band, UTM_22N, TRANSFORM, nodata_mask=band_nodata(band.shape))
    return folder


@pytest.fixture(scope="module")
def field_detected(standin_model, field_scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("field_detect")
    with pytest.warns(ConversionWarning, match="float32 raster stretched"):
        report = detect(StandInPredictor(standin_model), geo.list_scenes(field_scenes), out,
                        options=OutputOptions(uncertainty=True), progress=False)
    assert not report.failed and sorted(report.written) == sorted([BAND_STEM, POLAR_STEM])
    return out


def distance_to(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask)


def test_real_scene_rasters_keep_the_custom_crs_and_declare_nodata(field_detected, field_scenes):
    out = field_detected
    with pytest.warns(ConversionWarning, match="float32 raster stretched"):
        nodata = geo.read_scene(field_scenes / f"{POLAR_STEM}.tif").nodata_mask
    assert nodata[swath_edge(nodata.shape)].all()  # the declared no-data, and the scene's zero fill at the border
    with rasterio.open(out / f"{POLAR_STEM}_zones.tif") as src:
        assert src.crs == POLAR_STEREO and src.crs.to_epsg() is None and src.transform == POLAR_TRANSFORM
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.nodata == 0
        assert src.colormap(1)[254][:3] == (30, 100, 220) and src.tags(1)["CLASS_64"] == "rock"
        zones = src.read(1, masked=True)
        assert zones.mask[nodata].all() and (zones.data[nodata] == 0).all()  # no-data is NA
    with rasterio.open(out / f"{POLAR_STEM}_front.tif") as src:
        assert src.crs == POLAR_STEREO and src.nodata == 127
        front = src.read(1, masked=True)
        assert (front.mask == nodata).all()
    near_edge = postprocess.edge_band(nodata, 2.0)
    assert not (front.data == 255)[near_edge].any()  # no front pixel within 2 px of no-data or the border
    with rasterio.open(out / f"{POLAR_STEM}_uncertainty.tif") as src:
        uncertainty = src.read(1, masked=True)
        assert src.dtypes == ("float32",) and np.isnan(src.nodata) and (uncertainty.mask == nodata).all()
        assert 0 <= uncertainty.min() and uncertainty.max() <= 1
    assert CRS.from_user_input(pyogrio.read_info(out / f"{POLAR_STEM}_front.geojson")["crs"]) == POLAR_STEREO


def test_fronts_geopackage_reads_back_with_the_scenes_crs_and_attributes(field_detected, standin_model):
    out = field_detected
    layers = dict(pyogrio.list_layers(out / "fronts.gpkg"))
    assert layers == {"fronts": "MultiLineString", "fronts_2": "MultiLineString"}  # polar and UTM scenes
    meta, _, geometries, fields = pyogrio.raw.read(out / "fronts.gpkg", layer="fronts")
    attributes = dict(zip(meta["fields"], fields))
    assert CRS.from_user_input(meta["crs"]) == POLAR_STEREO
    assert list(attributes["stem"]) == [POLAR_STEM] and str(attributes["date"][0]) == "2020-06-12"
    assert {"glacier", "sensor", "pixel_size_m", "length_m", "model", "no_front", "touches_nodata",
            "touches_border", "needs_check"} <= set(meta["fields"])
    assert attributes["model"][0] == str(standin_model.resolve()) and attributes["pixel_size_m"][0] == 20.0
    assert meta["ogr_types"][list(meta["fields"]).index("date")] == "OFTDate"
    if geometries[0] is not None:
        xmin, ymin, xmax, ymax = shapely.from_wkb(geometries[0]).bounds
        left, top = POLAR_TRANSFORM.c, POLAR_TRANSFORM.f
        assert left < xmin and xmax < left + 256 * 20 and top - 256 * 20 < ymin and ymax < top


def test_front_running_into_nodata_is_cut_short_and_flagged(field_detected, field_scenes):
    out = field_detected
    record = records(out)[BAND_STEM]
    with rasterio.open(out / f"{BAND_STEM}_front.tif") as src:
        front = src.read(1) == 255
    nodata = geo.read_scene(field_scenes / f"{BAND_STEM}.tif").nodata_mask
    assert nodata[band_nodata(front.shape)].all()  # the internal mask (and the scene's zero fill at the border)
    assert front.any() and (np.nonzero(front)[1] >= BAND_FRONT_COL - 1).all()  # the stand-in's front ...
    assert distance_to(nodata)[front].min() > postprocess.EDGE_MARGIN_PX  # ... stops short of the no-data
    assert record["touches_nodata"] and record["nodata_fraction"] == pytest.approx(nodata.mean())
    with (out / "quality.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["stem"] == BAND_STEM)
    assert row["touches_nodata"] == "True" and row["needs_check"] == "True"


def test_rfc7946_geojson_is_longitude_latitude_and_the_geopackage_keeps_the_crs(field_scenes, standin_model,
                                                                                 tmp_path):
    out = tmp_path / "rfc"
    detect(StandInPredictor(standin_model, [0]), [field_scenes / f"{BAND_STEM}.tif"], out,
           options=OutputOptions(rfc7946=True), progress=False)
    meta, _, geometries, _ = pyogrio.raw.read(out / f"{BAND_STEM}_front.geojson")
    assert CRS.from_user_input(meta["crs"]) == CRS.from_epsg(4326)
    lon, lat = np.asarray(shapely.from_wkb(geometries[0]).coords).T
    assert (-55 < lon).all() and (lon < -48).all() and (68 < lat).all() and (lat < 70).all()  # west Greenland
    assert CRS.from_user_input(pyogrio.read_info(out / "fronts.gpkg")["crs"]) == UTM_22N  # the GeoPackage keeps it


# --- the demo's trained model end to end (two tests) ---------------------------------------------------------------

def test_the_demo_model_detects_png_and_geotiff_scenes_with_both_folds(demo_work, demo_model, tmp_path):
    """``nnunet-glacier detect`` with a trained two-fold model over the demo's test PNGs, a GeoTIFF and a corrupt
    file: the corrupt scene fails alone (exit code 1), every other scene is complete, made by the fold ensemble
    along the fused route; the GeoTIFF's rasters keep its grid. What the model predicts is not asserted."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    pngs = sorted((demo_work / "data" / "sar_images" / "test").glob("*.png"))
    for png in pngs:
        shutil.copy(png, scenes / png.name)
    write_geotiff(scenes / f"{GEOTIFF_STEM}.tif", read_grey(pngs[0]), UTM_22N, TRANSFORM)
    (scenes / "broken.tif").write_bytes(b"II*\x00 this is not a TIFF")
    out = tmp_path / "out"
    assert main(["detect", "-m", str(demo_model), "-i", str(scenes), "-o", str(out), "--device", "cpu",
                 "--no-mirroring"]) == 1
    assert set(records(out)) == {p.stem for p in pngs} | {GEOTIFF_STEM}
    assert not list(out.glob("broken*"))
    for record in records(out).values():
        assert record["folds"] == [0, 1] and record["route"] == "fused"
        for name in record["outputs"].values():
            assert (out / name).stat().st_size > 0
        if record["n_segments"]:
            assert 0 <= record["disagreement"] <= 0.5
    for suffix in ("_zones", "_front"):
        with rasterio.open(out / f"{GEOTIFF_STEM}{suffix}.tif") as src:
            assert src.crs == UTM_22N and src.transform == TRANSFORM
    with (out / "quality.csv").open(newline="") as handle:
        assert {row["stem"] for row in csv.DictReader(handle)} == set(records(out))
    assert pyogrio.read_info(out / "fronts.gpkg", layer="fronts")["features"] == 1


def test_a_model_installed_from_a_url_detects_by_its_name(demo_model, tmp_path, monkeypatch):
    """The demo model exported to a zip, given to detect as a file:// URL with its checksum (installed once),
    then by its installed name; records and the GeoPackage name the model."""
    from nnunet_glacier.field.models import export_model, sha256_of

    monkeypatch.setenv("NNUNET_GLACIER_HOME", str(tmp_path / "home"))
    archive = tmp_path / "shared" / "demo_fused.zip"
    archive.parent.mkdir()
    export_model(demo_model, archive)
    url = f"{archive.as_uri()}#sha256={sha256_of(archive)}"
    scene = tmp_path / "scenes" / f"{BAND_STEM}.tif"
    scene.parent.mkdir()
    write_geotiff(scene, scene_image(BAND_SHAPE, front_col=BAND_FRONT_COL, rock_col=96), UTM_22N, TRANSFORM)
    common = ["-i", str(scene), "--device", "cpu", "--no-mirroring", "--folds", "0"]
    assert main(["detect", "-m", url, "-o", str(tmp_path / "by_url"), *common]) == 0
    name = records(tmp_path / "by_url")[BAND_STEM]["model_name"]
    assert name.startswith("demo_fused-")
    assert main(["detect", "-m", name, "-o", str(tmp_path / "by_name"), *common]) == 0
    record = records(tmp_path / "by_name")[BAND_STEM]
    assert record["model_name"] == name and record["folds"] == [0] and record["route"] == "fused"
    assert record["model"] == records(tmp_path / "by_url")[BAND_STEM]["model"]  # the one installed copy
    meta, _, _, fields = pyogrio.raw.read(tmp_path / "by_name" / "fronts.gpkg", layer="fronts")
    assert list(dict(zip(meta["fields"], fields))["model"]) == [name]
