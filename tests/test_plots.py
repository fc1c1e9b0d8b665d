"""Figures: overlay colours, box plots, timeline, retreat map, and the ``plot`` sub-command."""
from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.patches import PathPatch

from nnunet_glacier.cli import main
from nnunet_glacier.data import caffe
from nnunet_glacier.data.caffe import BoundingBox
from nnunet_glacier.data.tasks import ZONE_LABELS
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation import plots

GREY = 100

CSV_HEADER = "stem,glacier,date,season,sensor,resolution_m,pixel_size_m,route,n_pred_px,n_true_px,mde_m,no_front\n"
CSV_ROWS = [
    "COL_2011-01-10_TSX_7_1_1,COL,2011-01-10,winter,TSX,7,7,zone,10,12,350.5,0",
    "COL_2011-06-10_TSX_7_1_1,COL,2011-06-10,summer,TSX,7,7,zone,10,12,900,0",
    "COL_2012-06-10_S1_20_1_1,COL,2012-06-10,summer,S1,20,20,zone,10,12,1200,0",
    "Mapple_2008-03-30_PALSAR_17_3_1,Mapple,2008-03-30,summer,PALSAR,17,17,zone,10,12,420,0",
    "Mapple_2009-03-30_PALSAR_17_3_1,Mapple,2009-03-30,summer,PALSAR,17,17,zone,0,12,,1",
]


def _write_csv(path: Path, rows: list[str] = CSV_ROWS, header: str = CSV_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def _assert_written(paths: list[Path]) -> None:
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths)


# --- overlay colours -------------------------------------------------------------------------------------------

def test_overlay_colours_on_a_tiny_array():
    image = np.full((10, 10), GREY, np.uint8)
    label = np.zeros((10, 10), np.uint8)
    pred = np.zeros((10, 10), np.uint8)
    label[4, 3:5] = 1          # (4, 3) label only, (4, 4) both
    pred[4, 4:6] = 1           # (4, 5) prediction only
    rgb = plots.front_overlay_rgb(image, label, pred, bbox=BoundingBox(0, 10, 0, 10), thickness_px=1)
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[4, 3]) == plots.LABEL_FRONT_RGB
    assert tuple(rgb[4, 5]) == plots.PRED_FRONT_RGB
    assert tuple(rgb[4, 4]) == plots.OVERLAP_RGB
    assert tuple(rgb[0, 5]) == tuple(rgb[9, 9]) == plots.BBOX_RGB  # box edges (max exclusive)
    assert tuple(rgb[7, 7]) == (GREY,) * 3
    assert (image == GREY).all()  # input untouched


def test_overlay_thickens_fronts_and_allows_missing_ones():
    image = np.zeros((9, 9), np.uint8)
    label = np.zeros((9, 9), np.uint8)
    label[4, 4] = 1
    rgb = plots.front_overlay_rgb(image, label, None, thickness_px=3)
    blue = (rgb == plots.LABEL_FRONT_RGB).all(axis=2)
    assert blue.sum() == 9 and blue[3:6, 3:6].all()
    assert plots.front_thickness_px((256, 256)) == 1 and plots.front_thickness_px((6000, 4000)) == 20


def test_overlay_rejects_a_front_of_another_size():
    with pytest.raises(ValueError, match=r"mask of the image's shape \(4, 4\)"):
        plots.front_overlay_rgb(np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8))


def test_zone_overlay_colours():
    zones = np.array([[0, 1], [2, 3]], np.uint8)
    opaque = plots.zone_overlay_rgb(np.zeros((2, 2), np.uint8), zones, alpha=1.0)
    assert (opaque == plots.ZONE_RGB[zones]).all()
    half = plots.zone_overlay_rgb(np.full((2, 2), 200, np.uint8), zones, alpha=0.5)
    assert tuple(half[0, 0]) == (100, 100, 100)  # NA is black


def test_plot_overlay_figure(tmp_path, caffe_256):
    sample = caffe.discover(caffe_256, ("test",))[0]
    loaded = caffe.load_sample(sample)
    fig = plots.plot_overlay(loaded.image, tmp_path / "overlay.png", label_front=loaded.front,
                             pred_front=np.roll(loaded.front, 5, axis=1), zones=loaded.zones,
                             bbox=BoundingBox(10, 240, 20, 250), stem=sample.stem, mde_m=612.4)
    _assert_written([tmp_path / "overlay.png", tmp_path / "overlay.pdf"])
    assert fig.get_suptitle() == f"{sample.stem}   MDE 612 m"
    fronts_ax, zones_ax = fig.axes
    assert [t.get_text() for t in fronts_ax.get_legend().get_texts()] == [
        "label front", "predicted front", "both", "bounding box"]
    assert [t.get_text() for t in zones_ax.get_legend().get_texts()] == list(ZONE_LABELS)


def test_overlay_legend_lists_only_what_is_drawn():
    image = np.full((20, 20), GREY, np.uint8)
    front = np.zeros((20, 20), bool)
    front[5, 2:18] = True
    (ax,) = plots.plot_overlay(image, pred_front=front).axes  # detect's overlay: no label front
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["predicted front"]
    assert plots.plot_overlay(image).axes[0].get_legend() is None


def test_overlay_of_a_large_scene_is_drawn_from_a_reduced_copy_in_scene_coordinates():
    height, width = 4100, 900  # reduced by 3: 1367 x 300
    image = np.full((height, width), GREY, np.uint8)
    front = np.zeros((height, width), bool)
    front[2000, 100:800] = True  # one pixel thick: must survive the reduction
    zones = np.zeros((height, width), np.uint8)
    zones[height // 2:] = 3
    assert plots.overlay_reduction((height, width)) == 3 and plots.overlay_reduction((2000, 2000)) == 1
    fronts_ax, zones_ax = plots.plot_overlay(image, pred_front=front, zones=zones,
                                             bbox=BoundingBox(30, 870, 60, 4000)).axes
    drawn = fronts_ax.get_images()[0].get_array()
    assert drawn.shape == (1367, 300, 3)
    assert fronts_ax.get_images()[0].get_extent() == [-0.5, width - 0.5, height - 0.5, -0.5]
    assert (drawn[2000 // 3, 40:260] == plots.PRED_FRONT_RGB).all()
    assert (drawn[20:1300, 10] == plots.BBOX_RGB).all()  # the box's left side, at column 30 // 3
    assert zones_ax.get_images()[0].get_array().shape == (1367, 300, 3)
    assert (plots.reduce_mask(front, 3).sum(axis=1) > 0).sum() == 1


def test_plot_overlay_keeps_small_scenes_at_full_resolution():
    image = np.full((30, 40), GREY, np.uint8)
    (ax,) = plots.plot_overlay(image).axes
    assert ax.get_images()[0].get_array().shape == (30, 40, 3)


def test_save_figure_formats(tmp_path):
    fig = plots.plot_timeline([caffe.SceneName.parse("JAC_2011-04-10_TSX_7_1_1")])
    assert plots.save_figure(fig, tmp_path / "a.png") == [tmp_path / "a.png", tmp_path / "a.pdf"]
    assert plots.save_figure(fig, tmp_path / "b.png", ("pdf",)) == [tmp_path / "b.pdf"]
    _assert_written([tmp_path / "a.png", tmp_path / "a.pdf", tmp_path / "b.pdf"])
    assert not (tmp_path / "b.png").exists()
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")


# --- box plots -------------------------------------------------------------------------------------------------

def test_boxplot_from_hand_written_csvs(tmp_path):
    first = _write_csv(tmp_path / "fused" / "per_image.csv")
    second = _write_csv(tmp_path / "stl" / "per_image.csv", CSV_ROWS[:3])
    series = plots.mde_series({"fused": first, "STL": second}, "glacier")
    assert series == {"fused": {"COL": [350.5, 900.0, 1200.0], "Mapple": [420.0]},
                      "STL": {"COL": [350.5, 900.0, 1200.0]}}
    fig = plots.plot_mde_boxplot(series, tmp_path / "box.png", by="glacier")
    _assert_written([tmp_path / "box.png", tmp_path / "box.pdf"])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert sum(isinstance(p, PathPatch) for p in ax.patches) == 3  # COL x 2 series, Mapple x 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["n=3", "n=1", "n=3"]
    horizontal = {line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1
                  and tuple(line.get_xdata()) == (0, 1)}
    assert horizontal == {753.0, 887.0}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["fused", "STL"] and any("753 m" in t for t in legend)


def test_boxplot_one_series_per_route_and_resolution_order(tmp_path):
    rows = CSV_ROWS[:4] + [CSV_ROWS[0].replace(",zone,", ",front,")]
    series = plots.mde_series({"mtl": _write_csv(tmp_path / "per_image.csv", rows)}, "resolution")
    assert series == {"mtl (zone)": {"7 m": [350.5, 900.0], "20 m": [1200.0], "17 m": [420.0]},
                      "mtl (front)": {"7 m": [350.5]}}
    fig = plots.plot_mde_boxplot(series, by="resolution")
    group_axis = fig.axes[0].child_axes[0]
    assert [t.get_text() for t in group_axis.get_xticklabels()] == ["7 m", "17 m", "20 m"]


def test_boxplot_shows_few_images_as_points_and_keeps_groups_without_a_front(tmp_path):
    rows = CSV_ROWS + ["JAC_2010-03-30_TSX_7_3_1,JAC,2010-03-30,winter,TSX,7,7,zone,0,12,,1"]
    csvs = {"fused": _write_csv(tmp_path / "per_image.csv", rows)}
    no_front = plots.no_front_series(csvs, "glacier")
    assert no_front == {"fused": {"Mapple": 1, "JAC": 1}}
    fig = plots.plot_mde_boxplot(plots.mde_series(csvs, "glacier"), by="glacier", baselines={}, no_front=no_front,
                                 title="MDE per image by glacier (synthetic scenes)")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.child_axes[0].get_xticklabels()] == ["COL", "JAC", "Mapple"]  # JAC: no box
    assert sorted(t.get_text() for t in ax.texts) == ["no front: 1", "no front: 1"]
    points = [len(c.get_offsets()) for c in ax.collections]
    assert sorted(points) == [1, 3]  # every image of the two small boxes (COL 3, Mapple 1)
    assert not any(len(set(line.get_ydata())) == 1 and tuple(line.get_xdata()) == (0, 1) for line in ax.lines)
    assert ax.get_title().endswith("(synthetic scenes)")


@pytest.mark.parametrize("header, rows, problem", [
    (CSV_HEADER.replace("glacier,", ""), [r.split(",", 2)[0] + "," + r.split(",", 2)[2] for r in CSV_ROWS],
     "missing column(s) glacier"),
    (CSV_HEADER, [CSV_ROWS[0].replace("350.5", "abc")], "line 2: mde_m 'abc' is not a non-negative number"),
    (CSV_HEADER, [CSV_ROWS[0], CSV_ROWS[1].replace("900", "-1")], "line 3: mde_m '-1' is not a non-negative"),
    (CSV_HEADER, [CSV_ROWS[0].replace("350.5", "nan")], "line 2: mde_m 'nan' is not a non-negative"),
    (CSV_HEADER, [CSV_ROWS[0].rsplit(",", 2)[0]], "line 2: fewer fields than the header's 12"),
    (CSV_HEADER, [CSV_ROWS[4]], "no image with an MDE"),
])
def test_read_mde_errors_name_the_file(tmp_path, header, rows, problem):
    path = _write_csv(tmp_path / "per_image.csv", rows, header)
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")) as error:
        plots.read_mde(path, "glacier")
    assert error.value.path == path


# --- timeline and retreat map ----------------------------------------------------------------------------------

def test_timeline_on_real_sample(tmp_path, caffe_256):
    fig = plots.plot_timeline(caffe.discover(caffe_256, require_labels=False), tmp_path / "timeline")
    _assert_written([tmp_path / "timeline.png", tmp_path / "timeline.pdf"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Crane (n=69)", "Jorum (n=77)"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-2:] == ["train", "test"] and {"S1", "TSX", "ERS"} <= set(legend)
    assert ax.get_xlabel() == "acquisition date"


def test_front_raster_mask_and_polyline():
    polyline = np.array([[1, 2], [4, 2]])  # (x, y): row 2, columns 1..4
    expected = np.zeros((5, 6), bool)
    expected[2, 1:5] = True
    assert (plots.front_raster(polyline, (5, 6)) == expected).all()
    assert (plots.front_raster(expected.astype(np.uint8), (5, 6)) == expected).all()
    with pytest.raises(ValueError, match="mask of the image's shape"):
        plots.front_raster(np.zeros((4, 6)), (5, 6))


def test_retreat_map_from_masks_and_polylines(tmp_path):
    background = np.full((40, 60), 80, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10, 5:50] = 1
    fronts = [(dt.date(2012, 1, 1), np.array([[5, 30], [50, 25]])), (dt.date(2010, 1, 1), mask)]
    fig = plots.plot_retreat(fronts, background, tmp_path / "retreat.png", thickness_px=1)
    _assert_written([tmp_path / "retreat.png", tmp_path / "retreat.pdf"])
    ax, colourbar = fig.axes
    assert colourbar.get_ylabel() == "front date"
    layer = ax.get_images()[1].get_array()
    assert layer[10, 20, 3] == 1 and layer[0, 0, 3] == 0  # the mask front opaque, elsewhere transparent
    (line,) = ax.get_lines()  # the polyline front
    assert list(line.get_xdata()) == [5, 50] and not np.allclose(line.get_color(), layer[10, 20])  # two dates
    assert ax.get_title() == "2 fronts, 2010-01-01 to 2012-01-01"


def test_retreat_map_in_map_coordinates_draws_the_box():
    background = np.zeros((20, 30), np.uint8)
    extent = (500_000.0, 500_600.0, 7_000_000.0, 7_000_400.0)  # 20 m pixels
    fronts = [(dt.date(2010, 1, 1), np.array([[500_100.0, 7_000_050.0], [500_100.0, 7_000_350.0]]))]
    box = np.array([[500_050.0, 7_000_100.0], [500_050.0, 7_000_300.0], [500_400.0, 7_000_300.0],
                    [500_400.0, 7_000_100.0], [500_050.0, 7_000_100.0]])
    fig = plots.plot_retreat(fronts, background, extent=extent, outline=box, axis_labels=("easting (m)", "y"))
    ax = fig.axes[0]
    assert ax.get_images()[0].get_extent() == list(extent)
    front, outline = ax.get_lines()
    assert outline.get_label() == "box" and list(outline.get_xdata()) == list(box[:, 0])
    assert ax.get_xlim() == extent[:2] and ax.get_xlabel() == "easting (m)"


def test_front_positions_hollow_for_flagged_scenes_and_skip_unknown(tmp_path):
    dates = [dt.date(2019, 1, 1), dt.date(2019, 6, 1), dt.date(2020, 1, 1), dt.date(2020, 6, 1)]
    fig = plots.plot_front_positions(dates, [0.0, -120.0, float("nan"), -300.0], [False, True, False, False],
                                     tmp_path / "position")
    _assert_written([tmp_path / "position.png", tmp_path / "position.pdf"])
    ok, flagged = fig.axes[0].collections
    assert len(ok.get_offsets()) == 2 and len(flagged.get_offsets()) == 1  # the NaN scene is left out
    assert flagged.get_facecolors().size == 0 or flagged.get_facecolors()[0][3] == 0  # hollow
    with pytest.raises(ValueError, match="no front positions"):
        plots.plot_front_positions(dates[:1], [float("nan")], [False])


def test_figures_ignore_global_style_changes():
    """nnU-Net's logger calls seaborn.set(font_scale=2.5); our figures must keep matplotlib's defaults."""
    import matplotlib

    default_size = matplotlib.rcParamsDefault["font.size"]
    front = [(dt.date(2010, 1, 1), np.array([[1, 1], [8, 8]]))]
    seaborn_like = {"font.size": 4 * default_size, "axes.labelsize": 4 * default_size, "axes.facecolor": "black"}
    with matplotlib.rc_context(seaborn_like):
        fig = plots.plot_retreat(front, np.zeros((10, 10), np.uint8))
        unstyled = plots.plot_retreat.__wrapped__(front, np.zeros((10, 10), np.uint8))
    assert unstyled.axes[0].xaxis.label.get_fontsize() == 4 * default_size  # what the global style would do
    ax = fig.axes[0]
    assert ax.xaxis.label.get_fontsize() == default_size
    assert ax.get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_label_retreat_on_real_sample(tmp_path, caffe_256):
    samples = caffe.discover(caffe_256, require_labels=False)
    fig = plots.plot_label_retreat(samples, "Jorum", tmp_path / "jorum.png", where=caffe_256)
    _assert_written([tmp_path / "jorum.png", tmp_path / "jorum.pdf"])
    n_s1 = sum(s.name.sensor == "S1" for s in samples)
    assert fig.axes[0].get_title().startswith(f"Jorum (S1): {n_s1} label fronts")
    everything = plots.plot_label_retreat(samples, "jorum", where=caffe_256, all_sensors=True)
    assert everything.axes[0].get_title().startswith("Jorum (all sensors): 77 label fronts")
    with pytest.raises(InputError, match="no scenes of glacier 'Columbia'; glaciers present: Crane, Jorum"):
        plots.plot_label_retreat(samples, "Columbia", where=caffe_256)


# --- command line ----------------------------------------------------------------------------------------------

def _fake_predictions(root: Path, folder: Path) -> list[str]:
    """Predictions for the first two test scenes: a post-processed one equal to the label, and a raw one shifted."""
    stems = [s.stem for s in caffe.discover(root, ("test",))][:2]
    folder.mkdir()
    shutil.copy(root / "fronts" / "test" / f"{stems[0]}_front.png", folder / f"{stems[0]}_front_post.png")
    cv2.imwrite(str(folder / f"{stems[0]}_front.png"), np.zeros((128, 128), np.uint8))  # superseded by _post
    front = cv2.imread(str(root / "fronts" / "test" / f"{stems[1]}_front.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(folder / f"{stems[1]}_front.png"), np.roll(front, 8, axis=1))
    return stems


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_cli_overlays(tmp_path, synthetic_root, capsys):
    stems = _fake_predictions(synthetic_root, tmp_path / "pred")
    before = _digest(synthetic_root), _digest(tmp_path / "pred")
    assert main(["plot", "overlays", "--data", str(synthetic_root), "--predictions", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{s}_overlay.png" for s in stems]
    assert "wrote 2 overlays" in capsys.readouterr().out
    exact = cv2.imread(str(tmp_path / "out" / f"{stems[0]}_overlay.png"))[..., ::-1]
    colours = {tuple(c) for c in exact.reshape(-1, 3)}
    assert plots.OVERLAP_RGB in colours and plots.BBOX_RGB in colours  # _post used; bounding box drawn
    assert plots.LABEL_FRONT_RGB not in colours and plots.PRED_FRONT_RGB not in colours
    assert (_digest(synthetic_root), _digest(tmp_path / "pred")) == before
    assert main(["plot", "overlays", "--data", str(synthetic_root), "--predictions", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "one"), "--limit", "1"]) == 0
    assert len(list((tmp_path / "one").iterdir())) == 1


def test_cli_figures(tmp_path, caffe_256):
    csv = _write_csv(tmp_path / "fused" / "per_image.csv")
    assert main(["plot", "boxplot", "--csv", f"A={csv}", str(csv), "--by", "season",
                 "--out", str(tmp_path / "box.png")]) == 0
    assert main(["plot", "timeline", "--data", str(caffe_256), "--out", str(tmp_path / "timeline"),
                 "--formats", "png"]) == 0
    assert main(["plot", "retreat", "--data", str(caffe_256), "--glacier", "Crane", "--split", "train",
                 "--out", str(tmp_path / "crane.pdf")]) == 0
    _assert_written([tmp_path / n for n in ("box.png", "box.pdf", "timeline.png", "crane.png", "crane.pdf")])
    assert not (tmp_path / "timeline.pdf").exists()
    assert main(["plot", "boxplot", "--csv", f"A={csv}", "--no-baselines", "--out", str(tmp_path / "plain.png"),
                 "--formats", "png"]) == 0  # e.g. for results on synthetic data
    _assert_written([tmp_path / "plain.png"])


def test_cli_errors(tmp_path, caffe_256, capsys):
    bad_csv = _write_csv(tmp_path / "per_image.csv", header=CSV_HEADER.replace("mde_m", "mde"))
    (tmp_path / "empty").mkdir()
    cases = [
        (["plot", "boxplot", "--csv", f"x={bad_csv}", "--out", str(tmp_path / "b")],
         f"{bad_csv}: missing column(s) mde_m"),
        (["plot", "boxplot", "--csv", f"x={tmp_path / 'no.csv'}", "--out", str(tmp_path / "b")],
         "no.csv: file not found"),
        (["plot", "retreat", "--data", str(caffe_256), "--glacier", "JAC", "--out", str(tmp_path / "r")],
         f"{caffe_256}: no scenes of glacier 'JAC'"),
        (["plot", "overlays", "--data", str(caffe_256), "--predictions", str(tmp_path / "empty"),
          "--out", str(tmp_path / "o")], f"{tmp_path / 'empty'}: no <stem>_front_post.png"),
        (["plot", "timeline", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "t")],
         f"{tmp_path / 'empty'}: not a CaFFe root"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 1, argv
        assert message in capsys.readouterr().err
    assert not any(tmp_path.glob("[brot].*"))  # nothing written on failure
    with pytest.raises(SystemExit) as usage:
        main(["plot", "boxplot", "--csv", "=x.csv", "--out", str(tmp_path / "b")])
    assert usage.value.code == 2
