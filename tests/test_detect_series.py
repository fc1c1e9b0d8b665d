"""``detect`` on a time series: a model with temporal context gets each scene with its nearest earlier (and later)
acquisitions of its glacier as input channels (nnunet_glacier.field.series), among the input scenes and
``--context``; dates from CaFFe names, file names or GeoTIFF metadata; GeoTIFF context reprojected onto the scene's
grid; re-runs redo exactly the scenes whose context changed. With the stand-in predictor of
tests/standin_predictor.py (seconds, no trained model)."""
from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import geotiffs
import numpy as np
import pyogrio
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points
from standin_predictor import StandInPredictor, scene_image

from nnunet_glacier.cli import main
from nnunet_glacier.data.caffe import read_grey
from nnunet_glacier.data.temporal import TemporalSettings
from nnunet_glacier.errors import InputError
from nnunet_glacier.field import geo, series
from nnunet_glacier.field.detect import detect
from nnunet_glacier.nnunet.prediction_types import RunReport
from nnunet_glacier.utilities.atomic import write_png

UTM_22N, POLAR_STEREO_NORTH = CRS.from_epsg(32622), CRS.from_epsg(3413)
#: Near Jakobshavn Isbrae: 20 m pixels in UTM 22N, origin (upper left corner) of the scenes' grid.
SCENE_ORIGIN, SCENE_PIXEL_M = (530_000.0, 7_680_000.0), 20.0


def caffe_stem(glacier: str, date: str, orbit: int = 1) -> str:
    return f"{glacier}_{date}_TSX_20_1_{orbit:03d}"


def write_scenes(folder: Path, stems: list[str], suffix: str = ".png", first_seed: int = 0) -> list[Path]:
    """PNG scenes (each its own noise: a channel shows which file it came from) named ``stems``."""
    paths = [folder / f"{stem}{suffix}" for stem in stems]
    for seed, path in enumerate(paths, first_seed):
        write_png(path, scene_image(seed=seed))
    return paths


#: The tests' GeoTIFF writer with this module's scene grid as its default.
write_geotiff = functools.partial(geotiffs.write_geotiff, crs=UTM_22N,
                                  transform=from_origin(*SCENE_ORIGIN, SCENE_PIXEL_M, SCENE_PIXEL_M))


def temporal(tmp_path: Path, previous: int = 1, next: int = 0) -> StandInPredictor:
    return StandInPredictor(tmp_path / "model", temporal=TemporalSettings(previous, next))


def run(predictor: StandInPredictor, scenes: list[Path], out: Path, **options) -> RunReport:
    return detect(predictor, scenes, out, progress=False, **options)


def fed(report: RunReport, predictor: StandInPredictor) -> dict[str, np.ndarray]:
    """The channels the stand-in was given, by the stem of the scene written (one prediction per written scene)."""
    assert len(report.written) == len(predictor.inputs)
    return dict(zip(report.written, predictor.inputs))


def records(out: Path) -> dict[str, dict]:
    return {p.name.removesuffix("_detect.json"): json.loads(p.read_text()) for p in out.glob("*_detect.json")}


def quality(out: Path) -> dict[str, dict[str, str]]:
    with (out / "quality.csv").open(newline="") as handle:
        return {row["stem"]: row for row in csv.DictReader(handle)}


def geopackage_context(out: Path) -> dict[str, float]:
    """``{stem: context_found}`` of the features of ``fronts.gpkg`` (read with GDAL; null = NaN)."""
    layers = [name for name, _ in pyogrio.list_layers(out / "fronts.gpkg")]
    found: dict[str, float] = {}
    for layer in layers:
        meta, _, _, fields = pyogrio.raw.read(out / "fronts.gpkg", layer=layer, read_geometry=False)
        columns = dict(zip(meta["fields"], fields))
        found.update(zip(columns["stem"], columns["context_found"].astype(float)))
    return found


def assert_channels(channels: np.ndarray, files: list[Path]) -> None:
    """The scene's channels 1.. hold the images of ``files``, in order."""
    assert len(channels) == 1 + len(files)
    for channel, path in zip(channels[1:], files):
        expected = read_grey(path) if path.suffix == ".png" else geo.read_scene(path, default_pixel_size_m=1).image
        np.testing.assert_allclose(channel, expected, atol=1, err_msg=str(path))


# --- which acquisitions feed a scene ------------------------------------------------------------------------------

def test_caffe_names_nearest_earlier_first_the_earliest_repeated_none_the_scene_itself(tmp_path):
    jan, feb, mar = (caffe_stem("JAC", f"2015-0{month}-01", month) for month in (1, 2, 3))
    col = caffe_stem("COL", "2015-01-15")  # between JAC's dates: another glacier never enters
    paths = dict(zip([mar, jan, col, feb], write_scenes(tmp_path / "in", [mar, jan, col, feb])))
    predictor, out = temporal(tmp_path, previous=2), tmp_path / "out"
    report = run(predictor, list(paths.values()), out)
    channels = fed(report, predictor)
    assert_channels(channels[mar], [paths[feb], paths[jan]])
    assert_channels(channels[feb], [paths[jan], paths[jan]])  # one found: the earliest repeated
    assert_channels(channels[jan], [paths[jan], paths[jan]])  # none: the scene itself
    assert_channels(channels[col], [paths[col], paths[col]])
    assert records(out)[mar]["context"] == {"files": [str(paths[s].resolve()) for s in (feb, jan)], "stems": [feb, jan],
                                            "previous_found": 2, "next_found": 0, "found": 2}
    rows = quality(out)
    assert {stem: row["context_found"] for stem, row in rows.items()} == {mar: "2", feb: "1", jan: "0", col: "0"}
    assert geopackage_context(out) == {mar: 2, feb: 1, jan: 0, col: 0}
    assert {stem for stem, row in rows.items() if row["no_context"] == "True"} == {jan, col}
    assert rows[jan]["needs_check"] == "True" and rows[mar]["no_context"] == "False"
    assert records(out)[mar]["date_source"] == "name"


def test_previous_and_next_acquisitions(tmp_path):
    stems = [caffe_stem("JAC", f"2015-0{month}-01", month) for month in (1, 2, 3)]
    paths = write_scenes(tmp_path / "in", stems)
    predictor = temporal(tmp_path, previous=1, next=1)
    channels = fed(run(predictor, paths, tmp_path / "out"), predictor)
    assert_channels(channels[stems[1]], [paths[0], paths[2]])
    assert_channels(channels[stems[0]], [paths[0], paths[1]])  # no earlier: the scene itself; the next found
    assert_channels(channels[stems[2]], [paths[1], paths[2]])
    assert quality(tmp_path / "out")[stems[0]]["context_found"] == "1"


def test_file_name_dates_order_scenes_whose_names_sort_otherwise(tmp_path):
    later, earlier, latest = write_scenes(tmp_path / "in", ["a_20190210", "b_2019-01-05", "c_2019-03-01"])
    predictor, out = temporal(tmp_path), tmp_path / "out"
    channels = fed(run(predictor, [later, earlier, latest], out, default_pixel_size_m=20.0), predictor)
    assert_channels(channels["c_2019-03-01"], [later])
    assert_channels(channels["a_20190210"], [earlier])
    assert_channels(channels["b_2019-01-05"], [earlier])
    assert {stem: (r["date"], r["date_source"]) for stem, r in records(out).items()} == {
        "a_20190210": ("2019-02-10", "file name"), "b_2019-01-05": ("2019-01-05", "file name"),
        "c_2019-03-01": ("2019-03-01", "file name")}


def test_geotiff_metadata_dates_acquisition_tags_first_and_an_undated_scene_alone(tmp_path):
    folder = tmp_path / "in"
    tags = {"x": {"TIFFTAG_DATETIME": "2019:05:01 12:00:00"},
            "y": {"ACQUISITION_START_TIME": "2019-04-01T10:00:00", "TIFFTAG_DATETIME": "2019:06:30 08:00:00"},
            "z": {"TIFFTAG_DATETIME": "2019:04:15 12:00:00"}, "w": {}}
    paths = {stem: write_geotiff(folder / f"{stem}.tif", scene_image(seed=seed), tags=tag)
             for seed, (stem, tag) in enumerate(tags.items())}
    predictor, out = temporal(tmp_path), tmp_path / "out"
    with pytest.warns(UserWarning, match=r"w\.tif: no acquisition date in the file name or GeoTIFF metadata"):
        channels = fed(run(predictor, list(paths.values()), out), predictor)
    assert_channels(channels["x"], [paths["z"]])
    assert_channels(channels["z"], [paths["y"]])
    assert_channels(channels["y"], [paths["y"]])
    assert_channels(channels["w"], [paths["w"]])  # undated: the scene alone, and no one's context
    dates = {stem: (r["date"], r["date_source"]) for stem, r in records(out).items()}
    assert dates == {"x": ("2019-05-01", "metadata TIFFTAG_DATETIME"),
                     "y": ("2019-04-01", "metadata ACQUISITION_START_TIME"),
                     "z": ("2019-04-15", "metadata TIFFTAG_DATETIME"), "w": (None, None)}
    assert {stem for stem, row in quality(out).items() if row["no_context"] == "True"} == {"y", "w"}


def test_a_glacier_option_joins_caffe_scenes_of_that_glacier(tmp_path):
    feb, mar = (caffe_stem("JAC", f"2015-0{month}-01", month) for month in (2, 3))
    caffe_paths = write_scenes(tmp_path / "in", [feb, mar])
    own, = write_scenes(tmp_path / "in", ["front_2015-04-01"], first_seed=5)
    predictor = temporal(tmp_path)
    channels = fed(run(predictor, [*caffe_paths, own], tmp_path / "out", glacier="Jakobshavn Isbrae",
                       default_pixel_size_m=20.0), predictor)
    assert_channels(channels["front_2015-04-01"], [caffe_paths[1]])


# --- --context ----------------------------------------------------------------------------------------------------

def test_context_files_feed_scenes_but_are_not_detected(tmp_path):
    feb, mar = (caffe_stem("JAC", f"2015-0{month}-01", month) for month in (2, 3))
    jan, col, apr = caffe_stem("JAC", "2015-01-01"), caffe_stem("COL", "2015-01-20"), caffe_stem("JAC", "2015-04-01")
    inputs = write_scenes(tmp_path / "in", [feb, mar])
    context = write_scenes(tmp_path / "context", [jan, col, apr], first_seed=2)
    predictor, out = temporal(tmp_path), tmp_path / "out"
    report = run(predictor, inputs, out, context=[*context, *inputs])  # the input scenes again: counted once
    assert report.written == [feb, mar]
    assert_channels(fed(report, predictor)[feb], [context[0]])
    assert set(records(out)) == set(quality(out)) == {feb, mar}

    other = tmp_path / "elsewhere" / f"{feb}.png"
    write_png(other, scene_image(seed=9))
    with pytest.raises(InputError, match=f"same file stem as {inputs[0]}"):
        run(temporal(tmp_path), inputs, tmp_path / "out2", context=[other])


def test_geotiff_context_in_another_crs_is_reprojected_onto_the_scene_grid(tmp_path):
    """Context values are linear in its pixel coordinates (bilinear resampling keeps them exact), so at every
    scene pixel the channel must equal the context's value where rasterio places that pixel's centre; the
    context's no-data block and the scene pixels it does not cover are 0."""
    scene = write_geotiff(tmp_path / "in" / "scene_2020-06-02.tif", scene_image(seed=0))
    scene_transform = from_origin(*SCENE_ORIGIN, SCENE_PIXEL_M, SCENE_PIXEL_M)
    centre = scene_transform @ (32, 32)
    (cx,), (cy,) = transform_points(UTM_22N, POLAR_STEREO_NORTH, [centre[0]], [centre[1]])
    size, pixel, nodata_rows = 60, 30.0, 15
    context_transform = from_origin(cx - 300, cy + 900, pixel, pixel)  # covers the scene's right part only
    rows, cols = np.mgrid[:size, :size]
    values = (20 + 2 * cols + rows).astype(np.uint8)
    values[:nodata_rows] = 255
    write_geotiff(tmp_path / "context" / "ctx_2020-06-01.tif", values, crs=POLAR_STEREO_NORTH,
                  transform=context_transform, nodata=255)
    predictor = temporal(tmp_path)
    report = run(predictor, [scene], tmp_path / "out", context=geo.list_scenes(tmp_path / "context"))
    channel = fed(report, predictor)["scene_2020-06-02"][1].astype(float)

    scene_rows, scene_cols = np.mgrid[:64, :64]
    xs, ys = scene_transform @ (scene_cols.ravel() + 0.5, scene_rows.ravel() + 0.5)
    px, py = transform_points(UTM_22N, POLAR_STEREO_NORTH, xs, ys)
    col, row = ~context_transform @ (np.asarray(px), np.asarray(py))
    col, row, got = col.reshape(64, 64), row.reshape(64, 64), channel
    margin = 1.5
    inside = (col > margin) & (col < size - margin) & (row > nodata_rows + margin) & (row < size - margin)
    outside = (col < -margin) | (col > size + margin) | (row < -margin) | (row > size + margin)
    in_nodata = (row > margin) & (row < nodata_rows - margin) & (col > margin) & (col < size - margin)
    assert inside.sum() > 500 and outside.sum() > 300 and in_nodata.sum() > 100
    expected = 20 + 2 * (col - 0.5) + (row - 0.5)
    assert np.abs(got[inside] - expected[inside]).max() <= 1.0
    assert (got[outside] == 0).all() and (got[in_nodata] == 0).all()


def test_a_geotiff_context_beside_the_scene_feeds_zeros_and_is_not_found(tmp_path):
    """Of two earlier GeoTIFFs the nearer lies 100 km east of the scene (it covers no pixel): its channel is 0,
    it is warned about and not counted, so the scene has one context acquisition of two; with only that one,
    none (flagged ``no_context``)."""
    scene = write_geotiff(tmp_path / "in" / "scene_2020-06-03.tif", scene_image(seed=0))
    beside = write_geotiff(tmp_path / "context" / "beside_2020-06-02.tif", scene_image(seed=1),
                           transform=from_origin(SCENE_ORIGIN[0] + 100_000, SCENE_ORIGIN[1], SCENE_PIXEL_M,
                                                 SCENE_PIXEL_M))
    earlier = write_geotiff(tmp_path / "context" / "earlier_2020-06-01.tif", scene_image(seed=2))
    predictor, out = temporal(tmp_path, previous=2), tmp_path / "out"
    with pytest.warns(UserWarning, match=f"{beside}: covers no pixel of {scene}"):
        report = run(predictor, [scene], out, context=[beside, earlier])
    channels = fed(report, predictor)["scene_2020-06-03"]
    assert not channels[1].any() and channels[2].any()
    context = records(out)["scene_2020-06-03"]["context"]
    assert context["stems"] == [beside.stem, earlier.stem] and context["found"] == context["previous_found"] == 1
    assert quality(out)["scene_2020-06-03"]["context_found"] == "1"

    with pytest.warns(UserWarning, match="covers no pixel"):
        run(temporal(tmp_path), [scene], tmp_path / "out_beside", context=[beside])
    row = quality(tmp_path / "out_beside")["scene_2020-06-03"]
    assert (row["context_found"], row["no_context"], row["needs_check"]) == ("0", "True", "True")


def test_another_rule_for_counting_context_redoes_the_scenes_with_context_only(tmp_path, monkeypatch):
    """Records made when found context was counted otherwise (before files beside the scene were left out) are
    redone; a model without temporal context keeps its scenes."""
    stems = [caffe_stem("JAC", f"2015-0{month}-01", month) for month in (1, 2)]
    inputs = write_scenes(tmp_path / "in", stems)
    with_context, alone = tmp_path / "with_context", tmp_path / "alone"
    assert run(temporal(tmp_path), inputs, with_context).written == stems
    assert run(StandInPredictor(tmp_path / "model_alone"), inputs, alone).written == stems
    monkeypatch.setattr(series, "FOUND_RULE", "every distinct acquisition")
    assert run(temporal(tmp_path), inputs, with_context).written == stems
    assert run(StandInPredictor(tmp_path / "model_alone"), inputs, alone).skipped == stems


# --- re-runs ------------------------------------------------------------------------------------------------------

def test_a_rerun_redoes_exactly_the_scenes_whose_context_changed(tmp_path):
    stems = [caffe_stem("JAC", f"2015-0{month}-01", month) for month in (2, 3, 4)]
    inputs = write_scenes(tmp_path / "in", stems)
    context_dir = tmp_path / "context"
    jan, = write_scenes(context_dir, [caffe_stem("JAC", "2015-01-01")], first_seed=5)
    out = tmp_path / "out"

    def rerun() -> RunReport:
        return run(temporal(tmp_path), inputs, out, context=geo.list_scenes(context_dir))

    assert rerun().written == stems
    again = rerun()
    assert again.written == [] and again.skipped == stems
    write_png(jan, scene_image(seed=7))  # the context file edited: only February saw it
    assert rerun().written == [stems[0]]
    added, = write_scenes(context_dir, [caffe_stem("JAC", "2015-03-15")], first_seed=8)
    assert rerun().written == [stems[2]]  # April's nearest earlier acquisition is now the new one
    assert records(out)[stems[2]]["context"]["stems"] == [added.stem]
    added.unlink()
    assert rerun().written == [stems[2]]
    assert records(out)[stems[2]]["context"]["stems"] == [stems[1]]


# --- a model without temporal context -----------------------------------------------------------------------------

def test_a_model_without_temporal_context_sees_the_scene_alone_as_before(tmp_path):
    stems = [caffe_stem("JAC", f"2015-0{month}-01", month) for month in (1, 2)]
    inputs = write_scenes(tmp_path / "in", stems)
    context = write_scenes(tmp_path / "context", [caffe_stem("JAC", "2014-12-01")], first_seed=3)
    predictor, out = StandInPredictor(tmp_path / "model"), tmp_path / "out"
    with pytest.warns(UserWarning, match="the model takes no temporal context"):
        report = run(predictor, inputs, out, context=context)
    assert report.written == stems and all(channels.shape == (1, 64, 64) for channels in predictor.inputs)
    for stem, record in records(out).items():
        assert record["context"] is None
        assert list(record["made_from"]["inputs"]) == [str((tmp_path / "in" / f"{stem}.png").resolve())]
        assert "context" not in record["made_from"]["settings"]
    assert all(row["context_found"] == "" and row["no_context"] == "False" for row in quality(out).values())
    assert all(np.isnan(found) for found in geopackage_context(out).values())  # null: no temporal context


# --- the command line ---------------------------------------------------------------------------------------------

def test_detect_command_takes_context_and_gives_a_shard_the_other_shards_scenes(tmp_path, monkeypatch, capsys):
    import nnunet_glacier.cli as cli
    from nnunet_glacier.field import models

    stems = [caffe_stem("JAC", f"2015-0{month}-01", month) for month in (2, 3, 4)]
    write_scenes(tmp_path / "in", stems)
    jan, = write_scenes(tmp_path / "context", [caffe_stem("JAC", "2015-01-01")], first_seed=5)
    predictor = temporal(tmp_path)
    monkeypatch.setattr(models, "resolve_model", lambda model: model)
    monkeypatch.setattr(cli, "_predictor", lambda args: predictor)
    out = tmp_path / "out"
    detect_args = ["detect", "-m", "model", "-i", str(tmp_path / "in"), "-o", str(out)]
    assert main([*detect_args, "--context", str(tmp_path / "context"), "--shard", "1/2"]) == 0
    assert list(records(out)) == [stems[1]]  # shard 1 of 2: the second scene; its context in shard 0
    assert records(out)[stems[1]]["context"]["stems"] == [stems[0]]
    assert main([*detect_args, "--context", str(tmp_path / "context"), "--shard", "0/2"]) == 0
    assert records(out)[stems[0]]["context"]["stems"] == [jan.stem]
    assert "1 of 1 context acquisitions found" in capsys.readouterr().out

    missing = tmp_path / "no_such_folder"
    assert main([*detect_args, "--context", str(missing)]) == 1
    assert f"error: {missing}: no such file or folder" in capsys.readouterr().err
