"""``detect``'s records of what each scene was made from: re-runs, inputs, scene checks, concurrent and
interrupted runs (with the stand-in predictor of tests/standin_predictor.py: seconds, no trained model)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from geotiffs import write_geotiff
from rasterio.crs import CRS
from rasterio.transform import from_origin
from standin_predictor import StandInPredictor, scene_image

from nnunet_glacier.data.caffe import read_grey
from nnunet_glacier.errors import InputError
from nnunet_glacier.field import geo
from nnunet_glacier.field.detect import OutputOptions, detect
from nnunet_glacier.postprocessing.postprocess import PostprocessSettings
from nnunet_glacier.utilities.atomic import write_png

TESTS = Path(__file__).parent
STEMS = [f"JAC_2015-0{month}-01_TSX_20_1_00{month}" for month in (1, 2, 3)]
UTM_22N = CRS.from_epsg(32622)
#: Seconds a child process may take (its imports included).
CHILD_TIMEOUT_S = 300


@pytest.fixture
def inputs(tmp_path) -> Path:
    """Three CaFFe-named 64 px PNG scenes (20 m pixels) whose fronts the stand-in finds at column 24."""
    folder = tmp_path / "inputs"
    for seed, stem in enumerate(STEMS):
        write_png(folder / f"{stem}.png", scene_image(seed=seed))
    return folder


def run(inputs: Path, out: Path, predictor: StandInPredictor | None = None, **options):
    return detect(predictor or StandInPredictor(out.parent / "model"), geo.list_scenes(inputs), out,
                  progress=False, **options)


def records(out: Path) -> dict[str, dict]:
    return {p.name.removesuffix("_detect.json"): json.loads(p.read_text()) for p in out.glob("*_detect.json")}


def quality(out: Path) -> dict[str, dict[str, str]]:
    with (out / "quality.csv").open(newline="") as handle:
        return {row["stem"]: row for row in csv.DictReader(handle)}


def folder_contents(out: Path) -> dict[str, bytes]:
    """Every visible file of a detect folder by name, its bytes (the GeoPackage as its features, see below)."""
    files = {}
    for path in sorted(out.iterdir()):
        if path.name.startswith("."):
            continue  # lock files
        files[path.name] = geopackage_features(path) if path.suffix == ".gpkg" else path.read_bytes()
    return files


def geopackage_features(path: Path) -> bytes:
    meta, _, geometries, fields = pyogrio.raw.read(path)
    return repr((list(meta["fields"]), [list(map(str, f)) for f in fields], list(geometries))).encode()


# --- re-runs: what a record was made from ----------------------------------------------------------------------

@pytest.mark.parametrize("change", ["pixel_size_m", "min_length_m", "folds", "model", "uncertainty", "zero_border"])
def test_a_rerun_with_other_settings_or_model_redoes_every_scene(inputs, tmp_path, change):
    out = tmp_path / "out"
    assert run(inputs, out).written == STEMS
    model = tmp_path / "model"
    predictor = {"folds": StandInPredictor(model, [0]), "model": StandInPredictor(model, version="2")}.get(
        change, StandInPredictor(model))
    options = {"pixel_size_m": {"pixel_size_m": 10.0}, "min_length_m": {"settings": PostprocessSettings(5000.0)},
               "uncertainty": {"options": OutputOptions(uncertainty=True)},
               "zero_border": {"zero_border": False}}.get(change, {})
    report = run(inputs, out, predictor, **options)
    assert report.written == STEMS and not report.skipped
    assert run(inputs, out, predictor, **options).skipped == STEMS  # and now it is current
    done = records(out)[STEMS[0]]
    expected = {"pixel_size_m": ("pixel_size_m", 10.0), "min_length_m": ("n_segments", 0),
                "folds": ("folds", [0])}.get(change)
    if expected is not None:
        assert done[expected[0]] == expected[1]


def test_an_unchanged_rerun_skips_and_a_touched_input_is_still_current(inputs, tmp_path):
    out = tmp_path / "out"
    run(inputs, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")}
    os.utime(inputs / f"{STEMS[0]}.png")  # touched, content unchanged
    assert run(inputs, out).skipped == STEMS
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_detect.json")} == before


def test_an_input_replaced_under_the_same_name_is_redone(inputs, tmp_path):
    out = tmp_path / "out"
    run(inputs, out)
    write_png(inputs / f"{STEMS[1]}.png", scene_image(front_col=40, rock_col=56, seed=7))
    report = run(inputs, out)
    assert report.written == [STEMS[1]] and report.skipped == [STEMS[0], STEMS[2]]
    line = np.asarray(records(out)[STEMS[1]]["front_lines_px"][0])
    assert np.all(np.abs(line[:, 0] - 40) <= 1)  # the new scene's front, not the old one's (column 24)


def test_outputs_the_new_run_does_not_write_are_removed(inputs, tmp_path):
    out = tmp_path / "out"
    run(inputs, out, options=OutputOptions(uncertainty=True))
    assert len(list(out.glob("*_uncertainty.tif"))) == 3
    run(inputs, out)
    assert not list(out.glob("*_uncertainty.tif"))
    assert all("uncertainty" not in record["outputs"] for record in records(out).values())


def test_a_record_whose_outputs_are_missing_is_redone(inputs, tmp_path):
    out = tmp_path / "out"
    run(inputs, out)
    (out / f"{STEMS[2]}_overlay.png").unlink()
    assert run(inputs, out).written == [STEMS[2]]
    assert (out / f"{STEMS[2]}_overlay.png").is_file()


# --- inputs ----------------------------------------------------------------------------------------------------

def test_two_inputs_with_one_stem_are_refused_naming_both(inputs, tmp_path):
    stem = STEMS[0]
    with rasterio.open(inputs / f"{stem}.tif", "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs=UTM_22N, transform=from_origin(0, 0, 20, 20)) as dst:
        dst.write(scene_image(), 1)
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        run(inputs, out)
    assert str(inputs / f"{stem}.png") in str(info.value) and str(inputs / f"{stem}.tif") in str(info.value)
    assert not list(out.glob("*_detect.json")) and not (out / "quality.csv").exists()  # refused before any work


def test_an_output_folder_equal_to_the_input_folder_never_reads_its_own_outputs(inputs, tmp_path):
    assert run(inputs, inputs).written == STEMS
    report = run(inputs, inputs)  # the folder now also holds *_front.png, *_zones.png, *_overlay.png
    assert report.skipped == STEMS and not report.written and not report.failed
    assert set(quality(inputs)) == set(STEMS) and set(records(inputs)) == set(STEMS)
    assert pyogrio.read_info(inputs / "fronts.gpkg", layer="fronts_pixel")["features"] == 3


def test_stale_temporaries_of_a_killed_writer_are_removed_and_never_read_as_scenes(inputs, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=CHILD_TIMEOUT_S)
    stale = inputs / f".{STEMS[0]}_front.{dead.pid}.abc123.tmp.png"
    stale.write_bytes(b"half a PNG")
    assert run(inputs, inputs).written == STEMS
    assert not stale.exists()


# --- scene checks ----------------------------------------------------------------------------------------------

def test_a_constant_scene_gets_no_front_a_warning_and_the_no_contrast_flag(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_geotiff(folder / "flat_2020-01-01.tif", np.full((64, 64), -10.0, np.float32), UTM_22N,
                  from_origin(480_000, 7_670_000, 40, 40))  # -10 dB everywhere
    write_png(folder / f"{STEMS[0]}.png", scene_image())
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"flat_2020-01-01.tif: no contrast"):
        run(folder, out)
    record = records(out)["flat_2020-01-01"]
    assert record["no_contrast"] and record["n_segments"] == 0 and record["front_lines_px"] == []
    with rasterio.open(out / record["outputs"]["front"]) as src:
        assert not (src.read(1) == 255).any()
    rows = quality(out)
    assert rows["flat_2020-01-01"]["no_contrast"] == "True" and rows["flat_2020-01-01"]["needs_check"] == "True"
    assert rows[STEMS[0]]["no_contrast"] == "False"
    assert "no_contrast" in pyogrio.read_info(out / "fronts.gpkg", layer="fronts")["fields"]


def test_a_caffe_name_disagreeing_with_the_geotiff_grid_is_flagged(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    # EPSG:4326 at 69 N: 0.002 deg of longitude x 0.0007 deg of latitude is about 80 x 78 m, not the name's 20 m
    write_geotiff(folder / f"{STEMS[0]}.tif", scene_image(), CRS.from_epsg(4326),
                  from_origin(-50.0, 69.2, 0.002, 0.0007))
    write_geotiff(folder / f"{STEMS[1]}.tif", scene_image(seed=1), UTM_22N,
                  from_origin(480_000, 7_670_000, 20, 20))  # named 20 m, on a 20 m grid: consistent
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"its name says 20 m per pixel but its GeoTIFF grid has 7\d\.\d m pixels"):
        run(folder, out)
    rows = quality(out)
    assert rows[STEMS[0]]["resolution_mismatch"] == "True" and rows[STEMS[0]]["needs_check"] == "True"
    assert rows[STEMS[1]]["resolution_mismatch"] == "False"
    assert 70 < records(out)[STEMS[0]]["grid_pixel_size_m"] < 85


DETECT_WITHOUT_TORCH = """
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from standin_predictor import StandInPredictor
from nnunet_glacier.field import detect, geo
report = detect.detect(StandInPredictor(Path(sys.argv[1]) / "model"), geo.list_scenes(sys.argv[2]),
                       Path(sys.argv[1]) / "out", progress=False)
print(len(report.written), [m for m in ("torch", "nnunetv2") if m in sys.modules])
"""


def test_detect_with_a_predictor_built_elsewhere_imports_no_torch(inputs, tmp_path):
    """The predictor's values (:mod:`nnunet_glacier.nnunet.prediction_types`) are torch-free: a run with a
    stand-in predictor imports neither torch nor nnU-Net."""
    done = subprocess.run([sys.executable, "-c", DETECT_WITHOUT_TORCH, str(tmp_path), str(inputs)],
                          cwd=TESTS.parent, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"{len(STEMS)} []"


# --- concurrent and interrupted runs (real child processes) --------------------------------------------------

def start_child(scenes: list[Path], out: Path, model: Path, marker: Path, *, delay_s: float,
                pause_before: str | None = None) -> subprocess.Popen:
    """``detect`` with the stand-in in a child process (tests/standin_predictor.py), its output captured."""
    marker.mkdir(parents=True, exist_ok=True)
    arguments = {"scenes": [str(p) for p in scenes], "out": str(out), "model": str(model), "delay_s": delay_s,
                 "marker": str(marker), "pause_before": pause_before}
    return subprocess.Popen([sys.executable, str(TESTS / "standin_predictor.py")], cwd=TESTS.parent,
                            env={**os.environ, "STANDIN_DETECT": json.dumps(arguments)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child ended ({child.returncode}) before {path.name}: {child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"no {path.name} within {CHILD_TIMEOUT_S} s")
        time.sleep(0.02)


@pytest.fixture
def uninterrupted(inputs, tmp_path) -> dict[str, bytes]:
    """The files of an uninterrupted run over the inputs (what every interrupted run must end up equal to)."""
    out = tmp_path / "uninterrupted"
    run(inputs, out)
    return folder_contents(out)


def test_two_concurrent_runs_share_the_scenes_and_equal_one_run(inputs, tmp_path, uninterrupted):
    out, scenes = tmp_path / "out", geo.list_scenes(inputs)
    children = [start_child(scenes, out, tmp_path / "model", tmp_path / f"marker_{k}", delay_s=2.0)
                for k in range(2)]
    outputs = [child.communicate(timeout=CHILD_TIMEOUT_S) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    predicted = [len(list((tmp_path / f"marker_{k}").glob("predicting_*"))) for k in range(2)]
    assert sum(predicted) == len(STEMS), outputs  # every scene predicted once, by one of the two runs
    assert folder_contents(out) == uninterrupted


@pytest.mark.parametrize("point", ["second scene", "summary"])
def test_ctrl_c_still_writes_the_summary_and_a_rerun_equals_an_uninterrupted_run(inputs, tmp_path, uninterrupted,
                                                                                   point):
    out, scenes, marker = tmp_path / "out", geo.list_scenes(inputs), tmp_path / "marker"
    if point == "second scene":
        child = start_child(scenes, out, tmp_path / "model", marker, delay_s=2.0)
        wait_for(marker / "predicting_2", child)
    else:  # after the last scene: quality.csv and fronts.gpkg are being built from the records
        child = start_child(scenes, out, tmp_path / "model", marker, delay_s=2.0, pause_before="field.detect.read_records")
        wait_for(marker / "pause_read_records", child)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=CHILD_TIMEOUT_S)
    assert child.returncode == 130, stderr
    assert "Exception ignored" not in stderr and "Traceback" not in stderr
    done = set(records(out))
    assert done == ({STEMS[0]} if point == "second scene" else set(STEMS))
    assert set(quality(out)) == done
    assert pyogrio.read_info(out / "fronts.gpkg", layer="fronts_pixel")["features"] == len(done)
    report = run(inputs, out)
    assert set(report.written) == set(STEMS) - done
    assert folder_contents(out) == uninterrupted


def test_a_run_killed_while_writing_leaves_no_temporary_after_the_rerun(inputs, tmp_path, uninterrupted):
    out, scenes, marker = tmp_path / "out", geo.list_scenes(inputs), tmp_path / "marker"
    child = start_child(scenes, out, tmp_path / "model", marker, delay_s=30.0, pause_before="utilities.atomic.os.replace")
    wait_for(marker / "pause_replace", child)
    child.kill()  # SIGKILL: nothing of the child's own clean-up runs
    child.communicate(timeout=CHILD_TIMEOUT_S)
    assert [p for p in out.iterdir() if ".tmp" in p.name]  # the complete temporary it was about to move
    run(inputs, out)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    assert folder_contents(out) == uninterrupted


def test_zone_raster_of_a_scene_is_the_stand_ins_segmentation(inputs, tmp_path):
    """The stand-in segments as documented: ocean left of column 24, glacier to 48, rock right of it."""
    out = tmp_path / "out"
    run(inputs, out)
    zones = read_grey(out / f"{STEMS[0]}_zones.png")
    assert (zones[:, :20] == 254).all() and (zones[:, 28:44] == 127).all() and (zones[:, 52:] == 64).all()


# --- an archive in shards ----------------------------------------------------------------------------------------

def test_shards_without_summaries_then_a_merge_equal_one_run_over_all_scenes(inputs, tmp_path):
    from nnunet_glacier.cli import main
    from nnunet_glacier.field.detect import write_summary
    from nnunet_glacier.field.quality import QualitySettings
    from nnunet_glacier.pipeline.slurm import shard

    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    run(inputs, whole)
    scenes = geo.list_scenes(inputs)
    predictor = StandInPredictor(tmp_path / "model")
    for index in range(2):
        report = detect(predictor, shard(scenes, index, 2), sharded, summary=False, progress=False)
        assert len(report.written) == len(shard(scenes, index, 2))
    assert not (sharded / "quality.csv").exists() and not (sharded / "fronts.gpkg").exists()
    write_summary(sharded, QualitySettings())
    assert folder_contents(sharded) == folder_contents(whole)
    (sharded / "quality.csv").unlink()
    assert main(["detect", "--merge-only", "-o", str(sharded)]) == 0  # the merge job's command
    assert folder_contents(sharded) == folder_contents(whole)
