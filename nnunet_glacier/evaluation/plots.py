"""Figures: prediction overlays, MDE box plots, dataset timelines and front-retreat maps.

Every figure is a :class:`matplotlib.figure.Figure` built without ``pyplot``
(no screen, no global figure registry; rendering uses the Agg canvas) and
saved atomically by :func:`save_figure`, as PNG and PDF unless told one format.

Colour conventions, shared by the matplotlib figures and the cheap RGB overlays:

- fronts: label (true) front blue, predicted front yellow, both magenta;
  bounding box cyan
- zones: no information black, rock brown-grey, glacier white-ish, ocean blue,
  blended semi-transparently over the SAR image

Image coordinates are pixels: ``x`` = column, ``y`` = row, origin top left.
Distances (MDE) are in metres.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import cv2
import matplotlib.style
import numpy as np
from matplotlib import colormaps, ticker
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from nnunet_glacier.data import caffe
from nnunet_glacier.data.caffe import Sample, SceneName
from nnunet_glacier.data.labels import dilate
from nnunet_glacier.data.tasks import ZONE_LABELS
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation.figure_options import FORMATS, GROUP_COLUMNS
from nnunet_glacier.evaluation.paper import CAFFE_BASELINES_M
from nnunet_glacier.evaluation.per_image import read_per_image
from nnunet_glacier.utilities.atomic import atomic_path, write_png

PNG_DPI = 150

#: RGB colours (0..255) of the front overlay.
LABEL_FRONT_RGB = (0, 90, 255)
PRED_FRONT_RGB = (255, 230, 0)
OVERLAP_RGB = (255, 0, 255)
BBOX_RGB = (0, 255, 255)
#: RGB colour (0..255) of each zone class 0 NA, 1 rock, 2 glacier, 3 ocean.
ZONE_RGB = np.array([(0, 0, 0), (150, 115, 80), (235, 242, 255), (30, 100, 220)], dtype=np.uint8)
ZONE_ALPHA = 0.45

#: Box plots of at most this many images also show each image as a point.
FEW_IMAGES = 10

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_SENSOR_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")


def house_style(plot: Callable[P, R]) -> Callable[P, R]:
    """Draw with matplotlib's default style, whatever another library set globally.

    nnU-Net's training logger calls ``seaborn.set(font_scale=2.5)``, which would
    otherwise blow up every later figure of the same process.
    """
    @functools.wraps(plot)
    def styled(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.style.context("default"):
            return plot(*args, **kwargs)

    return styled


# --- saving ----------------------------------------------------------------------------------------------------

def save_figure(fig: Figure, out: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save ``fig`` atomically once per format (``"png"``, ``"pdf"``); returns the paths written.

    A ``.png`` or ``.pdf`` suffix of ``out`` is replaced by each format's;
    any other name gets the format's suffix appended.
    """
    out = Path(out)
    base = out.with_suffix("") if out.suffix.lower() in (".png", ".pdf") else out
    paths = []
    for fmt in formats:
        path = base.with_name(f"{base.name}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=PNG_DPI, format=fmt, bbox_inches="tight")
        paths.append(path)
    return paths


# --- overlays --------------------------------------------------------------------------------------------------

def front_thickness_px(shape: tuple[int, ...]) -> int:
    """Kernel size (px) to thicken one-pixel fronts so they stay visible: 1 up to ~450 px, then 1 per 300 px."""
    return max(1, round(max(shape[:2]) / 300))


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """A 2-D ``uint8`` grey image as an ``(H, W, 3)`` ``uint8`` RGB copy."""
    return np.repeat(np.asarray(image, dtype=np.uint8)[..., None], 3, axis=2)


def front_overlay_rgb(image: np.ndarray, label_front: np.ndarray | None = None,
                      pred_front: np.ndarray | None = None, *, bbox: caffe.BoundingBox | None = None,
                      thickness_px: int | None = None) -> np.ndarray:
    """Label and predicted fronts (and the bounding box) drawn on a grey SAR image.

    ``image`` is 2-D ``uint8``; fronts are masks of its shape or polylines
    (see :func:`front_raster`), either may be ``None``. Fronts are thickened
    with a ``thickness_px`` square kernel (default :func:`front_thickness_px`).
    Pixels of the label front only are blue, of the prediction only yellow,
    of both magenta; the box outline, ``thickness_px`` wide, is cyan, drawn
    under the fronts. Returns an ``(H, W, 3)`` ``uint8`` RGB array.
    """
    image = np.asarray(image)
    thickness = front_thickness_px(image.shape) if thickness_px is None else thickness_px
    rgb = grey_to_rgb(image)
    if bbox is not None:
        cv2.rectangle(rgb, (bbox.x_min, bbox.y_min), (bbox.x_max - 1, bbox.y_max - 1), BBOX_RGB, thickness)
    no_front = np.zeros(image.shape, dtype=bool)
    label = no_front if label_front is None else front_raster(label_front, image.shape, thickness)
    pred = no_front if pred_front is None else front_raster(pred_front, image.shape, thickness)
    rgb[label & ~pred] = LABEL_FRONT_RGB
    rgb[pred & ~label] = PRED_FRONT_RGB
    rgb[label & pred] = OVERLAP_RGB
    return rgb


def front_raster(front: np.ndarray, shape: tuple[int, int], thickness_px: int = 1) -> np.ndarray:
    """A front as a boolean mask of ``shape`` (rows, cols), thickened with a ``thickness_px`` kernel.

    ``front`` is either a mask of ``shape`` (non-zero on the front) or an
    ``(N, 2)`` polyline of ``(x, y)`` = (column, row) pixel coordinates in
    that image. Raises ``ValueError`` for anything else.
    """
    front = np.asarray(front)
    if front.shape == tuple(shape):
        return dilate(front, thickness_px).astype(bool)
    if front.ndim != 2 or front.shape[1] != 2:
        raise ValueError(f"a front must be a mask of the image's shape {tuple(shape)} or an (N, 2) polyline "
                         f"of (x, y) pixels, got shape {front.shape}")
    mask = np.zeros(shape, dtype=np.uint8)
    xy = np.round(front).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [xy], isClosed=False, color=1, thickness=thickness_px)
    return mask.astype(bool)


def zone_overlay_rgb(image: np.ndarray, zones: np.ndarray, alpha: float = ZONE_ALPHA) -> np.ndarray:
    """Zone classes (0 NA, 1 rock, 2 glacier, 3 ocean) blended over a grey SAR image.

    ``alpha`` is the zone colours' opacity (0..1). Returns ``(H, W, 3)`` ``uint8`` RGB.
    """
    if np.shape(zones) != np.shape(image):
        raise ValueError(f"zone map of shape {np.shape(zones)} does not match the image's {np.shape(image)}")
    blended = (1 - alpha) * grey_to_rgb(image) + alpha * ZONE_RGB[np.asarray(zones)]
    return np.round(blended).astype(np.uint8)


#: Scenes whose longer side exceeds this (pixels) are drawn from a copy reduced by a whole factor.
OVERLAY_MAX_PX = 2000


def overlay_reduction(shape: tuple[int, ...]) -> int:
    """The whole factor by which :func:`plot_overlay` reduces a scene: the smallest that brings its longer
    side to at most :data:`OVERLAY_MAX_PX` pixels (1 for smaller scenes)."""
    return max(1, math.ceil(max(shape[:2]) / OVERLAY_MAX_PX))


def reduce_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """A ``bool`` mask reduced by ``factor``: a pixel is set where any pixel of its ``factor`` x ``factor``
    block is (so one-pixel fronts stay); the result is ``ceil(rows / factor) x ceil(cols / factor)``."""
    mask = np.asarray(mask) != 0
    rows, cols = (-(-n // factor) for n in mask.shape)
    padded = np.zeros((rows * factor, cols * factor), dtype=bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    return np.asarray(padded.reshape(rows, factor, cols, factor).any(axis=(1, 3)))


def _reduced_overlay_inputs(factor: int, image: np.ndarray, fronts: Sequence[np.ndarray | None],
                            zones: np.ndarray | None, bbox: caffe.BoundingBox | None, thickness_px: int | None):
    """:func:`plot_overlay`'s inputs reduced by ``factor``: the image by area averaging, front masks by
    :func:`reduce_mask`, front polylines scaled, zones by nearest pixel, the box and a given thickness scaled."""
    rows, cols = (-(-n // factor) for n in image.shape)
    small = cv2.resize(np.asarray(image), (cols, rows), interpolation=cv2.INTER_AREA)
    small_fronts = [None if f is None else reduce_mask(f, factor) if np.shape(f) == image.shape
                    else np.asarray(f, dtype=float) / factor for f in fronts]
    small_zones = None if zones is None else np.asarray(zones)[::factor, ::factor]
    small_box = None if bbox is None else caffe.BoundingBox(
        bbox.x_min // factor, -(-bbox.x_max // factor), bbox.y_min // factor, -(-bbox.y_max // factor))
    thickness = None if thickness_px is None else max(1, round(thickness_px / factor))
    return small, small_fronts, small_zones, small_box, thickness


@house_style
def plot_overlay(image: np.ndarray, out: str | Path | None = None, *, label_front: np.ndarray | None = None,
                 pred_front: np.ndarray | None = None, zones: np.ndarray | None = None,
                 bbox: caffe.BoundingBox | None = None, stem: str = "", mde_m: float | None = None,
                 thickness_px: int | None = None, formats: Sequence[str] = FORMATS) -> Figure:
    """A figure of :func:`front_overlay_rgb` with a legend, plus a zone panel when ``zones`` is given.

    The title holds ``stem`` and, when given, the MDE in metres. Scenes
    larger than :data:`OVERLAY_MAX_PX` are drawn from a reduced copy
    (:func:`overlay_reduction`); the axes keep the scene's pixel
    coordinates. Saved to ``out`` (see :func:`save_figure`) unless ``out``
    is ``None``.
    """
    panels = 1 if zones is None else 2
    height, width = np.shape(image)
    factor = overlay_reduction((height, width))
    drawn_image, drawn_fronts, drawn_zones, drawn_box, thickness = (
        _reduced_overlay_inputs(factor, np.asarray(image), (label_front, pred_front), zones, bbox, thickness_px)
        if factor > 1 else (image, (label_front, pred_front), zones, bbox, thickness_px))
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)  # matplotlib's own for an unreduced image
    fig = Figure(figsize=(5.5 * panels, 5.5 * height / width + 0.9), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].imshow(front_overlay_rgb(drawn_image, *drawn_fronts, bbox=drawn_box, thickness_px=thickness),
                   extent=extent)
    legend = [(name, colour) for name, colour, drawn in (
        ("label front", LABEL_FRONT_RGB, label_front is not None),
        ("predicted front", PRED_FRONT_RGB, pred_front is not None),
        ("both", OVERLAP_RGB, label_front is not None and pred_front is not None)) if drawn]
    if bbox is not None:
        legend.append(("bounding box", BBOX_RGB))
    _patch_legend(axes[0], legend)
    axes[0].set_title("fronts")
    if zones is not None:
        assert drawn_zones is not None  # the zones, reduced or not
        axes[1].imshow(zone_overlay_rgb(drawn_image, drawn_zones), extent=extent)
        _patch_legend(axes[1], list(zip(ZONE_LABELS, ZONE_RGB.tolist())))
        axes[1].set_title("zones")
    for ax in axes:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    fig.suptitle(stem if mde_m is None else f"{stem}   MDE {mde_m:.0f} m")
    if out is not None:
        save_figure(fig, out, formats)
    return fig


def _patch_legend(ax: Axes, entries: Sequence[tuple[str, Sequence[int]]]) -> None:
    """A legend of colour patches below ``ax``; colours are RGB 0..255."""
    if not entries:
        return
    # matplotlib's ColorType leaves out the arrays of floats that colours may be (to_rgba takes them)
    handles = [Patch(facecolor=np.asarray(rgb) / 255, edgecolor="0.3", label=name)  # type: ignore[arg-type]
               for name, rgb in entries]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=min(len(handles), 4),
              fontsize="small", frameon=False)


def prediction_front(folder: Path, stem: str) -> Path | None:
    """``<stem>_front_post.png`` in ``folder`` if present, else ``<stem>_front.png``, else ``None``."""
    for name in (f"{stem}_front_post.png", f"{stem}_front.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_predictions(samples: Sequence[Sample], folder: str | Path) -> list[tuple[Sample, Path]]:
    """Pair scenes with their predicted front in ``folder`` (post-processed preferred); scenes without are left out.

    Raises :class:`InputError` naming ``folder`` if it is missing or holds no front of any scene.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such prediction folder")
    pairs = [(s, path) for s in samples if (path := prediction_front(folder, s.stem)) is not None]
    if not pairs:
        raise InputError(folder, f"no <stem>_front_post.png or <stem>_front.png for any of {len(samples)} scenes")
    return pairs


def write_overlays(pairs: Sequence[tuple[Sample, Path]], out_dir: str | Path) -> list[Path]:
    """Write ``<out_dir>/<stem>_overlay.png`` (:func:`front_overlay_rgb`) for each (scene, predicted front)."""
    written = []
    for sample, pred_path in pairs:
        loaded = caffe.load_sample(sample)
        pred = caffe.read_front(pred_path)
        if pred.shape != loaded.image.shape:
            raise InputError(pred_path, f"size {pred.shape[1]}x{pred.shape[0]} differs from image "
                                        f"{sample.image.name} ({loaded.image.shape[1]}x{loaded.image.shape[0]})")
        bbox = caffe.read_bbox(sample.bbox) if sample.bbox is not None else None
        rgb = front_overlay_rgb(loaded.image, loaded.front, pred, bbox=bbox)
        path = Path(out_dir) / f"{sample.stem}_overlay.png"
        write_png(path, rgb[..., ::-1])  # OpenCV writes BGR
        written.append(path)
    return written


# --- MDE box plots ---------------------------------------------------------------------------------------------

def _per_image_groups(path: Path, by: str) -> dict[str, dict[str, tuple[list[float], int]]]:
    """Per route and group of a per_image.csv: the MDEs (m) of images with a front, and how many have none.

    Raises :class:`InputError` naming the file as
    :func:`~nnunet_glacier.evaluation.per_image.read_per_image` does.
    """
    if by not in GROUP_COLUMNS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(GROUP_COLUMNS)}")
    column = GROUP_COLUMNS[by]
    groups: dict[str, dict[str, tuple[list[float], int]]] = {}
    for row in read_per_image(path, (column,)):
        of_route = groups.setdefault(row.route, {})
        name = _group_name(row.cells[column], by)
        values, n_no_front = of_route.setdefault(name, ([], 0))
        if row.mde_m is None:
            of_route[name] = (values, n_no_front + 1)
        else:
            values.append(row.mde_m)
    return groups


def read_mde(path: str | Path, by: str) -> dict[str, dict[str, list[float]]]:
    """Per-image MDEs (m) of a per_image.csv by route, then by group (``by`` of :data:`GROUP_COLUMNS`).

    Images with no front (empty ``mde_m``) are left out (:func:`read_no_front`
    counts them); a route whose images all lack a front has no group. Raises
    :class:`InputError` naming the file for a missing column, a short line,
    an MDE that is not a non-negative number, or no MDE at all.
    """
    path = Path(path)
    mdes = {route: {group: values for group, (values, _) in groups.items() if values}
            for route, groups in _per_image_groups(path, by).items()}
    if not any(mdes.values()):
        raise InputError(path, "no image with an MDE (every mde_m is empty)")
    return mdes


def read_no_front(path: str | Path, by: str) -> dict[str, dict[str, int]]:
    """How many images of a per_image.csv have no front, by route, then by group (groups with none left out)."""
    return {route: {group: n for group, (_, n) in groups.items() if n}
            for route, groups in _per_image_groups(Path(path), by).items()}


def _group_name(value: str, by: str) -> str:
    """A group's display name: resolutions as ``"20 m"``, anything else unchanged."""
    if by != "resolution":
        return value
    try:
        return f"{float(value):g} m"
    except ValueError:
        return value


def _series(csvs: Mapping[str, str | Path], by: str,
            read: Callable[[str | Path, str], dict[str, dict[str, T]]]) -> dict[str, dict[str, T]]:
    """One series per label of ``csvs`` (and per route if a file holds several), read with ``read``."""
    series = {}
    for label, path in csvs.items():
        routes = read(path, by)
        for route, groups in routes.items():
            series[label if len(routes) == 1 else f"{label} ({route})"] = groups
    return series


def mde_series(csvs: Mapping[str, str | Path], by: str) -> dict[str, dict[str, list[float]]]:
    """Read several per_image.csv files, one series per label (and per route if a file holds several)."""
    return _series(csvs, by, read_mde)


def no_front_series(csvs: Mapping[str, str | Path], by: str) -> dict[str, dict[str, int]]:
    """Images without a front per group of several per_image.csv files, labelled as by :func:`mde_series`."""
    return _series(csvs, by, read_no_front)


@house_style
def plot_mde_boxplot(series: Mapping[str, Mapping[str, Sequence[float]]], out: str | Path | None = None, *,
                     by: str = "glacier", baselines: Mapping[str, float] = CAFFE_BASELINES_M,
                     no_front: Mapping[str, Mapping[str, int]] | None = None, title: str | None = None,
                     formats: Sequence[str] = FORMATS) -> Figure:
    """Box plots of per-image MDE (m) on a log axis: per group, one box per series side by side.

    ``series`` maps a label (experiment, route) to ``{group: MDEs in metres}``;
    MDEs must be positive (the log axis clips others). Each box's tick reads
    ``n=<images>``, the group name stands below; a box of at most
    :data:`FEW_IMAGES` images also shows each image as a point. ``no_front``
    (label -> ``{group: images without a front}``, e.g. :func:`no_front_series`)
    is written above its groups as ``no front: n``, so that groups whose
    images all lack a front stay on the axis. ``baselines`` (label -> metres)
    are dashed reference lines, labelled with their value (pass ``{}`` for
    none, e.g. on synthetic data).
    ``title`` defaults to ``MDE per image by <by>``. Saved to ``out`` unless ``None``.
    """
    no_front = no_front or {}
    groups = sorted({g for groups in (*series.values(), *no_front.values()) for g in groups}, key=_group_sort_key)
    labels = list(dict.fromkeys([*series, *no_front]))
    width = 0.8 / max(len(labels), 1)
    fig = Figure(figsize=(max(6.0, 1.0 + len(groups) * (0.6 + 0.5 * len(labels))), 5), layout="constrained")
    ax = fig.subplots()
    colours = colormaps["tab10"]
    positions: list[float] = []
    counts: list[str] = []
    handles: list[Patch | Line2D] = []
    for j, label in enumerate(labels):
        by_group = series.get(label, {})
        handles.append(Patch(facecolor=colours(j % 10), alpha=0.8, label=label))
        for i, group in enumerate(groups):
            missing = no_front.get(label, {}).get(group, 0)
            if missing:
                ax.annotate(f"no front: {missing}", (i - 0.4 + width * (j + 0.5), 1.0),
                            xycoords=("data", "axes fraction"), xytext=(0, -4), textcoords="offset points",
                            ha="center", va="top", rotation=90, fontsize="x-small", color=colours(j % 10))
        boxes = [(i - 0.4 + width * (j + 0.5), by_group[g]) for i, g in enumerate(groups) if by_group.get(g)]
        if not boxes:
            continue
        x, data = zip(*boxes)
        artists = ax.boxplot(data, positions=x, widths=width * 0.85, patch_artist=True, manage_ticks=False,
                             medianprops={"color": "black"})
        for box in artists["boxes"]:
            box.set(facecolor=colours(j % 10), alpha=0.8)
        for (position, values), fliers in zip(boxes, artists["fliers"]):
            if len(values) <= FEW_IMAGES:  # every image as a point (its outliers among them)
                fliers.set_visible(False)
                ax.scatter(position + np.linspace(-0.25, 0.25, len(values)) * width, values, s=12, color="black",
                           zorder=3, linewidths=0)
        positions += x
        counts += [f"n={len(d)}" for d in data]
    for k, (label, metres) in enumerate(baselines.items()):
        handles.append(ax.axhline(metres, color="0.25", linestyle=("--", ":", "-.")[k % 3],
                                  label=f"{label} ({metres:g} m)"))
    ax.set_yscale("log", nonpositive="clip")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda metres, _: f"{metres:g}"))
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_ylabel("mean distance error (m)")
    ax.set_xticks(positions, counts, fontsize="small", rotation=90 if len(series) > 2 else 0)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    group_axis = ax.secondary_xaxis("bottom")
    group_axis.set_xticks(range(len(groups)), groups)
    group_axis.tick_params(axis="x", length=0, pad=32 if len(series) > 2 else 16)
    group_axis.set_xlabel(by)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or f"MDE per image by {by}")
    if out is not None:
        save_figure(fig, out, formats)
    return fig


def _group_sort_key(group: str) -> tuple[float, str]:
    """Numeric groups (``"20 m"``) in numeric order, then the others alphabetically."""
    try:
        return float(group.split()[0]), group
    except (ValueError, IndexError):
        return float("inf"), group


# --- dataset timeline ------------------------------------------------------------------------------------------

@house_style
def plot_timeline(scenes: Sequence[Sample | SceneName], out: str | Path | None = None, *,
                  formats: Sequence[str] = FORMATS) -> Figure:
    """Acquisition dates of scenes: one row per glacier, colour and marker per sensor.

    ``scenes`` are :class:`~nnunet_glacier.data.caffe.Sample` (e.g. from
    :func:`caffe.discover`; training scenes filled, test scenes hollow) or
    :class:`~nnunet_glacier.data.caffe.SceneName` (split unknown: filled). Sensors
    of a glacier sit on slightly offset lines so that they do not hide each other.
    Saved to ``out`` unless ``None``.
    """
    entries = [(s.name, s.split) if isinstance(s, Sample) else (s, None) for s in scenes]
    if not entries:
        raise ValueError("no scenes to plot")
    glaciers = sorted({name.glacier for name, _ in entries})
    sensors = sorted({name.sensor for name, _ in entries}, key=_sensor_sort_key)
    colours = colormaps["tab10"]
    fig = Figure(figsize=(10, 1.5 + 0.8 * len(glaciers)), layout="constrained")
    ax = fig.subplots()
    for k, sensor in enumerate(sensors):
        offset = (k - (len(sensors) - 1) / 2) * 0.5 / max(len(sensors), 1)
        for split in sorted({split or "" for _, split in entries}):
            names = [n for n, s in entries if n.sensor == sensor and (s or "") == split]
            if not names:
                continue
            colour = colours(k % 10)
            # matplotlib's stubs leave out the dates its date converter takes
            ax.scatter([n.date for n in names],  # type: ignore[arg-type]
                       [glaciers.index(n.glacier) + offset for n in names],
                       marker=_SENSOR_MARKERS[k % len(_SENSOR_MARKERS)], s=28, linewidths=1.2,
                       edgecolors=colour, facecolors="none" if split == "test" else colour)
    counts = {g: sum(name.glacier == g for name, _ in entries) for g in glaciers}
    ax.set_yticks(range(len(glaciers)), [f"{g} (n={counts[g]})" for g in glaciers])
    ax.set_ylim(-0.6, len(glaciers) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("acquisition date")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], linestyle="", marker=_SENSOR_MARKERS[k % len(_SENSOR_MARKERS)], color=colours(k % 10),
                      label=sensor) for k, sensor in enumerate(sensors)]
    if any(split == "test" for _, split in entries):
        handles += [Line2D([], [], linestyle="", marker="o", color="0.3", label="train"),
                    Line2D([], [], linestyle="", marker="o", markerfacecolor="none", color="0.3", label="test")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="sensor / split")
    ax.set_title(f"CaFFe scenes by glacier and sensor ({len(entries)} images)")
    if out is not None:
        save_figure(fig, out, formats)
    return fig


def _sensor_sort_key(sensor: str) -> tuple[int, str]:
    """CaFFe's sensors in :data:`caffe.SENSORS` order, unknown ones after them alphabetically."""
    return (caffe.SENSORS.index(sensor), "") if sensor in caffe.SENSORS else (len(caffe.SENSORS), sensor)


# --- front-retreat map -----------------------------------------------------------------------------------------

def select_glacier(samples: Sequence[Sample], glacier: str, where: str | Path) -> list[Sample]:
    """The samples of one glacier, by code (``"JAC"``) or full name (``"Jakobshavn Isbrae"``).

    Raises :class:`InputError` naming ``where`` and the glaciers present if there is none.
    """
    code = caffe.glacier_code(glacier)
    selected = [s for s in samples if s.name.glacier.lower() == code.lower()]
    if not selected:
        present = sorted({s.name.glacier for s in samples})
        raise InputError(where, f"no scenes of glacier {glacier!r}; glaciers present: {', '.join(present)}")
    return selected


def label_fronts(samples: Sequence[Sample], shape: tuple[int, int] | None = None) -> list[tuple[dt.date, np.ndarray]]:
    """(date, label front mask) of the samples that have a front label, in date order.

    With ``shape`` (rows, cols), fronts of another size are left out.
    """
    labelled = sorted((s for s in samples if s.front is not None), key=lambda s: (s.name.date, s.stem))
    fronts = [(s.name.date, caffe.read_front(front)) for s in labelled if (front := s.front) is not None]
    return [(date, front) for date, front in fronts if shape is None or front.shape == shape]


@house_style
def plot_retreat(fronts: Sequence[tuple[dt.date, np.ndarray]], background: np.ndarray | None,
                 out: str | Path | None = None, *, extent: tuple[float, float, float, float] | None = None,
                 title: str = "", cmap: str = "viridis", thickness_px: int | None = None,
                 outline: np.ndarray | None = None, outline_label: str = "box",
                 axis_labels: tuple[str, str] = ("x (px)", "y (px)"), formats: Sequence[str] = FORMATS) -> Figure:
    """All fronts of one glacier over a grey SAR image, coloured by date, with a date colour bar.

    ``fronts`` are (date, front) pairs, later fronts drawn on top. A front
    is either a mask on the background's pixel grid (drawn as pixels,
    thickened to ``thickness_px``, default :func:`front_thickness_px`) or an
    ``(N, 2)`` polyline of ``(x, y)`` in the plot's coordinates (drawn as a
    line). ``background`` is a 2-D ``uint8`` image (e.g. the latest scene),
    or ``None`` for none (polylines only). ``extent`` is the background's
    ``(left, right, bottom, top)`` in plot coordinates — map coordinates in
    metres, say; by default its pixel grid (pixel centres at integers, y
    down). ``outline``, an ``(N, 2)`` polyline in plot coordinates (a box or
    centre line), is drawn dashed red and labelled ``outline_label``. Saved
    to ``out`` unless ``None``.
    """
    if not fronts:
        raise ValueError("no fronts to plot")
    ordered = sorted(fronts, key=lambda item: item[0])
    days = mdates.date2num([date for date, _ in ordered])
    norm = Normalize(days.min() - 0.5, days.max() + 0.5)
    colour_map = colormaps[cmap]
    masks = [(day, front) for day, (_, front) in zip(days, ordered) if np.ndim(front) == 2 and
             background is not None and np.shape(front) == np.shape(background)]
    if background is not None:
        background = np.asarray(background)
        height, width = background.shape
        extent = (-0.5, width - 0.5, height - 0.5, -0.5) if extent is None else extent
    aspect = 1.0 if extent is None else abs((extent[2] - extent[3]) / (extent[1] - extent[0]))
    fig = Figure(figsize=(7.5, 6.5 * aspect + 0.8), layout="constrained")
    ax = fig.subplots()
    if background is not None:
        thickness = front_thickness_px(background.shape) if thickness_px is None else thickness_px
        layer = np.zeros((*background.shape, 4))
        for day, front in masks:
            layer[front_raster(front, background.shape, thickness)] = colour_map(norm(day))
        ax.imshow(background, cmap="gray", vmin=0, vmax=255, extent=extent)
        ax.imshow(layer, extent=extent)
    for day, (_, front) in zip(days, ordered):
        if not any(front is mask for _, mask in masks):
            ax.plot(*np.asarray(front).T, "-", color=colour_map(norm(day)), linewidth=1.5)
    if outline is not None:
        ax.plot(*np.asarray(outline).T, "--", color="red", linewidth=1.5, label=outline_label)
        ax.legend(loc="lower right", fontsize="small")
    if extent is not None:
        ax.set(xlim=extent[:2], ylim=extent[2:])
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")  # map coordinates in full, not as offsets
    colourbar = fig.colorbar(ScalarMappable(norm, colour_map), ax=ax, label="front date", shrink=0.9)
    locator = mdates.AutoDateLocator()
    colourbar.ax.yaxis.set_major_locator(locator)
    colourbar.ax.yaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title or f"{len(ordered)} fronts, {ordered[0][0]} to {ordered[-1][0]}")
    if out is not None:
        save_figure(fig, out, formats)
    return fig


@house_style
def plot_front_positions(dates: Sequence[dt.date], change_m: Sequence[float], flagged: Sequence[bool],
                         out: str | Path | None = None, *, title: str = "",
                         formats: Sequence[str] = FORMATS) -> Figure:
    """Front position change (m) over time: one marker per scene, hollow where ``flagged`` (check by hand).

    Scenes without a position (NaN) are left out; a line joins the others in
    date order. Saved to ``out`` unless ``None``.
    """
    known = [(d, c, f) for d, c, f in sorted(zip(dates, change_m, flagged)) if math.isfinite(c)]
    if not known:
        raise ValueError("no front positions to plot")
    days, change, flag = zip(*known)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(days, change, "-", color="0.6", linewidth=1, zorder=1)
    ok = [i for i, f in enumerate(flag) if not f]
    check = [i for i, f in enumerate(flag) if f]
    ax.scatter([days[i] for i in ok], [change[i] for i in ok], color="C0", zorder=2, label="front")
    if check:
        ax.scatter([days[i] for i in check], [change[i] for i in check], facecolors="none", edgecolors="C3",
                   zorder=2, label="needs check (quality.csv)")
    ax.axhline(0, color="0.3", linewidth=0.8)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("position change since first scene (m)\n(positive = advance)")
    ax.set_title(title or f"front position change, {days[0]} to {days[-1]}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if out is not None:
        save_figure(fig, out, formats)
    return fig


def plot_label_retreat(samples: Sequence[Sample], glacier: str, out: str | Path | None = None, *,
                       where: str | Path = "", background_stem: str | None = None, all_sensors: bool = False,
                       formats: Sequence[str] = FORMATS) -> Figure:
    """:func:`plot_retreat` of one glacier's label fronts over its latest scene (or ``background_stem``).

    CaFFe's images of one glacier are not co-registered across sensors: each
    sensor's scenes have their own extent and pixel grid. So by default only
    fronts of the background's sensor are drawn; ``all_sensors`` draws every
    front (whose pixel positions then need not match the ground). Fronts of
    another image size than the background are always left out. Errors name
    ``where`` (the CaFFe root).
    """
    scenes = select_glacier(samples, glacier, where)
    chosen = max(scenes, key=lambda s: (s.name.date, s.stem)) if background_stem is None else next(
        (s for s in scenes if s.stem == background_stem), None)
    if chosen is None:
        raise InputError(where, f"no scene {background_stem!r} of glacier {glacier!r}")
    background = caffe.read_grey(chosen.image)
    drawn = scenes if all_sensors else [s for s in scenes if s.name.sensor == chosen.name.sensor]
    fronts = label_fronts(drawn, background.shape)
    sensors = "all sensors" if all_sensors else chosen.name.sensor
    if not fronts:
        raise InputError(where, f"no front labels of {glacier} ({sensors}) of the background's size "
                                f"{background.shape[1]}x{background.shape[0]} px")
    title = (f"{chosen.name.glacier} ({sensors}): {len(fronts)} label fronts, {fronts[0][0]} to {fronts[-1][0]}\n"
             f"background {chosen.stem}")
    return plot_retreat(fronts, background, out, title=title, formats=formats)
