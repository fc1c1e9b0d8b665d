"""Scene files as time series: acquisition dates, glaciers, and each scene's temporal context for ``detect``.

A model with temporal context (:mod:`nnunet_glacier.data.temporal`) takes,
beside a scene, ``K`` earlier and ``N`` later acquisitions of its glacier as
input channels. For new scenes, :func:`scene_contexts` finds them among the
scenes ``detect`` is given and the files of ``--context`` (acquisitions used
only as context, never detected) by these rules.

Date of a scene file (:func:`acquisition_date`; the first that gives one):

1. the date of a CaFFe name (``JAC_2015-08-12_S1_20_3_123``), source ``"name"``;
2. the first valid ``YYYY-MM-DD`` or ``YYYYMMDD`` in the file name
   (:func:`~nnunet_glacier.field.geo.date_from_stem`), source ``"file name"``;
3. for a GeoTIFF, its metadata (GDAL's default domain, as rasterio's
   ``tags()`` reads it): a tag whose name holds ``ACQUISITION`` (e.g.
   ``ACQUISITION_START_TIME``; the first, in alphabetical order of the names,
   whose value holds a date), else ``TIFFTAG_DATETIME`` (``YYYY:MM:DD
   HH:MM:SS``) — by the TIFF standard the time the *file* was made, often its
   processing time, hence last; source ``"metadata <TAG>"``.

Only the day counts (the selection's rules compare dates). A scene without a
date cannot be placed in its series: it gets its own image in every context
channel (found: none), with a warning; an undated context file is not used.

Glacier of a scene file (:func:`glacier_key`): the glacier code of a CaFFe
name; else the ``--glacier`` name, as its CaFFe code when CaFFe knows it
(``--glacier "Jakobshavn Isbrae"`` is ``JAC``); else ``unknown``. So the
scenes and context files of one run that are not CaFFe-named are one glacier:
detect other glaciers in runs of their own. A context of another glacier
never enters.

Selection (:func:`~nnunet_glacier.data.temporal.select_context`, the rules
export and training use): *previous* acquisitions are strictly earlier, the
nearest first, *next* ones strictly later, the nearest first; with fewer than
asked, the farthest found repeats, with none the scene's own file. The pool is
the input scenes and the context files together (``detect --shard``: every
scene of the list, those of other shards as context).

Channels on the scene's grid (:func:`context_channels`): a georeferenced
context of a georeferenced scene is reprojected onto the scene's grid and CRS
(``rasterio.warp.reproject``, bilinear, no-data left out of the
interpolation); its no-data, and the part of the scene it does not cover,
become 0 — the grey value of no-data in every channel, the scene's own
included (:func:`~nnunet_glacier.field.geo.read_scene`: CaFFe's
no-information value; pixels 0 in every channel are outside nnU-Net's crop
to the non-zero region). Otherwise (a PNG context, or a scene
without georeferencing) the context is resized to the scene's shape
(:func:`~nnunet_glacier.data.temporal.resize_to`), as export does with
CaFFe's PNGs. A context file that gives the scene no pixel (it lies beside
the scene, or only its no-data overlaps it) keeps its all-0 channel but is not
counted as found (:meth:`SeriesContext.seen`).
"""
from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier.data import temporal
from nnunet_glacier.data.caffe import SceneName, glacier_code
from nnunet_glacier.errors import InputError
from nnunet_glacier.field import geo

#: Glacier of scenes whose file name does not say it when no ``--glacier`` is given.
UNKNOWN_GLACIER = "unknown"
#: GeoTIFF tags naming an acquisition time hold this in their name (any case).
ACQUISITION_TAG = "ACQUISITION"
#: The TIFF standard's date and time of the file's creation, the last source of a date.
DATETIME_TAG = "TIFFTAG_DATETIME"
#: How a scene's found context acquisitions are counted (:meth:`SeriesContext.seen`); in the made-from record of
#: every scene with temporal context, so that a change of the rule redoes those scenes (and no other).
FOUND_RULE = "distinct acquisitions that give the scene a pixel"
#: A date in a metadata value: ``YYYY-MM-DD``, ``YYYY:MM:DD`` (TIFF), ``YYYY/MM/DD`` or ``YYYYMMDD``.
_METADATA_DATE = re.compile(r"(?<!\d)(\d{4})([-:/]?)(\d{2})\2(\d{2})(?!\d)")


def caffe_name(path: Path) -> SceneName | None:
    """The parsed CaFFe name of a scene file, or ``None`` when its stem is not one."""
    try:
        return SceneName.parse(path.stem, path)
    except InputError:
        return None


def _date_in(text: str) -> dt.date | None:
    """The first valid date of :data:`_METADATA_DATE`'s forms in a metadata value, or ``None``."""
    for match in _METADATA_DATE.finditer(text):
        try:
            return dt.date(int(match[1]), int(match[3]), int(match[4]))
        except ValueError:
            continue
    return None


def metadata_date(path: Path) -> tuple[dt.date | None, str | None]:
    """A GeoTIFF's acquisition day from its tags and the tag's name (see the module doc), or ``(None, None)``
    (also for a file rasterio cannot open: reading the scene reports that)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                tags = src.tags()
    except (RasterioError, OSError):
        return None, None
    names = [*sorted(name for name in tags if ACQUISITION_TAG in name.upper()), DATETIME_TAG]
    for name in names:
        date = _date_in(str(tags.get(name, "")))
        if date is not None:
            return date, name
    return None, None


def acquisition_date(path: str | Path) -> tuple[dt.date | None, str | None]:
    """The acquisition day of a scene file and where it came from: ``"name"``, ``"file name"`` or ``"metadata
    <TAG>"`` (the module doc's order), or ``(None, None)``."""
    path = Path(path)
    name = caffe_name(path)
    if name is not None:
        return name.date, "name"
    date = geo.date_from_stem(path.stem)
    if date is not None:
        return date, "file name"
    if path.suffix.lower() in geo.GEOTIFF_SUFFIXES:
        date, tag = metadata_date(path)
        if date is not None:
            return date, f"metadata {tag}"
    return None, None


def glacier_key(path: str | Path, glacier: str | None) -> str:
    """The glacier a scene file's series is grouped by: its CaFFe name's code, else ``glacier`` (``--glacier``)
    as a CaFFe code where CaFFe knows it, else :data:`UNKNOWN_GLACIER`."""
    name = caffe_name(Path(path))
    if name is not None:
        return name.glacier
    return glacier_code(glacier) if glacier else UNKNOWN_GLACIER


@dataclass(frozen=True)
class SeriesContext:
    """The context acquisitions of one scene.

    ``files``: the files of channels ``1 .. previous + next`` in channel order
    (repeats and the scene's own file as
    :func:`~nnunet_glacier.data.temporal.select_context` chooses them);
    ``previous_found`` / ``next_found``: how many distinct earlier / later
    acquisitions were found (at most the model's ``previous`` / ``next``).
    """

    files: tuple[Path, ...]
    previous_found: int
    next_found: int

    @property
    def found(self) -> int:
        """How many distinct context acquisitions were found (0: the model sees the scene alone)."""
        return self.previous_found + self.next_found

    def seen(self, empty: set[Path], n_previous: int) -> SeriesContext:
        """The context without the found acquisitions whose channel is ``empty`` (files that give the scene no
        pixel) among its counts; ``n_previous``: the model's number of earlier channels (they come first)."""
        distinct_empty = [len(empty & set(part)) for part in (self.files[:n_previous], self.files[n_previous:])]
        return replace(self, previous_found=self.previous_found - distinct_empty[0],
                       next_found=self.next_found - distinct_empty[1])

    def record(self) -> dict[str, Any]:
        """The scene record's ``context``: the channels' files (absolute) and stems, and the counts found."""
        return {"files": [str(path.resolve()) for path in self.files], "stems": [path.stem for path in self.files],
                "previous_found": self.previous_found, "next_found": self.next_found, "found": self.found}


def _pool(scenes: Sequence[Path], context: Sequence[Path]) -> list[Path]:
    """The scenes, then the context files that are none of them (the same file counts once); an
    :class:`InputError` names both files when two different files share a stem."""
    by_file: dict[Path, Path] = {}
    by_stem: dict[str, Path] = {}
    for path in [*scenes, *context]:
        resolved = Path(path).resolve()
        if resolved in by_file:
            continue
        other = by_stem.get(resolved.stem)
        if other is not None:
            raise InputError(path, f"same file stem as {other}: a temporal model's context acquisitions are "
                                   f"named by their stems; rename one")
        by_file[resolved], by_stem[resolved.stem] = Path(path), Path(path)
    return list(by_file.values())


def scene_contexts(scenes: Sequence[Path], context: Sequence[Path], settings: temporal.TemporalSettings,
                   glacier: str | None) -> dict[Path, SeriesContext]:
    """Each of ``scenes``' context among ``scenes`` and ``context`` together (see the module doc), by scene.

    ``settings``: the model's temporal settings; ``glacier``: the
    ``--glacier`` name of scenes whose file name does not say it.
    Undated scenes and context files are warned about.
    """
    names: dict[str, temporal.Acquisition] = {}
    files: dict[str, Path] = {}
    undated: list[Path] = []
    for path in _pool(scenes, context):
        date, _ = acquisition_date(path)
        if date is None:
            undated.append(path)
            continue
        names[path.stem] = temporal.Acquisition(path.stem, glacier_key(path, glacier), date)
        files[path.stem] = path
    chosen = temporal.select_context(names.values(), settings)
    scene_files = {Path(path).resolve() for path in scenes}
    unused = [path for path in undated if path.resolve() not in scene_files]
    if unused:
        warnings.warn(f"no acquisition date in the file name or GeoTIFF metadata of {len(unused)} context "
                      f"file(s), not used as context: {', '.join(map(str, unused))}", UserWarning, stacklevel=2)
    contexts = {}
    for path in scenes:
        selected = chosen.get(Path(path).stem)
        if selected is None:
            warnings.warn(f"{path}: no acquisition date in the file name or GeoTIFF metadata: the model sees the "
                          f"scene alone (its own image in every context channel)", UserWarning, stacklevel=2)
            contexts[path] = SeriesContext((path,) * (settings.n_channels - 1), 0, 0)
        else:
            contexts[path] = SeriesContext(tuple(files[stem] for stem in selected.channels),
                                           selected.previous_found, selected.next_found)
    return contexts


def reproject_onto(context: geo.GeoScene, scene: geo.GeoScene) -> np.ndarray:
    """A georeferenced context's grey image on a georeferenced scene's grid and CRS (``uint8``, the scene's
    shape): bilinear, the context's no-data left out, 0 where it has no data or does not cover the scene."""
    from rasterio.warp import Resampling, reproject

    source = np.where(context.nodata_mask, np.nan, context.image.astype(np.float32))
    target = np.full(scene.image.shape, np.nan, dtype=np.float32)
    reproject(source, target, src_transform=context.transform, src_crs=context.crs, src_nodata=np.nan,
              dst_transform=scene.transform, dst_crs=scene.crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
    covered = np.isfinite(target)
    if not covered.any():
        warnings.warn(f"{context.path}: covers no pixel of {scene.path}; its context channel is all 0 (no data)",
                      UserWarning, stacklevel=3)
    return np.where(covered, np.clip(np.round(np.nan_to_num(target)), 0, 255), 0).astype(np.uint8)


def on_scene_grid(path: Path, scene: geo.GeoScene, zero_border: bool = True) -> np.ndarray:
    """Context file ``path`` as a ``uint8`` image on ``scene``'s pixel grid (see the module doc): reprojected
    when both are georeferenced, else resized; no-data 0. ``zero_border`` as in
    :func:`~nnunet_glacier.field.geo.read_scene`."""
    if Path(path).resolve() == scene.path.resolve():
        return scene.image
    # a context's pixel size is never used: any default keeps read_scene from asking for one
    context = geo.read_scene(path, default_pixel_size_m=1.0, zero_border=zero_border)
    if scene.georeferenced and context.georeferenced:
        return reproject_onto(context, scene)
    return temporal.resize_to(context.image, (int(scene.image.shape[0]), int(scene.image.shape[1])))


def context_channels(scene: geo.GeoScene, context: SeriesContext, n_previous: int,
                     zero_border: bool = True) -> tuple[np.ndarray, SeriesContext]:
    """A scene's input channels ``(1 + previous + next, rows, cols)``, ``uint8``: its grey image, then each
    context file on its grid (:func:`on_scene_grid`) in channel order (a file repeated is read once); and the
    context as the scene sees it (:meth:`SeriesContext.seen`: a file whose channel is all 0 is not found).
    ``n_previous``: the model's number of earlier channels."""
    images: dict[Path, np.ndarray] = {}
    for path in context.files:
        if path not in images:
            images[path] = on_scene_grid(path, scene, zero_border)
    empty = {path for path, image in images.items() if not image.any() and path.resolve() != scene.path.resolve()}
    return np.stack([scene.image, *(images[path] for path in context.files)]), context.seen(empty, n_previous)
