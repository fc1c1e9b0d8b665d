"""Calving fronts for new scenes: a trained model over PNG or GeoTIFF scenes, GIS-ready outputs, quality flags.

For every scene (see :mod:`nnunet_glacier.field.geo` for reading, pixel sizes and
no-data) the folds' ensemble (mean of class probabilities,
:class:`~nnunet_glacier.nnunet.predict.GlacierPredictor`) is post-processed
along one route, chosen by the model's tasks: ``fused`` for a fused-label
model, else ``zone`` when the model has a zone task (the route of the
paper's best results), else ``front`` (see :mod:`nnunet_glacier.postprocessing.postprocess`;
fronts of ``<= min_length_m`` metres are dropped, CaFFe's 750 m by default).
The routes are no-data aware: the scene's no-data is NA in the zone mask,
and no front pixel lies within ``postprocess.EDGE_MARGIN_PX`` pixels of
no-data or of the image border.

Outputs in ``OUT`` per scene (rasters as Cloud-Optimized GeoTIFFs with the
input's CRS and transform, declared nodata, colour table and class names
when it was georeferenced, PNG otherwise; see :func:`geo.write_raster`)::

    <stem>_zones.tif|png     cleaned zone mask: 0 NA (incl. no-data; the nodata value), 64 rock, 127 glacier,
                             254 ocean (not for front-only models)
    <stem>_front.tif|png     post-processed one-pixel front: 255 front, 0 elsewhere, 127 no data (nodata value)
    <stem>_uncertainty.tif   with ``OutputOptions.uncertainty``: normalised entropy of the ensemble's class
                             probabilities of the route's task, 0 (certain) .. 1 (all classes equally likely),
                             float32, NaN on no-data (:func:`~nnunet_glacier.nnunet.uncertainty.normalised_entropy`)
    <stem>_front.geojson     the front as LineStrings, one per segment, vertices in order along it (in the
                             scene's CRS, or with ``OutputOptions.rfc7946`` in WGS84 longitude, latitude)
    <stem>_overlay.png       front and zones drawn on the scene
    <stem>_detect.json       the scene's record (written last; see below)

and for the whole folder, rebuilt from every record in ``OUT`` after each run (also an interrupted one)::

    quality.csv              one row per scene flagging scenes to check by hand (:mod:`nnunet_glacier.field.quality`)
    fronts.gpkg              GeoPackage, one feature per scene (front as MultiLineString, :data:`GPKG_COLUMNS`)
                             in layer ``fronts`` (see :func:`front_layers` for scenes in other CRSs)

Scene checks (:func:`scene_problems`, flags of ``quality.csv``): a scene
without contrast (:func:`geo.lacks_contrast`, e.g. a constant -10 dB
raster) gets no front, and one whose CaFFe-name resolution disagrees with
its GeoTIFF grid (:func:`geo.resolution_mismatch`) is flagged; both warn.

Time series. A model with temporal context (its export recorded
``previous`` / ``next`` acquisitions, ``GlacierPredictor.temporal``) gets
each scene with its context acquisitions as further input channels, found
among the scenes and the ``context`` files of the run (see
:mod:`nnunet_glacier.field.series` for the dates, glaciers, selection and
reprojection onto the scene's grid); the record lists them (``context``) and
``quality.csv`` counts them (``context_found``; ``no_context`` when none was
found). Models without temporal context see the scene alone, as ever.

Re-runs. A scene's record holds what it was made from
(:mod:`nnunet_glacier.utilities.provenance`): the stamp of its input file and
:meth:`SceneSettings.made_with` — the predictor's ``made_from()`` (model,
folds, checkpoints, sliding window), the pixel-size options, the glacier
name, the post-processing, output and no-data options and the thresholds
of the scene checks (a change of any of them redoes every scene, even
those it does not affect); with temporal context also its context files,
in channel order and stamped (:func:`scene_inputs`), so that a context file
edited, added or removed redoes just the scenes whose context it changes.
A scene is skipped only while its record is current and its outputs are
present; otherwise the old record and every output it lists are removed
and the scene is detected again. The quality thresholds (:class:`~nnunet_glacier.field.quality.QualitySettings`) only shape
``quality.csv``, which every run rebuilds, and redo no scene.

Inputs: two scenes with one stem are refused before any work (their
outputs would overwrite each other), and with ``OUT`` equal to the input
folder detect's own outputs there are never read as scenes
(:func:`scenes_to_detect`). Temporaries a killed run left in ``OUT`` are
removed at the start (:func:`~nnunet_glacier.utilities.atomic.remove_stale_temporaries`).

Concurrent runs on one ``OUT`` share the work: each scene is detected under
its own lock (:func:`~nnunet_glacier.utilities.locks.exclusive` on its record) and
skipped by whoever finds its record current inside the lock; a run first
does the scenes no other run holds, then waits for the rest. Every output is
written atomically, so no reader sees a half-written file.
"""
from __future__ import annotations

import json
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from nnunet_glacier.data.tasks import TASKS, ZONE_LABELS
from nnunet_glacier.errors import InputError, problem_of
from nnunet_glacier.evaluation.plots import PRED_FRONT_RGB, ZONE_RGB, plot_overlay
from nnunet_glacier.field import geo, series
from nnunet_glacier.field.models import model_label
from nnunet_glacier.field.quality import (
    QUALITY_CSV,
    QUALITY_FLAGS,
    SCENE_PROBLEMS,
    QualitySettings,
    quality_csv,
    quality_rows,
)
from nnunet_glacier.field.series import UNKNOWN_GLACIER, SeriesContext
from nnunet_glacier.nnunet.prediction_types import RunReport, ScenePrediction
from nnunet_glacier.nnunet.uncertainty import mean_over
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.postprocessing.postprocess import PostprocessSettings, choose_route, route_front_and_zones
from nnunet_glacier.utilities import provenance
from nnunet_glacier.utilities.atomic import remove_stale_temporaries, write_json, write_text
from nnunet_glacier.utilities.locks import exclusive

if TYPE_CHECKING:  # the predictor (torch, nnU-Net) is only imported by whoever builds one
    from nnunet_glacier.nnunet.predict import GlacierPredictor

RECORD_SUFFIX = "_detect.json"
#: Version of the scene records' contents; records of another version are redone (and not read).
RECORD_FORMAT = 3
#: What follows the stem in the names of the per-scene outputs (``<stem><suffix>.<ext>``).
ZONES_SUFFIX, FRONT_SUFFIX, UNCERTAINTY_SUFFIX, OVERLAY_SUFFIX = "_zones", "_front", "_uncertainty", "_overlay"
OUTPUT_SUFFIXES = (ZONES_SUFFIX, FRONT_SUFFIX, UNCERTAINTY_SUFFIX, OVERLAY_SUFFIX)


def ocean_direction(zones: np.ndarray | None, front: np.ndarray, scene: geo.GeoScene) -> list[float] | None:
    """Unit vector (map coordinates) from the front's centroid towards the ocean's, or ``None``."""
    if zones is None or not front.any() or not (zones == 3).any():
        return None
    centroids = [np.argwhere(mask).mean(axis=0)[::-1] + 0.5 for mask in (front, zones == 3)]
    start, end = scene.pixel_to_map(np.array(centroids))
    vector = end - start
    norm = float(np.hypot(*vector))
    return None if norm == 0 else (vector / norm).tolist()


@dataclass(frozen=True)
class SceneFront:
    """The post-processed result of one scene.

    ``zones``: cleaned zone classes with no-data as NA (``None`` for
    front-only models); ``front``: ``bool`` front mask; ``lines_px``:
    ordered front lines in pixel coordinates (:func:`geo.pixel_lines`);
    ``disagreement``: the folds' disagreement on the front (the mean over
    front pixels of :func:`~nnunet_glacier.nnunet.uncertainty.fold_disagreement`,
    ``None`` for one fold or no front); ``uncertainty``: ``float32``
    :func:`~nnunet_glacier.nnunet.uncertainty.normalised_entropy` of the
    ensemble's probabilities of the route's task, NaN on no-data; ``touches_nodata`` / ``touches_border``: the front runs on
    into no-data / out of the image (:func:`postprocess.front_touches_edge`).
    """

    zones: np.ndarray | None
    front: np.ndarray
    lines_px: list[np.ndarray]
    disagreement: float | None
    uncertainty: np.ndarray
    touches_nodata: bool
    touches_border: bool


def scene_front(scene: geo.GeoScene, prediction: ScenePrediction, route: str,
                settings: PostprocessSettings) -> SceneFront:
    """Post-process a scene's ensemble prediction along ``route``, no-data aware, with its uncertainty.

    ``prediction`` must hold the disagreement and uncertainty maps of the
    route's task (``GlacierPredictor.predict(..., measure=[route])``).
    """
    nodata = scene.nodata_mask
    front, zones = route_front_and_zones(route, prediction.class_maps[route], scene.pixel_size_m, settings, nodata)
    if zones is not None:
        zones = postprocess.clean_zones(zones, nodata)
    lines_px = geo.pixel_lines(postprocess.ordered_paths(front))
    disagreement = mean_over(prediction.disagreement.get(route), front)
    uncertainty = prediction.uncertainty[route]
    uncertainty[nodata] = np.nan
    return SceneFront(zones, front, lines_px, disagreement, uncertainty,
                      *postprocess.front_touches_edge(front, nodata))


def scene_record(scene: geo.GeoScene, result: SceneFront, route: str, predictor: GlacierPredictor,
                 settings: SceneSettings, made_from: dict[str, Any], problems: dict[str, str | None],
                 outputs: dict[str, str], *, context: SeriesContext | None = None) -> dict[str, Any]:
    """The JSON record of a detected scene (what ``quality.csv``, ``fronts.gpkg`` and ``retreat`` read).

    Front lines are kept in pixel coordinates (``front_lines_px``, ``x =
    column + 0.5``, ``y = row + 0.5``), which with ``transform`` and the
    CRS (``coordinates``) place them on the map. ``made_from``: the
    scene's made-from record (:func:`scene_made_from`); ``problems``: the
    :data:`SCENE_PROBLEMS` flags' messages (``None`` = not flagged).
    ``date`` and ``date_source`` are :func:`series.acquisition_date`'s;
    ``context``: a temporal model's context acquisitions
    (:meth:`SeriesContext.record`), ``None`` for a model without (and in
    records written before there were temporal models).
    """
    date, date_source = series.acquisition_date(scene.path)
    lines = [scene.pixel_to_map(line) for line in result.lines_px]
    return {
        "format": RECORD_FORMAT,
        "stem": scene.stem,
        "input": str(scene.path.resolve()),
        "model": str(predictor.model_dir.resolve()),
        "model_name": model_label(predictor.model_dir),
        "glacier": scene.name.glacier if scene.name is not None else (settings.glacier or UNKNOWN_GLACIER),
        "date": date.isoformat() if date is not None else None,
        "date_source": date_source,
        "sensor": scene.name.sensor if scene.name is not None else None,
        "shape": list(scene.image.shape),
        "coordinates": geo.crs_description(scene),
        "transform": list(tuple(scene.transform)[:6]) if scene.transform is not None else None,
        "pixel_size_m": scene.pixel_size_m,
        "pixel_size_source": scene.pixel_size_source,
        "grid_pixel_size_m": scene.grid_pixel_size_m,
        "nodata_fraction": float(scene.nodata_mask.mean()),
        "route": route,
        "folds": list(predictor.folds),
        "n_segments": len(lines),
        "front_length_m": sum(geo.line_length_m(line, scene) for line in lines),
        "disagreement": result.disagreement,
        "touches_nodata": result.touches_nodata,
        "touches_border": result.touches_border,
        **{flag: problems[flag] is not None for flag in SCENE_PROBLEMS},
        "problems": [message for message in problems.values() if message is not None],
        "ocean_direction": ocean_direction(result.zones, result.front, scene),
        "context": context.record() if context is not None else None,
        "front_lines_px": [line.tolist() for line in result.lines_px],
        "outputs": outputs,
        "made_from": made_from,
    }


#: Value of no-data pixels in the front raster (0 is "no front", 255 "front").
FRONT_NODATA = 127
#: Zone raster colours (RGBA) and class names by CaFFe value; NA (the no-data value 0) is transparent.
ZONE_COLOURS = {value: (*rgb, 0 if value == 0 else 255) for value, rgb in zip(TASKS["zone"].png_values,
                                                                               ZONE_RGB.tolist())}
ZONE_NAMES = dict(zip(TASKS["zone"].png_values, ZONE_LABELS))
FRONT_COLOURS = {0: (0, 0, 0, 0), FRONT_NODATA: (128, 128, 128, 255), 255: (*PRED_FRONT_RGB, 255)}
FRONT_NAMES = {0: "no front", FRONT_NODATA: "no data", 255: "calving front"}


@dataclass(frozen=True)
class OutputOptions:
    """Optional outputs: ``uncertainty`` writes ``<stem>_uncertainty.tif``; ``rfc7946`` writes the per-scene
    GeoJSON in WGS84 longitude, latitude."""

    uncertainty: bool = False
    rfc7946: bool = False


@dataclass(frozen=True)
class SceneSettings:
    """What every scene of a run is made with besides its input file and the predictor (see :func:`detect`).

    ``pixel_size_m`` / ``default_pixel_size_m``: metres, as given (``None``
    = not given); ``glacier``: the name for scenes whose file name does not
    say it; ``postprocess``, ``options``, ``zero_border``: as in
    :func:`detect`.
    """

    pixel_size_m: float | None = None
    default_pixel_size_m: float | None = None
    glacier: str | None = None
    postprocess: PostprocessSettings = PostprocessSettings()
    options: OutputOptions = OutputOptions()
    zero_border: bool = True

    def made_with(self, predictor: GlacierPredictor) -> dict[str, Any]:
        """The settings of a scene's made-from record: the record format, ``predictor.made_from()`` (model,
        folds, checkpoint stamps, sliding window), these settings and the thresholds of the scene checks."""
        return {"format": RECORD_FORMAT, "predictor": predictor.made_from(), **asdict(self),
                "checks": {"min_contrast_grey": geo.MIN_CONTRAST_GREY,
                           "resolution_tolerance": geo.RESOLUTION_TOLERANCE}}


def record_path(out: Path, stem: str) -> Path:
    """Where the record of scene ``stem`` goes in ``OUT``."""
    return out / f"{stem}{RECORD_SUFFIX}"


def scene_inputs(path: Path, made_with: dict[str, Any],
                 context: SeriesContext | None = None) -> tuple[dict[str, Any], list[Path]]:
    """The settings and input files scene file ``path`` is made from: ``made_with`` and the file itself; with a
    temporal ``context``, also the context's files — in channel order in the settings (``context``) and as
    inputs, so that a context file edited, added or removed redoes the scenes it feeds — and how the found
    ones are counted (:data:`series.FOUND_RULE`)."""
    if context is None:
        return made_with, [path.resolve()]
    files = [file.resolve() for file in context.files]
    settings = {**made_with, "context": [str(file) for file in files], "context_found": series.FOUND_RULE}
    return settings, list(dict.fromkeys([path.resolve(), *files]))


def scene_made_from(path: Path, made_with: dict[str, Any], context: SeriesContext | None = None) -> dict[str, Any]:
    """The made-from record of scene file ``path`` (:func:`provenance.made_from` of :func:`scene_inputs`: the
    settings and the stamps of the file and its ``context`` files), taken before the files are read."""
    return provenance.made_from(*scene_inputs(path, made_with, context))


def write_scene(out: Path, scene: geo.GeoScene, result: SceneFront, route: str, predictor: GlacierPredictor,
                settings: SceneSettings, made_from: dict[str, Any], problems: dict[str, str | None], *,
                context: SeriesContext | None = None) -> dict[str, Any]:
    """Write a scene's rasters, GeoJSON, overlay and (last) its record (:func:`scene_record`; ``context`` as
    there); returns the record."""
    outputs = {}
    nodata = scene.nodata_mask
    if result.zones is not None:
        path = geo.write_raster(geo.mask_path(out, scene, ZONES_SUFFIX), TASKS["zone"].to_png(result.zones), scene,
                                nodata=0, colours=ZONE_COLOURS, class_names=ZONE_NAMES, description="zone")
        outputs["zones"] = path.name
    front = np.where(nodata, FRONT_NODATA, result.front.astype(np.uint8) * 255).astype(np.uint8)
    path = geo.write_raster(geo.mask_path(out, scene, FRONT_SUFFIX), front, scene, nodata=FRONT_NODATA,
                            colours=FRONT_COLOURS, class_names=FRONT_NAMES, description="calving front")
    outputs["front"] = path.name
    if settings.options.uncertainty:
        path = geo.write_raster(out / f"{scene.stem}{UNCERTAINTY_SUFFIX}.tif", result.uncertainty, scene,
                                nodata=np.nan,
                                description="normalised entropy of the ensemble's class probabilities (0..1)")
        outputs["uncertainty"] = path.name
    date, _ = series.acquisition_date(scene.path)
    properties = {"stem": scene.stem, "date": date.isoformat() if date else None}
    lines = [scene.pixel_to_map(line) for line in result.lines_px]
    outputs["front_lines"] = f"{scene.stem}{FRONT_SUFFIX}.geojson"
    geo.write_front_geojson(out / outputs["front_lines"], lines, scene, properties,
                            rfc7946=settings.options.rfc7946)
    outputs["overlay"] = f"{scene.stem}{OVERLAY_SUFFIX}.png"
    plot_overlay(scene.image, out / outputs["overlay"], pred_front=result.front, zones=result.zones,
                 stem=scene.stem, formats=("png",))
    record = scene_record(scene, result, route, predictor, settings, made_from, problems, outputs, context=context)
    write_json(record_path(out, scene.stem), record)
    return record


def is_current_record(out: Path, path: Path, made_with: dict[str, Any], context: SeriesContext | None = None) -> bool:
    """Whether ``OUT`` holds a record of scene file ``path`` (of :data:`RECORD_FORMAT`) made with ``made_with``
    from the file and its ``context`` files (:func:`scene_inputs`) as they are now, with every output it lists
    present."""
    record = provenance.read_record(record_path(out, path.stem))
    return (record is not None and record.get("format") == RECORD_FORMAT
            and provenance.is_current(record.get("made_from"), *scene_inputs(path, made_with, context))
            and all((out / name).is_file() for name in record.get("outputs", {}).values()))


def discard_scene(out: Path, stem: str) -> None:
    """Remove a scene's record and every output it lists (before the scene is redone, so that no output of the
    old run is left over and no reader sees old and new outputs mixed). Outputs first: a kill in between leaves
    a record whose outputs are missing, which is redone."""
    path = record_path(out, stem)
    record = provenance.read_record(path)
    outputs = record.get("outputs") if record is not None else None
    for name in outputs.values() if isinstance(outputs, dict) else ():
        if isinstance(name, str) and Path(name).name == name:  # only files of OUT itself
            (out / name).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def scene_problems(scene: geo.GeoScene) -> dict[str, str | None]:
    """The :data:`SCENE_PROBLEMS` of a scene: flag -> message (``None`` when the scene is fine in that respect)."""
    return {"no_contrast": geo.lacks_contrast(scene), "resolution_mismatch": geo.resolution_mismatch(scene)}


def without_front(result: SceneFront) -> SceneFront:
    """A result with its front taken out (for scenes that cannot show one; zones and uncertainty kept)."""
    return replace(result, front=np.zeros_like(result.front), lines_px=[], disagreement=None,
                   touches_nodata=False, touches_border=False)


def detect_scene(path: Path, out: Path, predictor: GlacierPredictor, route: str, settings: SceneSettings,
                 made_with: dict[str, Any], *, wait: bool, context: SeriesContext | None = None) -> str:
    """Detect one scene file into ``OUT`` under the scene's lock; returns ``"written"``, ``"skipped"`` (its
    record is current: done before, perhaps by another run just now) or ``"busy"`` (without ``wait``: another
    run holds the scene's lock). ``context``: for a model with temporal context, the scene's context
    acquisitions (:func:`series.scene_contexts`), its further input channels."""
    with exclusive(record_path(out, path.stem), wait=wait) as held:
        if not held:
            return "busy"
        if is_current_record(out, path, made_with, context):
            return "skipped"
        discard_scene(out, path.stem)
        made_from = scene_made_from(path, made_with, context)
        scene = geo.read_scene(path, pixel_size_m=settings.pixel_size_m,
                               default_pixel_size_m=settings.default_pixel_size_m, zero_border=settings.zero_border)
        problems = scene_problems(scene)
        for message in problems.values():
            if message is not None:
                warnings.warn(f"{path}: {message}; flagged in {QUALITY_CSV}", UserWarning, stacklevel=2)
        channels = scene.image
        if context is not None:
            channels, context = series.context_channels(scene, context, predictor.temporal.previous,
                                                        settings.zero_border)
        result = scene_front(scene, predictor.predict(channels, measure=[route]), route, settings.postprocess)
        if problems["no_contrast"] is not None:
            result = without_front(result)
        write_scene(out, scene, result, route, predictor, settings, made_from, problems, context=context)
        found = "" if context is None else (f"; {context.found} of {len(context.files)} context acquisitions found"
                                            + ("" if context.found else f" (flagged no_context in {QUALITY_CSV})"))
        tqdm.write(f"{scene.stem}: pixel size {scene.pixel_size_m:g} m ({scene.pixel_size_source}){found}")
        return "written"


def is_own_output(path: Path, out: Path, listed: set[str], stems: set[str]) -> bool:
    """Whether a scene file is one of detect's outputs in ``OUT``: named in a record there (``listed``), or named
    ``<stem><suffix>.<ext>`` with a suffix of :data:`OUTPUT_SUFFIXES` and ``<stem>`` another scene's (``stems``)."""
    if path.resolve().parent != out.resolve():
        return False
    return path.name in listed or any(path.stem.endswith(suffix) and path.stem.removesuffix(suffix) in stems
                                      for suffix in OUTPUT_SUFFIXES)


def scenes_to_detect(scenes: Sequence[Path], out: Path) -> list[Path]:
    """``scenes`` without detect's own outputs in ``OUT`` (:func:`is_own_output`: with ``-o`` equal to ``-i`` a
    re-run never reads them as scenes); :class:`InputError` naming both files when two scenes share a stem
    (their outputs would overwrite each other)."""
    listed: set[str] = set()
    for record_file in out.glob(f"*{RECORD_SUFFIX}"):
        record = provenance.read_record(record_file)
        outputs = record.get("outputs") if record is not None else None
        listed.update(outputs.values() if isinstance(outputs, dict) else ())
    stems = {Path(path).stem for path in scenes}
    kept = [Path(path) for path in scenes if not is_own_output(Path(path), out, listed, stems)]
    first_of: dict[str, Path] = {}
    for path in kept:
        if path.stem in first_of:
            raise InputError(path, f"same file stem as {first_of[path.stem]}: their outputs "
                                   f"({path.stem}{FRONT_SUFFIX}.*, {path.stem}{RECORD_SUFFIX}, ...) would overwrite "
                                   f"each other; rename one or detect them into separate folders")
        first_of[path.stem] = path
    return kept


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) during the block; a Ctrl-C that arrived raises ``KeyboardInterrupt`` after it.

    Outside the main thread (where signals cannot be handled) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if arrived:
        raise KeyboardInterrupt


def write_summary(out: Path, quality: QualitySettings) -> None:
    """Rebuild ``quality.csv`` and ``fronts.gpkg`` from every record in ``OUT``.

    Under the folder's lock, so that of concurrent runs the last to write has
    read every record the others wrote; a Ctrl-C while they are written takes
    effect once both are complete.
    """
    with deferred_interrupt(), exclusive(out / FRONTS_GPKG):
        records = read_records(out)
        rows = quality_rows(records, quality)
        write_text(out / QUALITY_CSV, quality_csv(rows))
        geo.write_geopackage(out / FRONTS_GPKG, front_layers(records, rows))


def detect(predictor: GlacierPredictor, scenes: Sequence[Path], out: str | Path, *,
           pixel_size_m: float | None = None, default_pixel_size_m: float | None = None, glacier: str | None = None,
           settings: PostprocessSettings = PostprocessSettings(), quality: QualitySettings = QualitySettings(),
           options: OutputOptions = OutputOptions(), zero_border: bool = True, summary: bool = True,
           progress: bool = True, context: Sequence[Path] = ()) -> RunReport:
    """Detect fronts in ``scenes`` into ``out`` (see the module doc); a failing scene is reported and skipped.

    ``pixel_size_m`` (metres) is the pixel size of every scene, whatever the
    scene says; ``default_pixel_size_m`` only that of scenes neither
    georeferenced (projected) nor CaFFe-named (see :func:`geo.read_scene`);
    the size used and its source are printed per scene and recorded.
    ``glacier`` names the glacier of scenes whose file name does not;
    ``zero_border`` as in :func:`geo.read_scene`.

    Time series: for a model with temporal context
    (``predictor.temporal.enabled``) each scene's further input channels are
    its nearest earlier (and later) acquisitions of its glacier among
    ``scenes`` and ``context`` (scene files used only as context, never
    detected), dated, grouped and put on the scene's grid as
    :mod:`nnunet_glacier.field.series` says; the record lists them and
    stamps their files. A model without temporal context ignores ``context``
    (with a warning when it is given).

    Re-runs and concurrent runs: see the module doc. ``quality.csv`` and
    ``fronts.gpkg`` are rebuilt at the end even when the run is interrupted
    (``KeyboardInterrupt`` is raised after them); without ``summary`` they
    are not (a shard of an archive: :func:`write_summary` merges the shards).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    scenes = scenes_to_detect(scenes, out)
    contexts: dict[Path, SeriesContext] = {}
    if predictor.temporal.enabled:
        contexts = series.scene_contexts(scenes, scenes_to_detect(context, out), predictor.temporal, glacier)
    elif context:
        warnings.warn(f"the model takes no temporal context: the {len(context)} context file(s) are not used",
                      UserWarning, stacklevel=2)
    route = choose_route([task.name for task in predictor.tasks])
    scene_settings = SceneSettings(pixel_size_m, default_pixel_size_m, glacier, settings, options, zero_border)
    made_with = scene_settings.made_with(predictor)
    report = RunReport()
    try:
        with tqdm(total=len(scenes), desc=f"detect ({len(predictor.folds)} folds)", unit="scene",
                  disable=not progress) as bar:

            def attempt(path: Path, wait: bool) -> bool:
                """Detect one scene into the report; ``False`` if another run holds it (and ``wait`` is off)."""
                try:
                    done = detect_scene(path, out, predictor, route, scene_settings, made_with, wait=wait,
                                        context=contexts.get(path))
                except (InputError, ValueError, OSError) as err:
                    report.failed.append((path, problem_of(err, path)))
                else:
                    if done == "busy":
                        return False
                    (report.written if done == "written" else report.skipped).append(path.stem)
                bar.update()
                return True

            busy = [path for path in scenes if not attempt(path, wait=False)]
            for path in busy:  # the scenes other runs held: wait for them, then skip them or do them
                attempt(path, wait=True)
    finally:
        if summary:
            write_summary(out, quality)
    return report


def read_records(out: str | Path) -> list[dict[str, Any]]:
    """Every scene record (of :data:`RECORD_FORMAT`) in a detect output folder, sorted by glacier, date and stem.

    Records of an older format are left out with a warning.
    """
    out = Path(out)
    records = []
    for path in sorted(out.glob(f"*{RECORD_SUFFIX}")):
        try:
            record = json.loads(path.read_text())
        except ValueError as err:
            raise InputError(path, f"corrupt scene record ({err}); delete it to detect the scene again") from err
        if record.get("format") != RECORD_FORMAT:
            warnings.warn(f"{path}: written by an older nnunet_glacier, left out; run detect on its scene again",
                          stacklevel=2)
            continue
        records.append(record)
    return sorted(records, key=lambda r: (r["glacier"], r["date"] or "", r["stem"]))


FRONTS_GPKG = "fronts.gpkg"
#: Attributes of the features of ``fronts.gpkg`` and their field types (see :class:`geo.VectorLayer`).
GPKG_COLUMNS = {
    "stem": "str", "date": "date", "glacier": "str", "sensor": "str", "pixel_size_m": "float",
    "pixel_size_source": "str", "route": "str", "model": "str", "folds": "str", "n_segments": "int",
    "length_m": "float", "disagreement": "float", "nodata_fraction": "float", "no_front": "bool",
    "length_outlier": "bool", "low_agreement": "bool", "touches_nodata": "bool", "touches_border": "bool",
    "no_contrast": "bool", "resolution_mismatch": "bool", "no_context": "bool", "needs_check": "bool",
    "context_found": "int",
    "input": "str",
}


def front_feature(record: dict[str, Any], row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A scene's attributes (:data:`GPKG_COLUMNS`) and front geometry (a MultiLineString, ``None`` without front)."""
    from rasterio import Affine
    from shapely import MultiLineString

    transform = None if record["transform"] is None else Affine(*record["transform"])
    lines = [np.asarray(line) if transform is None else geo.apply_affine(transform, line)
             for line in record["front_lines_px"]]
    attributes = {
        "stem": record["stem"], "date": record["date"], "glacier": record["glacier"], "sensor": record["sensor"],
        "pixel_size_m": record["pixel_size_m"], "pixel_size_source": record["pixel_size_source"],
        "route": record["route"], "model": record["model_name"], "folds": " ".join(map(str, record["folds"])),
        "n_segments": record["n_segments"], "length_m": record["front_length_m"],
        "disagreement": record["disagreement"], "input": record["input"],
        **{flag: row[flag] for flag in ("nodata_fraction", *QUALITY_FLAGS, "needs_check", "context_found")},
    }
    return attributes, MultiLineString(lines) if lines else None


def front_layers(records: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[geo.VectorLayer]:
    """The layers of ``fronts.gpkg``: one feature per scene, one layer per coordinate system.

    ``fronts`` holds the scenes of the CRS most scenes share (all of them,
    usually); scenes in other CRSs go to ``fronts_2``, ``fronts_3``, ...,
    scenes without georeferencing to ``fronts_pixel`` (pixel coordinates,
    no CRS). A run without scenes still gets an empty ``fronts`` layer with
    its schema.
    """
    from rasterio.crs import CRS

    groups: list[tuple[Any, list[tuple[dict, Any]]]] = []  # (CRS or None, features)
    for record, row in zip(records, rows):
        crs = CRS.from_wkt(record["coordinates"]["wkt"]) if record["coordinates"]["kind"] == "crs" else None
        group = next((g for g in groups if g[0] == crs), None)
        if group is None:
            group = (crs, [])
            groups.append(group)
        group[1].append(front_feature(record, row))
    georeferenced = sorted((g for g in groups if g[0] is not None), key=lambda g: -len(g[1]))
    named = [(f"fronts_{index}" if index > 1 else "fronts", g) for index, g in enumerate(georeferenced, 1)]
    named += [("fronts_pixel", g) for g in groups if g[0] is None]
    if not named:
        named = [("fronts", (None, []))]
    return [geo.VectorLayer(name, None if crs is None else crs.to_wkt(), GPKG_COLUMNS,
                            [attributes for attributes, _ in features], [geometry for _, geometry in features])
            for name, (crs, features) in named]
