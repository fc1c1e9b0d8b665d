"""Evaluation of prediction folders (library and CLI) and the comparison of experiments."""
from __future__ import annotations

import csv
import json
import math
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CAFFE_256_PIXEL_SIZE_M
from scipy import stats
from test_structure import import_graph, reachable

from nnunet_glacier.cli import main
from nnunet_glacier.data import caffe
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation import compare, plots
from nnunet_glacier.evaluation.compare import compare_runs
from nnunet_glacier.evaluation.evaluate import evaluate_predictions
from nnunet_glacier.evaluation.per_image import PER_IMAGE_COLUMNS, read_per_image
from nnunet_glacier.pipeline.report import per_image_mde
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.utilities.csv_tables import csv_text

#: The per_image.csv contract other modules (plots) rely on.
EXPECTED_COLUMNS = ("stem,glacier,date,season,sensor,resolution_m,pixel_size_m,route,n_pred_px,n_true_px,mde_m,"
                    "no_front,iou_macro,iou_na,iou_rock,iou_glacier,iou_ocean,precision_macro,recall_macro,f1_macro")
TINY_STEM = "COL_2011-01-10_TSX_7_1_1"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _copy_labels_as_predictions(root: Path, split: str, out: Path, stems: list[str] | None = None) -> Path:
    """CaFFe label files are named like predictions (``<stem>_zones.png``, ``<stem>_front.png``)."""
    out.mkdir(parents=True)
    for kind in ("zones", "fronts"):
        for path in sorted((root / kind / split).glob("*.png")):
            if stems is None or path.stem.rsplit("_", 1)[0] in stems:
                shutil.copy(path, out / path.name)
    return out


# --- a tiny hand-made CaFFe root -------------------------------------------------------------------------------

def _tiny_root(tmp_path: Path, *, with_box: bool) -> Path:
    """One 64 x 64 test scene: glacier in columns 0..31, ocean 32..63, label front = column 32."""
    root = tmp_path / "tiny"
    zones = np.full((64, 64), 254, np.uint8)
    zones[:, :32] = 127
    front = np.zeros((64, 64), np.uint8)
    front[:, 32] = 255
    for folder, name, image in (("sar_images", f"{TINY_STEM}.png", np.full((64, 64), 90, np.uint8)),
                                ("zones", f"{TINY_STEM}_zones.png", zones),
                                ("fronts", f"{TINY_STEM}_front.png", front)):
        (root / folder / "test").mkdir(parents=True)
        cv2.imwrite(str(root / folder / "test" / name), image)
    if with_box:  # rows 0..31, all columns
        (root / "bounding_boxes").mkdir()
        (root / "bounding_boxes" / f"{TINY_STEM}_bbox.txt").write_text("x,y\n0,0\n0,32\n64,32\n64,0\n")
    return root


def test_bounding_box_masks_predictions_after_the_length_filter(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=True)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    evaluation = evaluate_predictions(predictions, root, pixel_size=20.0, workers=1, progress=False)
    (zone_row,) = [r.row() for r in evaluation.results if r.route == "zone"]
    # 64 px front (> 37.5 px), then boxed to rows 0..31; true rows 32..63 lie 1..32 px from it
    assert (zone_row["n_pred_px"], zone_row["n_true_px"]) == (32, 64)
    assert zone_row["mde_m"] == pytest.approx(20.0 * sum(range(1, 33)) / 96)
    assert zone_row["iou_macro"] == 1.0
    post = caffe.read_front(evaluation.out / f"{TINY_STEM}_front_post.png")
    assert post.sum() == 32 and post[:32, 32].all()
    assert evaluation.summary["settings"]["bounding_boxes"] == 1


def test_without_a_box_the_label_zones_reproduce_the_label_front(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    evaluation = evaluate_predictions(predictions, root, pixel_size=20.0, workers=1, progress=False)
    overall = evaluation.summary["routes"]["zone"]["overall"]
    assert overall["mde_pooled_m"] == 0.0 and overall["no_front"] == 0


def _exported_dataset(folder: Path, pixel_sizes: dict[str, float]) -> Path:
    """A raw dataset folder whose dataset.json records ``pixel_sizes`` as export does."""
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"caffe": {"pixel_size_m": pixel_sizes}}))
    return folder


def test_pixel_sizes_come_from_the_export_unless_given_and_summary_says_which(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    dataset = _exported_dataset(tmp_path / "Dataset506_CaFFeFused", {TINY_STEM: 20.0})
    # the name says 7 m (the 64 px front is short); the export recorded 20 m (it is kept)
    evaluation = evaluate_predictions(predictions, root, dataset=dataset, workers=1, progress=False)
    assert evaluation.summary["routes"]["zone"]["overall"]["no_front"] == 0
    settings = evaluation.summary["settings"]
    assert (settings["pixel_size_source"], settings["pixel_size_dataset"]) == ("dataset", str(dataset))
    assert {r["pixel_size_m"] for r in _read_csv(evaluation.out / "per_image.csv")} == {"20"}
    given = evaluate_predictions(predictions, root, pixel_size=7.0, dataset=dataset, workers=1, progress=False)
    assert given.summary["settings"]["pixel_size_source"] == "option"  # the explicit size wins
    assert given.summary["routes"]["zone"]["overall"]["no_front"] == 1
    names = evaluate_predictions(predictions, root, workers=1, progress=False)
    assert names.summary["settings"]["pixel_size_source"] == "name"
    other = _exported_dataset(tmp_path / "other", {"JAC_2015-08-12_S1_20_3_123": 20.0})
    with pytest.raises(InputError, match=r"other/dataset.json: no pixel size recorded for 1 evaluated scene"):
        evaluate_predictions(predictions, root, dataset=other, workers=1, progress=False)
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--dataset", str(dataset),
                 "--out", str(tmp_path / "cli"), "--workers", "1"]) == 0
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["settings"]["pixel_size_source"] == "dataset"


def test_evaluation_reads_the_recorded_pixel_sizes_from_the_data_layer_not_from_export():
    assert "nnunet_glacier.nnunet.export" not in reachable(import_graph(), "nnunet_glacier.evaluation.evaluate")


def test_short_fronts_become_no_front(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    # at the names' 7 m the threshold is 750 / 7 = 107 px > the 64 px front: every route loses its front
    evaluation = evaluate_predictions(predictions, root, workers=1, progress=False, save_fronts=False)
    for route in ("zone", "front"):
        overall = evaluation.summary["routes"][route]["overall"]
        assert (overall["n_images"], overall["no_front"], overall["mde_pooled_m"]) == (1, 1, None)
    rows = _read_csv(evaluation.out / "per_image.csv")
    assert [(r["route"], r["mde_m"], r["no_front"], r["n_pred_px"]) for r in rows] == [("zone", "", "1", "0"),
                                                                                      ("front", "", "1", "0")]
    assert not list(evaluation.out.glob("*_front_post.png"))


def test_fused_predictions_are_evaluated_on_their_route(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    fused = np.full((64, 64), 254, np.uint8)
    fused[:, :29] = 127
    fused[:, 29:34] = 255   # front band over columns 29..33; glacier dilated by 3 px ends at column 31
    cv2.imwrite(str(predictions / f"{TINY_STEM}_fused.png"), fused)
    evaluation = evaluate_predictions(predictions, root, pixel_size=20.0, workers=1, progress=False)
    assert list(evaluation.summary["routes"]) == ["fused"]
    assert evaluation.summary["routes"]["fused"]["overall"]["mde_pooled_m"] == 0.0
    assert evaluation.summary["routes"]["fused"]["overall"]["iou_macro"] == 1.0
    assert (evaluation.out / f"{TINY_STEM}_front_post.png").is_file()


def test_extra_routes_read_the_fused_map_only_on_request(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    fused = np.full((64, 64), 254, np.uint8)
    fused[:, :30] = 127
    fused[:, 30:35] = 255   # a 5 px band around the label front (column 32)
    cv2.imwrite(str(predictions / f"{TINY_STEM}_fused.png"), fused)
    default = evaluate_predictions(predictions, root, pixel_size=20.0, workers=1, progress=False)
    assert list(default.summary["routes"]) == ["fused"]
    both = evaluate_predictions(predictions, root, out=tmp_path / "extra", pixel_size=20.0, workers=1,
                                progress=False, extra_routes=["fused_front", "fused_split"])
    routes = both.summary["routes"]
    assert list(routes) == ["fused", "fused_split", "fused_front"]
    assert routes["fused"]["overall"] == default.summary["routes"]["fused"]["overall"]
    assert routes["fused_split"]["overall"]["mde_pooled_m"] == 0.0   # band split down its middle: column 32
    assert routes["fused_split"]["overall"]["iou_macro"] == 1.0
    assert routes["fused_front"]["overall"]["mde_pooled_m"] < 20.0   # the band's skeleton, within a pixel
    assert "iou_macro" not in routes["fused_front"]["overall"]
    assert {r["route"] for r in _read_csv(both.out / "per_image.csv")} == {"fused", "fused_split", "fused_front"}
    with pytest.raises(ValueError, match=r"unknown extra route\(s\) fused_wide; extra routes are fused_split"):
        evaluate_predictions(predictions, root, out=tmp_path / "x", extra_routes=["fused_wide"])  # cli: test_cli


# --- real data: caffe_256 --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def label_evaluation(caffe_256: Path, tmp_path_factory: pytest.TempPathFactory):
    """The caffe_256 test labels evaluated as predictions (zone and front routes)."""
    predictions = _copy_labels_as_predictions(caffe_256, "test", tmp_path_factory.mktemp("labels") / "pred")
    return evaluate_predictions(predictions, caffe_256, pixel_size=CAFFE_256_PIXEL_SIZE_M, workers=1,
                                progress=False)


def test_labels_against_themselves_on_caffe_256(label_evaluation, caffe_256: Path):
    n_scenes = len(list((caffe_256 / "sar_images" / "test").glob("*.png")))
    summary = label_evaluation.summary
    assert summary["n_scenes"] == n_scenes and list(summary["routes"]) == ["zone", "front"]
    zone = summary["routes"]["zone"]
    assert zone["missing"] == [] and zone["overall"]["n_images"] == n_scenes
    for key in ("iou_macro", "precision_macro", "recall_macro", "f1_macro", "iou_glacier", "iou_ocean"):
        assert zone["overall"][key] == 1.0
    # skeletonizing the 1-2 px wide label fronts moves no front pixel by more than one pixel
    front = summary["routes"]["front"]["overall"]
    assert front["no_front"] == 0 and 0 < front["mde_pooled_m"] < CAFFE_256_PIXEL_SIZE_M
    assert set(zone) >= {f"by_{b}" for b in ("glacier", "season", "sensor", "resolution", "glacier_season")}
    assert sum(g["n_images"] for g in zone["by_season"].values()) == n_scenes


def test_per_image_csv_contract_and_front_files(label_evaluation, caffe_256: Path):
    out = label_evaluation.out
    assert ",".join(PER_IMAGE_COLUMNS) == EXPECTED_COLUMNS
    assert (out / "per_image.csv").read_text().splitlines()[0] == EXPECTED_COLUMNS
    rows = _read_csv(out / "per_image.csv")
    n_scenes = len(rows) // 2
    assert [r["route"] for r in rows] == ["zone"] * n_scenes + ["front"] * n_scenes
    first = rows[0]
    name = caffe.SceneName.parse(first["stem"])
    assert (first["glacier"], first["date"], first["season"], first["sensor"]) == (
        name.glacier, name.date.isoformat(), name.season, name.sensor)
    assert float(first["pixel_size_m"]) == CAFFE_256_PIXEL_SIZE_M and float(first["iou_macro"]) == 1.0
    assert all(r["iou_macro"] == "" for r in rows if r["route"] == "front")
    assert label_evaluation.summary["fronts_folders"] == {"zone": ".", "front": "front"}
    assert len(list(out.glob("*_front_post.png"))) == len(list((out / "front").glob("*_front_post.png"))) == n_scenes
    post = cv2.imread(str(next(out.glob("*_front_post.png"))), cv2.IMREAD_UNCHANGED)
    assert post.dtype == np.uint8 and set(np.unique(post)) <= {0, 255}
    read = read_per_image(out / "per_image.csv")
    assert [(r.stem, r.route) for r in read] == [(r["stem"], r["route"]) for r in rows]
    assert [r.mde_m for r in read] == [float(r["mde_m"]) if r["mde_m"] else None for r in rows]


@pytest.mark.parametrize("columns, rows, problem", [
    (("stem", "glacier", "mde_m"), [["s1", "COL", 500.0]], "missing column(s) route"),
    (("stem", "glacier", "route", "mde_m"), [["s1", "COL", "zone", "-3"]],
     "line 2: mde_m '-3' is not a non-negative number"),
    (("stem", "glacier", "route", "mde_m"), [["s1", "COL", "zone", 500.0], ["s2", "COL", "zone", "inf"]],
     "line 3: mde_m 'inf' is not a non-negative number"),
    (("stem", "glacier", "route", "mde_m"), [["s1", "COL", "zone"]], "line 2: fewer fields than the header's 4"),
])
def test_a_malformed_per_image_csv_is_refused_alike_by_figures_report_and_compare(tmp_path: Path, columns, rows,
                                                                                   problem):
    """per_image.csv has one reader (evaluation.per_image): each of its users names the file and the problem."""
    path = tmp_path / "per_image.csv"
    path.write_text(csv_text(columns, rows))
    summary = path.with_name("summary.json")
    for read in (lambda: plots.read_mde(path, "glacier"), lambda: per_image_mde(path),
                 lambda: compare.evaluated_scenes(summary, "zone")):
        with pytest.raises(InputError) as error:
            read()
        assert error.value.path == path and str(error.value) == f"{path}: {problem}"


@pytest.fixture(scope="module")
def derived_root(caffe_256: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six caffe_256 test scenes whose front labels are the zone route's fronts of their zone labels."""
    root = tmp_path_factory.mktemp("derived")
    stems = sorted(p.stem for p in (caffe_256 / "sar_images" / "test").glob("*.png"))[::13]
    min_pixels = postprocess.min_front_pixels(CAFFE_256_PIXEL_SIZE_M)
    for kind in ("sar_images", "zones", "fronts"):
        (root / kind / "test").mkdir(parents=True)
    for stem in stems:
        shutil.copy(caffe_256 / "sar_images" / "test" / f"{stem}.png", root / "sar_images" / "test")
        shutil.copy(caffe_256 / "zones" / "test" / f"{stem}_zones.png", root / "zones" / "test")
        front = postprocess.zone_route(caffe.read_zones(root / "zones" / "test" / f"{stem}_zones.png"), min_pixels)
        cv2.imwrite(str(root / "fronts" / "test" / f"{stem}_front.png"), front.astype(np.uint8) * 255)
    return root


def test_zone_labels_give_mde_zero_against_their_own_fronts(derived_root: Path, tmp_path: Path):
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for path in (derived_root / "zones" / "test").glob("*.png"):
        shutil.copy(path, predictions)
    evaluation = evaluate_predictions(predictions, derived_root, pixel_size=CAFFE_256_PIXEL_SIZE_M, workers=1,
                                      progress=False, save_fronts=False)
    overall = evaluation.summary["routes"]["zone"]["overall"]
    assert (overall["n_images"], overall["no_front"]) == (6, 0)
    assert overall["mde_pooled_m"] == overall["mde_mean_m"] == overall["mde_median_m"] == 0.0
    assert overall["iou_macro"] == 1.0


def test_parallel_workers_give_the_same_results(derived_root: Path, tmp_path: Path):
    predictions = _copy_labels_as_predictions(derived_root, "test", tmp_path / "pred")
    serial = evaluate_predictions(predictions, derived_root, out=tmp_path / "serial", workers=1, progress=False,
                                  pixel_size=CAFFE_256_PIXEL_SIZE_M)
    parallel = evaluate_predictions(predictions, derived_root, out=tmp_path / "parallel", workers=2,
                                    progress=False, pixel_size=CAFFE_256_PIXEL_SIZE_M)
    assert (serial.out / "per_image.csv").read_text() == (parallel.out / "per_image.csv").read_text()
    assert serial.summary["routes"] == parallel.summary["routes"]


def test_scenes_without_predictions_are_reported(derived_root: Path, tmp_path: Path):
    stems = sorted(p.stem for p in (derived_root / "sar_images" / "test").glob("*.png"))
    predictions = _copy_labels_as_predictions(derived_root, "test", tmp_path / "pred", stems[:2])
    (predictions / f"{stems[1]}_front.png").unlink()
    evaluation = evaluate_predictions(predictions, derived_root, workers=1, progress=False,
                                      pixel_size=CAFFE_256_PIXEL_SIZE_M)
    assert evaluation.summary["routes"]["zone"]["missing"] == stems[2:]
    assert evaluation.summary["routes"]["front"]["missing"] == stems[1:]
    assert evaluation.summary["routes"]["front"]["overall"]["n_images"] == 1


# --- bad input -------------------------------------------------------------------------------------------------

def test_prediction_without_a_scene_is_an_error(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    stray = predictions / "COL_2012-02-02_TSX_7_1_1_zones.png"
    shutil.copy(predictions / f"{TINY_STEM}_zones.png", stray)
    with pytest.raises(InputError, match="without a matching scene") as info:
        evaluate_predictions(predictions, root, workers=1, progress=False)
    assert info.value.path == stray


def test_other_files_are_ignored_and_an_empty_folder_is_an_error(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    (predictions / f"{TINY_STEM}_boundary.png").write_bytes(b"")
    (predictions / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no predictions found") as info:
        evaluate_predictions(predictions, root, workers=1, progress=False)
    assert info.value.path == predictions
    with pytest.raises(InputError, match="predictions folder not found"):
        evaluate_predictions(tmp_path / "missing", root, workers=1, progress=False)


@pytest.mark.parametrize(("suffix", "array", "problem", "workers"), [
    ("_zones", np.full((32, 64), 127, np.uint8), "size 64x32 differs", 1),
    ("_zones", np.full((32, 64), 127, np.uint8), "size 64x32 differs", 2),   # raised in a worker process
    ("_front", np.full((64, 64), 100, np.uint8), r"values \[100\] outside", 1),
])
def test_bad_prediction_names_the_file(tmp_path: Path, suffix: str, array: np.ndarray, problem: str, workers: int):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    bad = predictions / f"{TINY_STEM}{suffix}.png"
    cv2.imwrite(str(bad), array)
    with pytest.raises(InputError, match=problem) as info:
        evaluate_predictions(predictions, root, workers=workers, progress=False)
    assert info.value.path == bad


def test_label_front_of_another_size_names_the_label(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    label = root / "fronts" / "test" / f"{TINY_STEM}_front.png"
    cv2.imwrite(str(label), np.zeros((64, 60), np.uint8))
    with pytest.raises(InputError, match=f"size 60x64 differs from {TINY_STEM}_zones.png") as info:
        evaluate_predictions(predictions, root, workers=1, progress=False)
    assert info.value.path == label


# --- CLI: evaluate ---------------------------------------------------------------------------------------------

def test_cli_evaluate_writes_outputs_and_prints_tables(tmp_path: Path, capsys: pytest.CaptureFixture):
    root = _tiny_root(tmp_path, with_box=True)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    inputs = {p: p.read_bytes() for p in predictions.iterdir()}
    code = main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--pixel-size", "20",
                 "--workers", "1"])
    assert code == 0
    out = predictions / "evaluation"
    assert {p.name for p in out.iterdir()} == {"summary.json", "per_image.csv", f"{TINY_STEM}_front_post.png",
                                               "front"}
    assert json.loads((out / "summary.json").read_text())["settings"]["pixel_size_m"] == 20.0
    printed = capsys.readouterr().out
    assert "route zone: 1 of 1 test scenes predicted" in printed and "glacier x season COL/winter" in printed
    assert {p: p.read_bytes() for p in predictions.iterdir() if p.is_file()} == inputs   # inputs untouched


def test_cli_evaluate_no_save_fronts_and_out(tmp_path: Path):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = _copy_labels_as_predictions(root, "test", tmp_path / "pred")
    out = tmp_path / "eval"
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--out", str(out),
                 "--no-save-fronts", "--workers", "1"]) == 0
    assert {p.name for p in out.iterdir()} == {"summary.json", "per_image.csv"}


def test_cli_evaluate_bad_input_exits_1_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture):
    root = _tiny_root(tmp_path, with_box=False)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    bad = predictions / "Mapple_2010-01-01_S1_20_1_1_front.png"
    cv2.imwrite(str(bad), np.zeros((64, 64), np.uint8))
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--workers", "1"]) == 1
    assert str(bad) in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(tmp_path / "nowhere")]) == 1
    assert "not a CaFFe root" in capsys.readouterr().err


# --- compare ---------------------------------------------------------------------------------------------------

def _write_folds(folder: Path, route: str, mdes: list[float], ious: list[float | None]) -> None:
    for fold, (mde, iou) in enumerate(zip(mdes, ious)):
        path = folder / f"fold_{fold}" / "summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"routes": {route: {"overall": {"mde_pooled_m": mde, "iou_macro": iou}}}}))


def test_cli_compare_means_stds_and_welch_tests(tmp_path: Path, capsys: pytest.CaptureFixture):
    fused_mdes, stl_mdes = [500.0, 540.0, 580.0], [1000.0, 1100.0, 1200.0]
    _write_folds(tmp_path / "fused", "fused", fused_mdes, [0.70, 0.72, 0.74])
    _write_folds(tmp_path / "stl", "front", stl_mdes, [None, None, None])
    out = tmp_path / "cmp"
    code = main(["compare", "--runs", f"fused={tmp_path}/fused/fold_*/summary.json",
                 f"stl={tmp_path}/stl/**/summary.json", "--out", str(out)])
    assert code == 0
    comparison = json.loads((out / "compare.json").read_text())
    fused = comparison["results"]["fused:fused"]
    assert fused["n_folds"] == 3
    assert fused["mde_pooled_m"]["mean"] == pytest.approx(540.0) and fused["mde_pooled_m"]["std"] == pytest.approx(40.0)
    assert fused["iou_macro"]["mean"] == pytest.approx(0.72)
    assert comparison["results"]["stl:front"]["iou_macro"] == {"values": [], "mean": None, "std": None}
    (test,) = comparison["welch_mde"]
    # Welch: t = (540 - 1100) / sqrt(40^2 / 3 + 100^2 / 3)
    assert test["t"] == pytest.approx(-560 / math.sqrt((1600 + 10000) / 3))
    assert test["p"] == pytest.approx(stats.ttest_ind(fused_mdes, stl_mdes, equal_var=False).pvalue)
    markdown = (out / "compare.md").read_text()
    assert "| fused:fused | 3 | 540.0 ± 40.0 | 0.720 ± 0.020 |" in markdown
    assert "| stl:front | 3 | 1100.0 ± 100.0 | - |" in markdown
    assert markdown in capsys.readouterr().out


def test_compare_reads_evaluate_summaries_and_single_folds_have_no_test(label_evaluation, tmp_path: Path):
    summary = str(label_evaluation.out / "summary.json")
    assert main(["compare", "--runs", f"a={summary}", f"b={summary}", "--out", str(tmp_path)]) == 0
    comparison = json.loads((tmp_path / "compare.json").read_text())
    assert list(comparison["results"]) == ["a:front", "a:zone", "b:front", "b:zone"]
    zone = comparison["results"]["a:zone"]
    assert zone["n_folds"] == 1 and zone["iou_macro"]["mean"] == 1.0 and zone["mde_pooled_m"]["std"] is None
    assert all(t["t"] is None and t["p"] is None for t in comparison["welch_mde"])


def test_compare_constant_folds(tmp_path: Path):
    _write_folds(tmp_path / "a", "zone", [500.0, 500.0], [0.7, 0.7])
    _write_folds(tmp_path / "b", "zone", [600.0, 600.0], [0.7, 0.7])
    _write_folds(tmp_path / "c", "zone", [550.0, 650.0], [0.7, 0.7])
    runs = {name: f"{tmp_path}/{name}/*/summary.json" for name in "abc"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tests = {(t["a"], t["b"]): t for t in compare_runs(runs)["welch_mde"]}
    assert tests["a:zone", "b:zone"]["t"] is None          # no variance on either side: undefined
    assert tests["a:zone", "c:zone"]["t"] == pytest.approx(-2.0)   # (500 - 600) / sqrt(0 + 5000 / 2)


def test_cli_compare_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["compare", "--runs", f"x={tmp_path}/none/*.json", "--out", str(tmp_path)]) == 1
    assert "matches no summary.json" in capsys.readouterr().err
    broken = tmp_path / "broken" / "summary.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    assert main(["compare", "--runs", f"x={broken}", "--out", str(tmp_path)]) == 1
    assert str(broken) in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    assert main(["compare", "--runs", f"x={other}", "--out", str(tmp_path)]) == 1
    assert "not an evaluation summary" in capsys.readouterr().err
    assert main(["compare", "--runs", f"x={other}", f"x={other}"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["compare", "--runs", "no-equals-sign"])
    assert info.value.code == 2
    assert not (tmp_path / "compare.json").exists()


def test_paired_wilcoxon_pairs_common_finite_scenes_and_matches_scipy():
    a = {"s1": 1.0, "s2": 2.0, "s3": 3.5, "s4": 9.0, "s5": 4.0, "only_a": 1.0, "nan": float("nan")}
    b = {"s1": 2.0, "s2": 4.0, "s3": 3.0, "s4": 10.0, "s5": 6.5, "only_b": 7.0, "nan": 1.0}
    result = compare.paired_wilcoxon(a, b)
    differences = [-1.0, -2.0, 0.5, -1.0, -2.5]
    assert result["n"] == 5 and result["a_lower"] == 4
    assert result["median_difference"] == pytest.approx(-1.0)
    assert result["p"] == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert compare.paired_wilcoxon({"s": 1.0}, {"s": 2.0})["p"] is None  # one pair: no test
    assert compare.paired_wilcoxon({"s": 1.0, "t": 2.0}, {"s": 1.0, "t": 2.0})["p"] is None  # no difference


def test_against_baseline_ratios_and_tests():
    pooled = {"stock": 20.0, "ours": 15.0, "no_front": None}
    per_image = {"stock": {"a": 20.0, "b": 22.0, "c": 18.0}, "ours": {"a": 15.0, "b": 14.0, "c": 16.0},
                 "no_front": {}}
    comparison = compare.against_baseline(pooled, per_image, "stock")
    assert comparison["stock"] == {"ratio": 1.0, "test": None}
    assert comparison["ours"]["ratio"] == pytest.approx(0.75)
    assert comparison["ours"]["test"]["a_lower"] == 3 and comparison["ours"]["test"]["n"] == 3
    assert comparison["no_front"]["ratio"] is None and comparison["no_front"]["test"]["n"] == 0
