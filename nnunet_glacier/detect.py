"""Calving fronts for new scenes: a trained model over PNG or GeoTIFF scenes, GIS-ready outputs, quality flags.

For every scene (see :mod:`nnunet_glacier.geo` for reading, pixel sizes and
no-data) the folds' ensemble (mean of class probabilities,
:class:`~nnunet_glacier.nnunet.predict.GlacierPredictor`) is post-processed
along one route, chosen by the model's tasks: ``fused`` for a fused-label
model, else ``zone`` when the model has a zone task (the route of the
paper's best results), else ``front`` (see :mod:`nnunet_glacier.postprocess`;
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
                             float32, NaN on no-data (:func:`normalised_entropy`)
    <stem>_front.geojson     the front as LineStrings, one per segment, vertices in order along it (in the
                             scene's CRS, or with ``OutputOptions.rfc7946`` in WGS84 longitude, latitude)
    <stem>_overlay.png       front and zones drawn on the scene
    <stem>_detect.json       the scene's record (written last: a scene with it is done and skipped on re-runs)

and for the whole folder, rebuilt from every record in ``OUT`` after each run::

    quality.csv              one row per scene flagging scenes to check by hand (:mod:`nnunet_glacier.quality`)
    fronts.gpkg              GeoPackage, one feature per scene (front as MultiLineString, :data:`GPKG_COLUMNS`)
                             in layer ``fronts`` (see :func:`front_layers` for scenes in other CRSs)
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from nnunet_glacier import geo, postprocess
from nnunet_glacier.atomic import write_json, write_text
from nnunet_glacier.errors import InputError
from nnunet_glacier.models import model_label
from nnunet_glacier.plots import PRED_FRONT_RGB, ZONE_RGB, plot_overlay
from nnunet_glacier.postprocess import PostprocessSettings, choose_route, route_front_and_zones
from nnunet_glacier.quality import QUALITY_CSV, QualitySettings, quality_csv, quality_rows
from nnunet_glacier.tasks import TASKS

if TYPE_CHECKING:  # the predictor (torch, nnU-Net) is only imported by whoever builds one
    from nnunet_glacier.nnunet.predict import GlacierPredictor, RunReport, ScenePrediction

RECORD_SUFFIX = "_detect.json"
#: Version of the scene records' contents; records of another version are redone (and not read).
RECORD_FORMAT = 2
#: Glacier name of scenes whose file name does not say it (and no ``--glacier`` was given).
UNKNOWN_GLACIER = "unknown"


def ensemble_disagreement(members: Sequence[np.ndarray], where: np.ndarray) -> float | None:
    """Mean total-variation distance of the members' class probabilities from their mean, over ``where``.

    ``members``: ``(n_classes, rows, cols)`` probabilities per fold;
    ``where``: ``bool`` mask of the pixels to average over. ``None`` with
    fewer than two members or an empty mask.
    """
    if len(members) < 2 or not np.any(where):
        return None
    at = np.stack([m[:, where] for m in members])  # (folds, classes, pixels)
    distance = 0.5 * np.abs(at - at.mean(axis=0)).sum(axis=1)
    return float(distance.mean())


def ocean_direction(zones: np.ndarray | None, front: np.ndarray, scene: geo.GeoScene) -> list[float] | None:
    """Unit vector (map coordinates) from the front's centroid towards the ocean's, or ``None``."""
    if zones is None or not front.any() or not (zones == 3).any():
        return None
    centroids = [np.argwhere(mask).mean(axis=0)[::-1] + 0.5 for mask in (front, zones == 3)]
    start, end = scene.pixel_to_map(np.array(centroids))
    vector = end - start
    norm = float(np.hypot(*vector))
    return None if norm == 0 else (vector / norm).tolist()


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Per pixel, the entropy of ``(n_classes, rows, cols)`` class probabilities over ``log(n_classes)``, ``float32``.

    0 where one class has all the probability, 1 where all classes are
    equally likely. Of the ensemble's (mean) probabilities it grows both
    where each fold is unsure and where the folds disagree.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=0)
    return (entropy / np.log(len(p))).astype(np.float32)


@dataclass(frozen=True)
class SceneFront:
    """The post-processed result of one scene.

    ``zones``: cleaned zone classes with no-data as NA (``None`` for
    front-only models); ``front``: ``bool`` front mask; ``lines_px``:
    ordered front lines in pixel coordinates (:func:`geo.pixel_lines`);
    ``disagreement``: the folds' disagreement on the front (module doc);
    ``uncertainty``: :func:`normalised_entropy` of the ensemble, NaN on
    no-data; ``touches_nodata`` / ``touches_border``: the front runs on
    into no-data / out of the image (:func:`postprocess.front_touches_edge`).
    """

    zones: np.ndarray | None
    front: np.ndarray
    lines_px: list[np.ndarray]
    disagreement: float | None
    uncertainty: np.ndarray
    touches_nodata: bool
    touches_border: bool


def scene_front(scene: geo.GeoScene, ensemble: ScenePrediction, members: Sequence[ScenePrediction],
                route: str, settings: PostprocessSettings) -> SceneFront:
    """Post-process a scene's ensemble prediction along ``route``, no-data aware, and measure its uncertainty."""
    nodata = scene.nodata_mask
    front, zones = route_front_and_zones(route, ensemble.class_map(route), scene.pixel_size_m, settings, nodata)
    if zones is not None:
        zones = postprocess.clean_zones(zones, nodata)
    lines_px = geo.pixel_lines(postprocess.ordered_paths(front))
    disagreement = ensemble_disagreement([m.probabilities[route] for m in members], front)
    uncertainty = normalised_entropy(ensemble.probabilities[route])
    uncertainty[nodata] = np.nan
    return SceneFront(zones, front, lines_px, disagreement, uncertainty,
                      *postprocess.front_touches_edge(front, nodata))


def scene_record(scene: geo.GeoScene, result: SceneFront, route: str, folds: Sequence[int], model: Path,
                 glacier: str | None, outputs: dict[str, str]) -> dict[str, Any]:
    """The JSON record of a detected scene (what ``quality.csv``, ``fronts.gpkg`` and ``retreat`` read).

    Front lines are kept in pixel coordinates (``front_lines_px``, ``x =
    column + 0.5``, ``y = row + 0.5``), which with ``transform`` and the
    CRS (``coordinates``) place them on the map.
    """
    date = scene.date
    lines = [scene.pixel_to_map(line) for line in result.lines_px]
    return {
        "format": RECORD_FORMAT,
        "stem": scene.stem,
        "input": str(scene.path.resolve()),
        "model": str(model.resolve()),
        "model_name": model_label(model),
        "glacier": scene.name.glacier if scene.name is not None else (glacier or UNKNOWN_GLACIER),
        "date": date.isoformat() if date is not None else None,
        "sensor": scene.name.sensor if scene.name is not None else None,
        "shape": list(scene.image.shape),
        "coordinates": geo.crs_description(scene),
        "transform": list(tuple(scene.transform)[:6]) if scene.transform is not None else None,
        "pixel_size_m": scene.pixel_size_m,
        "pixel_size_source": scene.pixel_size_source,
        "nodata_fraction": float(scene.nodata_mask.mean()),
        "route": route,
        "folds": list(folds),
        "n_segments": len(lines),
        "front_length_m": sum(geo.line_length_m(line, scene) for line in lines),
        "disagreement": result.disagreement,
        "touches_nodata": result.touches_nodata,
        "touches_border": result.touches_border,
        "ocean_direction": ocean_direction(result.zones, result.front, scene),
        "front_lines_px": [line.tolist() for line in result.lines_px],
        "outputs": outputs,
    }


#: Value of no-data pixels in the front raster (0 is "no front", 255 "front").
FRONT_NODATA = 127
#: Zone raster colours (RGBA) and class names by CaFFe value; NA (the no-data value 0) is transparent.
ZONE_COLOURS = {value: (*rgb, 0 if value == 0 else 255) for value, rgb in zip(TASKS["zone"].png_values,
                                                                               ZONE_RGB.tolist())}
ZONE_NAMES = dict(zip(TASKS["zone"].png_values, ("NA: no data or no information", "rock", "glacier",
                                                  "ocean and ice melange")))
FRONT_COLOURS = {0: (0, 0, 0, 0), FRONT_NODATA: (128, 128, 128, 255), 255: (*PRED_FRONT_RGB, 255)}
FRONT_NAMES = {0: "no front", FRONT_NODATA: "no data", 255: "calving front"}


@dataclass(frozen=True)
class OutputOptions:
    """Optional outputs: ``uncertainty`` writes ``<stem>_uncertainty.tif``; ``rfc7946`` writes the per-scene
    GeoJSON in WGS84 longitude, latitude."""

    uncertainty: bool = False
    rfc7946: bool = False


def write_scene(out: Path, scene: geo.GeoScene, result: SceneFront, route: str, folds: Sequence[int],
                model: Path, glacier: str | None, options: OutputOptions = OutputOptions()) -> dict[str, Any]:
    """Write a scene's rasters, GeoJSON, overlay and (last) its record; returns the record."""
    outputs = {}
    nodata = scene.nodata_mask
    if result.zones is not None:
        path = geo.write_raster(geo.mask_path(out, scene, "_zones"), TASKS["zone"].to_png(result.zones), scene,
                                nodata=0, colours=ZONE_COLOURS, class_names=ZONE_NAMES, description="zone")
        outputs["zones"] = path.name
    front = np.where(nodata, FRONT_NODATA, result.front.astype(np.uint8) * 255).astype(np.uint8)
    path = geo.write_raster(geo.mask_path(out, scene, "_front"), front, scene, nodata=FRONT_NODATA,
                            colours=FRONT_COLOURS, class_names=FRONT_NAMES, description="calving front")
    outputs["front"] = path.name
    if options.uncertainty:
        path = geo.write_raster(out / f"{scene.stem}_uncertainty.tif", result.uncertainty, scene, nodata=np.nan,
                                description="normalised entropy of the ensemble's class probabilities (0..1)")
        outputs["uncertainty"] = path.name
    properties = {"stem": scene.stem, "date": scene.date.isoformat() if scene.date else None}
    lines = [scene.pixel_to_map(line) for line in result.lines_px]
    geo.write_front_geojson(out / f"{scene.stem}_front.geojson", lines, scene, properties, rfc7946=options.rfc7946)
    outputs["front_lines"] = f"{scene.stem}_front.geojson"
    plot_overlay(scene.image, out / f"{scene.stem}_overlay.png", pred_front=result.front, zones=result.zones,
                 stem=scene.stem, formats=("png",))
    outputs["overlay"] = f"{scene.stem}_overlay.png"
    record = scene_record(scene, result, route, folds, model, glacier, outputs)
    write_json(out / f"{scene.stem}{RECORD_SUFFIX}", record)
    return record


def is_done(out: Path, path: Path, model: Path) -> bool:
    """Whether ``OUT`` already holds the record (of :data:`RECORD_FORMAT`) of this input scene predicted by this model."""
    record = out / f"{path.stem}{RECORD_SUFFIX}"
    if not record.is_file():
        return False
    try:
        done = json.loads(record.read_text())
    except ValueError:
        return False
    return (done.get("format") == RECORD_FORMAT and done.get("input") == str(path.resolve())
            and done.get("model") == str(model.resolve()))


def detect(predictor: GlacierPredictor, scenes: Sequence[Path], out: str | Path, *,
           pixel_size_m: float | None = None, default_pixel_size_m: float | None = None, glacier: str | None = None,
           settings: PostprocessSettings = PostprocessSettings(), quality: QualitySettings = QualitySettings(),
           options: OutputOptions = OutputOptions(), zero_border: bool = True, progress: bool = True) -> RunReport:
    """Detect fronts in ``scenes`` into ``out`` (see the module doc); a failing scene is reported and skipped.

    ``pixel_size_m`` (metres) is the pixel size of every scene, whatever the
    scene says; ``default_pixel_size_m`` only that of scenes neither
    georeferenced (projected) nor CaFFe-named (see :func:`geo.read_scene`);
    the size used and its source are printed per scene and recorded.
    ``glacier`` names the glacier of scenes whose file name does not;
    ``zero_border`` as in :func:`geo.read_scene`.
    """
    from nnunet_glacier.nnunet.predict import RunReport

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    route = choose_route([task.name for task in predictor.tasks])
    report = RunReport()
    for path in tqdm(scenes, desc=f"detect ({len(predictor.folds)} folds)", unit="scene", disable=not progress):
        if is_done(out, path, predictor.model_dir):
            report.skipped.append(path.stem)
            continue
        try:
            scene = geo.read_scene(path, pixel_size_m=pixel_size_m, default_pixel_size_m=default_pixel_size_m,
                                   zero_border=zero_border)
            ensemble, members = predictor.predict(scene.image)
            result = scene_front(scene, ensemble, members, route, settings)
            write_scene(out, scene, result, route, predictor.folds, predictor.model_dir, glacier, options)
        except (InputError, ValueError, OSError) as err:
            report.failed.append((path, str(err)))
            continue
        report.written.append(scene.stem)
        tqdm.write(f"{scene.stem}: pixel size {scene.pixel_size_m:g} m ({scene.pixel_size_source})")
    records = read_records(out)
    rows = quality_rows(records, quality)
    write_text(out / QUALITY_CSV, quality_csv(rows))
    geo.write_geopackage(out / FRONTS_GPKG, front_layers(records, rows))
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
    "needs_check": "bool", "input": "str",
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
        **{flag: row[flag] for flag in ("nodata_fraction", "no_front", "length_outlier", "low_agreement",
                                        "touches_nodata", "touches_border", "needs_check")},
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
