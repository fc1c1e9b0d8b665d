"""Calving fronts for new scenes: a trained model over PNG or GeoTIFF scenes, GIS-ready outputs.

For every scene (see :mod:`nnunet_glacier.geo` for reading and pixel sizes)
the folds' ensemble (mean of class probabilities,
:class:`~nnunet_glacier.nnunet.predict.GlacierPredictor`) is post-processed
along one route, chosen by the model's tasks: ``fused`` for a fused-label
model, else ``zone`` when the model has a zone task (the route of the
paper's best results), else ``front`` (see :mod:`nnunet_glacier.postprocess`;
fronts of ``<= min_length_m`` metres are dropped, CaFFe's 750 m by default).

Outputs in ``OUT`` per scene (masks as GeoTIFF with the input's CRS and
transform when it was georeferenced, PNG otherwise)::

    <stem>_zones.tif|png     cleaned zone mask: 0 NA, 64 rock, 127 glacier, 254 ocean (not for front-only models)
    <stem>_front.tif|png     post-processed one-pixel front: 255 front, 0 elsewhere
    <stem>_front.geojson     the front as LineStrings, one per segment, vertices in order along it
    <stem>_overlay.png       front and zones drawn on the scene
    <stem>_detect.json       the scene's record (written last: a scene with it is done and skipped on re-runs)

and for the whole folder ``quality.csv`` (:mod:`nnunet_glacier.quality`),
rebuilt from every record in ``OUT`` after each run, flagging scenes to check
by hand.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from nnunet_glacier import geo, postprocess
from nnunet_glacier.atomic import write_json, write_text
from nnunet_glacier.errors import InputError
from nnunet_glacier.plots import plot_overlay
from nnunet_glacier.postprocess import PostprocessSettings, choose_route, route_front_and_zones
from nnunet_glacier.quality import QUALITY_CSV, QualitySettings, quality_csv, quality_rows
from nnunet_glacier.tasks import TASKS

if TYPE_CHECKING:  # the predictor (torch, nnU-Net) is only imported by whoever builds one
    from nnunet_glacier.nnunet.predict import GlacierPredictor, RunReport, ScenePrediction





RECORD_SUFFIX = "_detect.json"
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


@dataclass(frozen=True)
class SceneFront:
    """The post-processed result of one scene: cleaned zone classes (or ``None``), front mask, ordered lines."""

    zones: np.ndarray | None
    front: np.ndarray
    lines: list[np.ndarray]
    disagreement: float | None


def scene_front(scene: geo.GeoScene, ensemble: ScenePrediction, members: Sequence[ScenePrediction],
                route: str, settings: PostprocessSettings) -> SceneFront:
    """Post-process a scene's ensemble prediction along ``route`` and measure the folds' agreement on the front."""
    front, zones = route_front_and_zones(route, ensemble.class_map(route), scene.pixel_size_m, settings)
    if zones is not None:
        zones = postprocess.clean_zones(zones)
    lines = geo.front_lines(postprocess.ordered_paths(front), scene)
    disagreement = ensemble_disagreement([m.probabilities[route] for m in members], front)
    return SceneFront(zones, front, lines, disagreement)


def scene_record(scene: geo.GeoScene, result: SceneFront, route: str, folds: Sequence[int], model: Path,
                 glacier: str | None, outputs: dict[str, str]) -> dict[str, Any]:
    """The JSON record of a detected scene (what ``quality.csv`` and ``retreat`` read)."""
    date = scene.date
    return {
        "stem": scene.stem,
        "input": str(scene.path.resolve()),
        "model": str(model.resolve()),
        "glacier": scene.name.glacier if scene.name is not None else (glacier or UNKNOWN_GLACIER),
        "date": date.isoformat() if date is not None else None,
        "sensor": scene.name.sensor if scene.name is not None else None,
        "shape": list(scene.image.shape),
        "coordinates": geo.crs_description(scene),
        "transform": list(tuple(scene.transform)[:6]) if scene.transform is not None else None,
        "pixel_size_m": scene.pixel_size_m,
        "pixel_size_source": scene.pixel_size_source,
        "route": route,
        "folds": list(folds),
        "n_segments": len(result.lines),
        "front_length_m": sum(geo.line_length_m(line, scene) for line in result.lines),
        "disagreement": result.disagreement,
        "ocean_direction": ocean_direction(result.zones, result.front, scene),
        "outputs": outputs,
    }


def write_scene(out: Path, scene: geo.GeoScene, result: SceneFront, route: str, folds: Sequence[int],
                model: Path, glacier: str | None) -> dict[str, Any]:
    """Write a scene's masks, GeoJSON, overlay and (last) its record; returns the record."""
    outputs = {}
    if result.zones is not None:
        path = geo.write_mask(geo.mask_path(out, scene, "_zones"), TASKS["zone"].to_png(result.zones), scene)
        outputs["zones"] = path.name
    path = geo.write_mask(geo.mask_path(out, scene, "_front"), result.front.astype(np.uint8) * 255, scene)
    outputs["front"] = path.name
    properties = {"stem": scene.stem, "date": scene.date.isoformat() if scene.date else None}
    geo.write_front_geojson(out / f"{scene.stem}_front.geojson", result.lines, scene, properties)
    outputs["front_lines"] = f"{scene.stem}_front.geojson"
    plot_overlay(scene.image, out / f"{scene.stem}_overlay.png", pred_front=result.front, zones=result.zones,
                 stem=scene.stem, formats=("png",))
    outputs["overlay"] = f"{scene.stem}_overlay.png"
    record = scene_record(scene, result, route, folds, model, glacier, outputs)
    write_json(out / f"{scene.stem}{RECORD_SUFFIX}", record)
    return record


def is_done(out: Path, path: Path, model: Path) -> bool:
    """Whether ``OUT`` already holds the record of this input scene predicted by this model."""
    record = out / f"{path.stem}{RECORD_SUFFIX}"
    if not record.is_file():
        return False
    try:
        done = json.loads(record.read_text())
    except ValueError:
        return False
    return done.get("input") == str(path.resolve()) and done.get("model") == str(model.resolve())


def detect(predictor: GlacierPredictor, scenes: Sequence[Path], out: str | Path, *,
           pixel_size_m: float | None = None, default_pixel_size_m: float | None = None, glacier: str | None = None,
           settings: PostprocessSettings = PostprocessSettings(), quality: QualitySettings = QualitySettings(),
           progress: bool = True) -> RunReport:
    """Detect fronts in ``scenes`` into ``out`` (see the module doc); a failing scene is reported and skipped.

    ``pixel_size_m`` (metres) is the pixel size of every scene, whatever the
    scene says; ``default_pixel_size_m`` only that of scenes neither
    georeferenced (projected) nor CaFFe-named (see :func:`geo.read_scene`);
    the size used and its source are printed per scene and recorded.
    ``glacier`` names the glacier of scenes whose file name does not.
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
            scene = geo.read_scene(path, pixel_size_m=pixel_size_m, default_pixel_size_m=default_pixel_size_m)
            ensemble, members = predictor.predict(scene.image)
            result = scene_front(scene, ensemble, members, route, settings)
            write_scene(out, scene, result, route, predictor.folds, predictor.model_dir, glacier)
        except (InputError, ValueError, OSError) as err:
            report.failed.append((path, str(err)))
            continue
        report.written.append(scene.stem)
        tqdm.write(f"{scene.stem}: pixel size {scene.pixel_size_m:g} m ({scene.pixel_size_source})")
    write_text(out / QUALITY_CSV, quality_csv(quality_rows(read_records(out), quality)))
    return report


def read_records(out: str | Path) -> list[dict[str, Any]]:
    """Every scene record in a detect output folder, sorted by glacier, date and stem."""
    out = Path(out)
    records = []
    for path in sorted(out.glob(f"*{RECORD_SUFFIX}")):
        try:
            records.append(json.loads(path.read_text()))
        except ValueError as err:
            raise InputError(path, f"corrupt scene record ({err}); delete it to detect the scene again") from err
    return sorted(records, key=lambda r: (r["glacier"], r["date"] or "", r["stem"]))
