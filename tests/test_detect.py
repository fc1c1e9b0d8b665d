"""``detect`` with a tiny trained model over PNG, GeoTIFF and corrupt scenes; ``retreat`` on its outputs."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from nnunet_glacier import geo
from nnunet_glacier.caffe import read_grey
from nnunet_glacier.cli import main
from nnunet_glacier.detect import detect, ensemble_disagreement
from nnunet_glacier.errors import ModelError
from nnunet_glacier.nnunet.predict import GlacierPredictor
from nnunet_glacier.postprocess import choose_route
from nnunet_glacier.quality import QUALITY_COLUMNS, QualitySettings, quality_rows

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
    assert ensemble_disagreement([certain_a, certain_a], everywhere) == 0
    assert ensemble_disagreement([certain_a, certain_b], everywhere) == pytest.approx(0.5)
    five = [np.eye(5)[k][:, None, None] * np.ones((5, 1, 1)) for k in range(5)]
    assert ensemble_disagreement(five, np.ones((1, 1), bool)) == pytest.approx(0.8)  # 1 - 1/5
    mixed = certain_a.copy()
    mixed[:, 0, 0] = [0.6, 0.4]  # differs from certain_a by 0.4 at one pixel: 0.2 from their mean
    only_that = np.zeros((2, 2), dtype=bool)
    only_that[0, 0] = True
    assert ensemble_disagreement([certain_a, mixed], only_that) == pytest.approx(0.2)
    assert ensemble_disagreement([certain_a], everywhere) is None
    assert ensemble_disagreement([certain_a, certain_b], ~everywhere) is None


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


def record(stem, length_m, *, segments=1, disagreement=0.05, glacier="JAC"):
    return {"stem": stem, "glacier": glacier, "date": "2020-01-01", "pixel_size_m": 20.0,
            "pixel_size_source": "name", "coordinates": {"kind": "pixel"}, "route": "zone", "folds": [0, 1],
            "n_segments": segments, "front_length_m": length_m, "disagreement": disagreement}


def test_quality_flags_name_the_scenes_to_check():
    records = [record("a", 10_000), record("b", 11_000), record("c", 9_000), record("d", 30_000),
               record("e", 0, segments=0, disagreement=None), record("f", 10_500, disagreement=0.4),
               record("g", 50_000, glacier="COL")]
    rows = {row["stem"]: row for row in quality_rows(records, QualitySettings())}
    assert rows["a"]["usual_length_m"] == 10_500  # median of the five JAC fronts
    assert not rows["a"]["needs_check"] and not rows["c"]["needs_check"]
    assert rows["d"]["length_outlier"] and rows["d"]["length_ratio"] == pytest.approx(30_000 / 10_500)
    assert rows["e"]["no_front"] and rows["e"]["needs_check"] and rows["e"]["length_ratio"] is None
    assert rows["f"]["low_agreement"] and not rows["f"]["length_outlier"]
    assert rows["g"]["usual_length_m"] is None and not rows["g"]["needs_check"]  # one COL scene: no usual length


# --- a tiny trained model over a folder of scenes ----------------------------------------------------------------

@pytest.fixture(scope="module")
def scenes(demo_work, tmp_path_factory):
    """The demo's synthetic test scenes as PNGs, one of them also as a GeoTIFF, and a corrupt GeoTIFF."""
    folder = tmp_path_factory.mktemp("scenes")
    pngs = sorted((demo_work / "data" / "sar_images" / "test").glob("*.png"))
    for png in pngs:
        shutil.copy(png, folder / png.name)
    image = read_grey(pngs[0])
    with rasterio.open(folder / f"{GEOTIFF_STEM}.tif", "w", driver="GTiff", width=image.shape[1],
                       height=image.shape[0], count=1, dtype="uint8", crs=UTM_22N, transform=TRANSFORM) as dst:
        dst.write(image, 1)
    (folder / "broken.tif").write_bytes(b"II*\x00 this is not a TIFF")
    return folder


@pytest.fixture(scope="module")
def detected(demo_model, scenes, tmp_path_factory):
    """``nnunet-glacier detect`` over the scenes folder: (exit code, output folder)."""
    out = tmp_path_factory.mktemp("detect")
    code = main(["detect", "-m", str(demo_model), "-i", str(scenes), "-o", str(out), "--device", "cpu",
                 "--no-mirroring"])
    return code, out


def records(out):
    return {p.name.removesuffix("_detect.json"): json.loads(p.read_text()) for p in out.glob("*_detect.json")}


def test_corrupt_scene_fails_alone(detected, scenes):
    code, out = detected
    assert code == 1  # a scene failed
    stems = {p.stem for p in scenes.iterdir()} - {"broken"}
    assert set(records(out)) == stems
    assert not list(out.glob("broken*"))


def test_two_folds_are_ensembled_and_outputs_are_complete(detected):
    _, out = detected
    for stem, record in records(out).items():
        assert record["folds"] == [0, 1] and record["route"] == "fused"
        for name in record["outputs"].values():
            assert (out / name).stat().st_size > 0
        if record["n_segments"]:
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
    checked = 0
    for stem, record in records(out).items():
        front = geo.read_scene(out / record["outputs"]["front"], default_pixel_size_m=1.0).image > 0
        lines = geo.read_front_geojson(out / record["outputs"]["front_lines"])
        assert len(lines) == record["n_segments"]
        for line in lines:
            xy = line if record["transform"] is None else geo.map_to_pixel(line, TRANSFORM)
            cols, rows = np.floor(xy).astype(int).T
            assert front[rows, cols].all()
            assert (np.abs(np.diff(np.column_stack([rows, cols]), axis=0)).max(axis=1) == 1).all()
            checked += len(line)
    assert checked > 0, "the tiny model found no front in any scene"


def test_quality_csv_has_a_row_per_scene(detected):
    _, out = detected
    with (out / "quality.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == QUALITY_COLUMNS
    assert {row["stem"] for row in rows} == set(records(out))
    for row in rows:
        flagged = {row[flag] == "True" for flag in ("no_front", "length_outlier", "low_agreement")}
        assert (row["needs_check"] == "True") == (True in flagged)


def test_rerun_skips_done_scenes(detected, demo_model, scenes):
    _, out = detected
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")}
    predictor = GlacierPredictor(demo_model, [0], device="cpu", mirroring=False)
    report = detect(predictor, geo.list_scenes(scenes), out, progress=False)
    assert sorted(report.skipped) == sorted(records(out)) and not report.written
    assert [path.name for path, _ in report.failed] == ["broken.tif"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")} == before


def test_retreat_writes_positions_and_plots_per_glacier(detected, tmp_path):
    _, out = detected
    assert main(["retreat", str(out), "-o", str(tmp_path)]) == 0
    glaciers = {scene["glacier"] for scene in records(out).values()}
    assert "unknown" in glaciers  # the GeoTIFF's name does not say its glacier
    for glacier in glaciers:
        with (tmp_path / f"{glacier}_position.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and [row["date"] for row in rows] == sorted(row["date"] for row in rows)
        assert all(row["method"].startswith("front_normal") for row in rows)
        any_front = any(row["position_m"] for row in rows)
        for figure in ("position.png", "fronts.pdf"):  # drawn for glaciers with a front
            assert (tmp_path / f"{glacier}_{figure}").is_file() == any_front


def test_given_pixel_size_wins_over_a_caffe_name_and_is_printed(demo_model, scenes, tmp_path, capsys):
    """Issue 12: a CaFFe-named 256-px copy with --pixel-size must use the given size (it used the name's)."""
    scene = next(p for p in sorted(scenes.glob("*.png")))
    base = ["detect", "-m", str(demo_model), "-i", str(scene), "--device", "cpu", "--no-mirroring", "--folds", "0"]
    assert main([*base, "-o", str(tmp_path / "given"), "--pixel-size", "100"]) == 0
    assert f"{scene.stem}: pixel size 100 m (option)" in capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "default"), "--default-pixel-size", "100"]) == 0
    name_m = geo.read_scene(scene).pixel_size_m
    assert f"{scene.stem}: pixel size {name_m:g} m (name)" in capsys.readouterr().out  # only fills in: the name wins
    for folder, expected in (("given", (100.0, "option")), ("default", (name_m, "name"))):
        record = records(tmp_path / folder)[scene.stem]
        assert (record["pixel_size_m"], record["pixel_size_source"]) == expected
