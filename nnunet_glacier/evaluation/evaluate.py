"""Benchmark-exact evaluation of a predictions folder against a CaFFe root.

A predictions folder holds per-scene PNGs in CaFFe pixel values, named by the
task's suffix (``tasks.TASKS``); any subset may be present::

    <stem>_zones.png   zone map: 0 NA, 64 rock, 127 glacier, 254 ocean   -> route "zone"
    <stem>_front.png   front-task map: 255 front (a few px wide), 0       -> route "front"
    <stem>_fused.png   fused map: zone values plus 255 = front class      -> route "fused"

Every route whose files are present is evaluated (post-processing in
:mod:`nnunet_glacier.postprocessing.postprocess`, metrics in :mod:`nnunet_glacier.evaluation.metrics`):
the post-processed front, with predictions outside the scene's bounding box
removed, gives the MDE against the label front; the route's zone map gives
the zone metrics against the label zones:

- zone route: the raw (argmax) zone map, as in the CaFFe reference
  (clean-up only serves front extraction)
- fused route: :func:`~nnunet_glacier.postprocessing.postprocess.fused_to_zones` of the
  fused map (front class -> ocean, glacier dilated), before clean-up, i.e.
  the zone map the fused model implies, on the same footing as the zone route
- front route: no zone metrics

On request only (``extra_routes``; the benchmark's routes stay as above), routes
of :data:`~nnunet_glacier.postprocessing.postprocess.EXTRA_ROUTES` that read the fused map
differently: ``fused_split`` (the front band split down its middle, no glacier
dilation, then the zone route; its zone map is the split one) and
``fused_front`` (the front class through the front route).

Outputs (written atomically into ``out``)::

    summary.json       settings, missing predictions, and per route the metrics
                       overall and by glacier, season, sensor, resolution, glacier x season
    per_image.csv      one row per scene and route (:mod:`~nnunet_glacier.evaluation.per_image`)
    <stem>_front_post.png          post-processed fronts (0/255) of the primary route
    <route>/<stem>_front_post.png  ... of the other routes

The primary route is the first present of :data:`~nnunet_glacier.postprocessing.postprocess.ROUTES`
(fused, zone, front). Distances are in metres; pixel sizes in metres per pixel.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nnunet_glacier.data import caffe
from nnunet_glacier.data.caffe import Sample, dataset_json_file, recorded_pixel_sizes, without_apple_double
from nnunet_glacier.data.tasks import TASKS, ZONE_CLASSES
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation import metrics
from nnunet_glacier.evaluation.per_image import PER_IMAGE_COLUMNS, PER_IMAGE_CSV, per_image_text
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.postprocessing.postprocess import EXTRA_ROUTES, ROUTES, PostprocessSettings, route_task
from nnunet_glacier.utilities.atomic import write_json, write_png, write_text
from nnunet_glacier.utilities.csv_tables import number_cell

POST_SUFFIX = "_front_post"

#: Every route in the order results are listed: the benchmark's, then the extra ones (only on request).
ALL_ROUTES = (*ROUTES, *EXTRA_ROUTES)

#: Breakdown name -> the group of a scene.
BREAKDOWNS: dict[str, Callable[[Sample], str]] = {
    "glacier": lambda s: s.name.glacier,
    "season": lambda s: s.name.season,
    "sensor": lambda s: s.name.sensor,
    "resolution": lambda s: f"{s.name.resolution_m:g}",
    "glacier_season": lambda s: f"{s.name.glacier}/{s.name.season}",
}


@dataclass(frozen=True)
class ImageResult:
    """One scene evaluated along one route; ``zones`` is ``None`` for the front route."""

    sample: Sample
    route: str
    front: metrics.FrontError
    zones: metrics.ZoneScores | None

    def row(self) -> dict[str, Any]:
        """This result as a per_image.csv row (keys :data:`~nnunet_glacier.evaluation.per_image.PER_IMAGE_COLUMNS`;
        NaN = undefined)."""
        name = self.sample.name
        row: dict[str, Any] = {
            "stem": name.stem, "glacier": name.glacier, "date": name.date.isoformat(), "season": name.season,
            "sensor": name.sensor, "resolution_m": name.resolution_m, "pixel_size_m": self.sample.pixel_size_m,
            "route": self.route, "n_pred_px": self.front.n_pred_px, "n_true_px": self.front.n_true_px,
            "mde_m": self.front.mde_m, "no_front": int(not self.front.has_front),
        }
        for score in metrics.ZONE_SCORES:
            row[f"{score}_macro"] = self.zones.macro(score) if self.zones else math.nan
        for index, zone in enumerate(ZONE_CLASSES):
            row[f"iou_{zone}"] = float(self.zones.iou[index]) if self.zones else math.nan
        return {column: row[column] for column in PER_IMAGE_COLUMNS}


@dataclass(frozen=True)
class SceneJob:
    """What one worker evaluates: a scene, its prediction file per route, and where to write fronts."""

    sample: Sample
    predictions: dict[str, Path]
    settings: PostprocessSettings
    fronts_dirs: dict[str, Path] | None


@dataclass(frozen=True)
class Evaluation:
    """The per-image results and the summary written to ``out``."""

    results: list[ImageResult]
    summary: dict[str, Any]
    out: Path


# --- matching predictions to scenes ----------------------------------------------------------------------------

def match_predictions(folder: Path, samples: Sequence[Sample], split: str) -> dict[str, dict[str, Path]]:
    """Map each scene's stem to its prediction file per route (scenes without any are left out).

    Other files of ``folder`` (e.g. ``_boundary.png``, ``_front_post.png``)
    are ignored. Raises :class:`InputError` for a prediction without a
    matching scene and for a folder with no prediction at all.
    """
    if not folder.is_dir():
        raise InputError(folder, "predictions folder not found")
    scenes = {s.stem for s in samples}
    matched: dict[str, dict[str, Path]] = {}
    for path in without_apple_double(sorted(folder.glob("*.png"))):
        for route in ROUTES:
            stem = path.name.removesuffix(f"{TASKS[route].suffix}.png")
            if stem == path.name:
                continue
            if stem not in scenes:
                raise InputError(path, f"prediction without a matching scene in the {split} split of the CaFFe "
                                       f"root (wrong --data or --split?)")
            matched.setdefault(stem, {})[route] = path
    if not matched:
        suffixes = ", ".join(f"<stem>{TASKS[r].suffix}.png" for r in ROUTES)
        raise InputError(folder, f"no predictions found (expected {suffixes})")
    return matched


# --- one scene -------------------------------------------------------------------------------------------------

def _check_size(path: Path, array: np.ndarray, reference: Path, shape: tuple[int, ...]) -> None:
    """Raise :class:`InputError` naming ``path`` if ``array`` is not of ``shape`` (that of the file ``reference``)."""
    if array.shape != shape:
        raise InputError(path, f"size {array.shape[1]}x{array.shape[0]} differs from {reference.name} "
                               f"({shape[1]}x{shape[0]})")


def evaluate_scene(job: SceneJob) -> list[ImageResult]:
    """Evaluate one scene along every route it has a prediction for (in :data:`ALL_ROUTES` order)."""
    sample = job.sample
    # evaluate_predictions discovers the scenes with require_labels: every one has its labels
    assert sample.zones is not None and sample.front is not None, sample.image
    true_zones = caffe.read_zones(sample.zones)
    true_front = caffe.read_front(sample.front)
    _check_size(sample.front, true_front, sample.zones, true_zones.shape)
    box = caffe.read_bbox(sample.bbox) if sample.bbox is not None else None
    results = []
    for route in (r for r in ALL_ROUTES if r in job.predictions):
        path = job.predictions[route]
        class_map = caffe.read_label(path, route_task(route))
        _check_size(path, class_map, sample.zones, true_zones.shape)
        front, zones = postprocess.route_front_and_zones(route, class_map, sample.pixel_size_m, job.settings)
        front = postprocess.apply_bounding_box(front, box)
        if job.fronts_dirs is not None:
            write_png(job.fronts_dirs[route] / f"{sample.stem}{POST_SUFFIX}.png", front.astype(np.uint8) * 255)
        results.append(ImageResult(sample, route, metrics.front_error(front, true_front, sample.pixel_size_m),
                                   None if zones is None else metrics.zone_scores(true_zones, zones)))
    return results


def _run_jobs(jobs: list[SceneJob], workers: int | None, progress: bool) -> list[ImageResult]:
    workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1)
    bar = {"total": len(jobs), "desc": "evaluate", "unit": "scene", "disable": not progress}
    # the bars are closed (with) before an error is printed, so the error line is a line of its own
    if workers <= 1:
        with tqdm(map(evaluate_scene, jobs), **bar) as per_scene_results:
            per_scene = list(per_scene_results)
    else:
        with ProcessPoolExecutor(workers) as pool, \
                tqdm(pool.map(evaluate_scene, jobs, chunksize=2), **bar) as per_scene_results:
            per_scene = list(per_scene_results)
    return [result for results in per_scene for result in results]


# --- the whole folder ------------------------------------------------------------------------------------------

def fronts_dirs(out: Path, routes: Sequence[str]) -> dict[str, Path]:
    """Where each route's post-processed fronts go: the primary (first) route in ``out``, others in ``out/<route>``."""
    return {route: out if index == 0 else out / route for index, route in enumerate(routes)}


def pixel_size_source(pixel_size: float | None, dataset: str | Path | None) -> tuple[caffe.PixelSize, dict[str, Any]]:
    """The pixel sizes to evaluate with, and their source for summary.json's settings.

    ``pixel_size`` (metres, for every scene) wins; else the sizes export
    recorded in the raw ``dataset`` (:func:`~nnunet_glacier.data.caffe.recorded_pixel_sizes`);
    else each CaFFe name's resolution.
    """
    if pixel_size is not None:
        return float(pixel_size), {"pixel_size_source": "option", "pixel_size_m": float(pixel_size)}
    if dataset is not None:
        return recorded_pixel_sizes(dataset), {"pixel_size_source": "dataset", "pixel_size_dataset": str(dataset)}
    return None, {"pixel_size_source": "name"}


def _check_recorded(pixel_sizes: caffe.PixelSize, dataset: str | Path | None, stems: Sequence[str]) -> None:
    """Raise :class:`InputError` if recorded sizes lack an evaluated scene (a dataset of another CaFFe root)."""
    if isinstance(pixel_sizes, Mapping):
        assert dataset is not None  # only a dataset records sizes per scene (pixel_size_source)
        missing = [stem for stem in stems if stem not in pixel_sizes]
        if missing:
            raise InputError(dataset_json_file(dataset), f"no pixel size recorded for {len(missing)} evaluated "
                                                         f"scene(s), e.g. {missing[0]}: exported from another "
                                                         "CaFFe root?")


def check_extra_routes(routes: Sequence[str]) -> None:
    """Refuse names that are no extra route (of :data:`~nnunet_glacier.postprocessing.postprocess.EXTRA_ROUTES`)
    with a :class:`ValueError` naming them and the extra routes; the one check of ``extra_routes`` (the command
    line's ``--extra-routes`` included)."""
    unknown = sorted(set(routes) - set(EXTRA_ROUTES))
    if unknown:
        raise ValueError(f"unknown extra route(s) {', '.join(unknown)}; extra routes are {', '.join(EXTRA_ROUTES)}")


def evaluate_predictions(predictions: str | Path, data: str | Path, *, split: str = "test",
                         out: str | Path | None = None, pixel_size: float | None = None,
                         dataset: str | Path | None = None, save_fronts: bool = True,
                         settings: PostprocessSettings = PostprocessSettings(), extra_routes: Sequence[str] = (),
                         workers: int | None = None, progress: bool = True) -> Evaluation:
    """Evaluate every route present in ``predictions`` against the ``split`` scenes of the CaFFe root ``data``.

    ``out`` defaults to ``<predictions>/evaluation``. Pixel sizes: see
    :func:`pixel_size_source` (``pixel_size`` in metres, else those recorded
    in the exported raw ``dataset``, else the names'); summary.json says which.
    ``extra_routes`` (of :data:`~nnunet_glacier.postprocessing.postprocess.EXTRA_ROUTES`)
    are evaluated too where their task's prediction is present.
    ``workers`` processes (default: all cores). Writes summary.json,
    per_image.csv and (unless ``save_fronts`` is false) the post-processed
    fronts; see the module docstring.
    """
    check_extra_routes(extra_routes)
    predictions = Path(predictions)
    out = Path(out) if out is not None else predictions / "evaluation"
    sizes, source = pixel_size_source(pixel_size, dataset)
    samples = caffe.discover(data, (split,), pixel_size=sizes)
    matched = match_predictions(predictions, samples, split)
    _check_recorded(sizes, dataset, list(matched))
    for files in matched.values():
        files.update({extra: files[route_task(extra)] for extra in extra_routes if route_task(extra) in files})
    routes = [r for r in ALL_ROUTES if any(r in files for files in matched.values())]
    dirs = fronts_dirs(out, routes) if save_fronts else None
    jobs = [SceneJob(s, matched[s.stem], settings, dirs) for s in samples if s.stem in matched]
    results = _run_jobs(jobs, workers, progress)
    used = {"min_front_length_m": settings.min_length_m, "fused_glacier_dilation_px": settings.fused_dilation_px,
            "pixel_size_m": None, **source, "bounding_boxes": sum(s.bbox is not None for s in samples)}
    summary = {"predictions": str(predictions), "data": str(data), "split": split, "settings": used,
               "fronts_folders": {r: str(d.relative_to(out)) for r, d in dirs.items()} if dirs else None,
               } | summarise(results, routes, samples, matched)
    write_json(out / "summary.json", summary)
    write_text(out / PER_IMAGE_CSV, per_image_csv(results))
    return Evaluation(results, summary, out)


# --- summaries and tables --------------------------------------------------------------------------------------

def _finite_or_none(value: float) -> float | None:
    """NaN as ``None`` (JSON ``null``)."""
    return None if math.isnan(value) else float(value)


def group_summary(results: Sequence[ImageResult]) -> dict[str, Any]:
    """MDEs (m; pooled, mean, median), image and no-front counts, and zone means (for zone routes)."""
    fronts = metrics.summarise_fronts([r.front for r in results])
    summary: dict[str, Any] = {"n_images": fronts.n_images, "no_front": fronts.no_front,
                               "mde_pooled_m": _finite_or_none(fronts.mde_pooled_m),
                               "mde_mean_m": _finite_or_none(fronts.mde_mean_m),
                               "mde_median_m": _finite_or_none(fronts.mde_median_m)}
    zones = [r.zones for r in results if r.zones is not None]
    if zones:
        summary |= {k: _finite_or_none(v) for k, v in metrics.summarise_zones(zones).items()}
    return summary


def summarise(results: Sequence[ImageResult], routes: Sequence[str], samples: Sequence[Sample],
              matched: Mapping[str, Mapping[str, Path]]) -> dict[str, Any]:
    """Per route: missing predictions, the overall summary and every breakdown of :data:`BREAKDOWNS`."""
    summary: dict[str, Any] = {"n_scenes": len(samples), "routes": {}}
    for route in routes:
        of_route = [r for r in results if r.route == route]
        missing = [s.stem for s in samples if route not in matched.get(s.stem, {})]
        entry: dict[str, Any] = {"missing": missing, "overall": group_summary(of_route)}
        for breakdown, group_of in BREAKDOWNS.items():
            groups: dict[str, list[ImageResult]] = {}
            for result in of_route:
                groups.setdefault(group_of(result.sample), []).append(result)
            entry[f"by_{breakdown}"] = {g: group_summary(groups[g]) for g in sorted(groups)}
        summary["routes"][route] = entry
    return summary


def per_image_csv(results: Sequence[ImageResult]) -> str:
    """The per_image.csv text of ``results``: by route (:data:`ALL_ROUTES` order), then by stem."""
    ordered = sorted(results, key=lambda r: (ALL_ROUTES.index(r.route), r.sample.stem))
    return per_image_text(r.row() for r in ordered)


def format_tables(summary: Mapping[str, Any]) -> str:
    """Plain-text tables of a summary: per route, overall and every breakdown (MDE in metres)."""
    header = f"{'group':<28}{'n':>5}{'no front':>10}{'MDE pooled':>12}{'MDE mean':>10}{'MDE median':>12}{'IoU':>7}"
    lines = []
    for route, entry in summary["routes"].items():
        missing = len(entry["missing"])
        lines += ["", f"route {route}: {summary['n_scenes'] - missing} of {summary['n_scenes']} "
                      f"{summary['split']} scenes predicted (MDE in m, IoU = macro zone IoU)", header]
        groups = [("all", entry["overall"])]
        groups += [(f"{b.replace('_', ' x ')} {g}", s) for b in BREAKDOWNS for g, s in entry[f"by_{b}"].items()]
        for label, s in groups:
            lines.append(f"{label:<28}{s['n_images']:>5}{s['no_front']:>10}{number_cell(s['mde_pooled_m'], 1):>12}"
                         f"{number_cell(s['mde_mean_m'], 1):>10}{number_cell(s['mde_median_m'], 1):>12}"
                         f"{number_cell(s.get('iou_macro'), 3):>7}")
    return "\n".join(lines).lstrip("\n")
