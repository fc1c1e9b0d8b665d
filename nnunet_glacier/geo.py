"""Scenes in, georeferenced masks and front lines out: GeoTIFF and PNG I/O for new SAR scenes.

A :class:`GeoScene` is one input scene as the network sees it — a 2-D
``uint8`` grey image — plus what places it on the ground: the coordinate
reference system (CRS) and the affine pixel-to-map transform of a GeoTIFF
(``None`` for PNGs and TIFFs without georeferencing), and the pixel size in
metres.

Conventions:

- The affine transform maps ``(column, row)`` pixel *corners* to map
  coordinates (rasterio/GDAL convention); a pixel's centre is at
  ``(column + 0.5, row + 0.5)``.
- Front lines are written in the scene's CRS when it is georeferenced, and
  in pixel coordinates ``(x, y) = (column + 0.5, row + 0.5)`` (y pointing
  down) otherwise.
- Grey values: 8-bit inputs are used as they are (CaFFe images are 8-bit);
  16-bit, float and other inputs (e.g. calibrated backscatter in dB) are
  stretched linearly from their 0.5th..99.5th percentile to 1..255, no-data
  pixels become 0 (CaFFe's no-information value), with a warning.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier.atomic import atomic_path, write_json, write_png
from nnunet_glacier.caffe import ConversionWarning, SceneName, read_grey
from nnunet_glacier.errors import InputError

GEOTIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
SCENE_SUFFIXES = GEOTIFF_SUFFIXES + PNG_SUFFIXES
#: Percentiles (of valid pixels) mapped to grey values 1 and 255 when stretching non-8-bit scenes.
STRETCH_PERCENTILES = (0.5, 99.5)
#: Pixel sides differing by more than this fraction are reported as non-square.
SQUARE_TOLERANCE = 0.01
#: A given pixel size differing from a GeoTIFF transform's by more than this fraction is reported.
PIXEL_SIZE_TOLERANCE = 0.01

_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass(frozen=True)
class GeoScene:
    """One scene to run a model on.

    ``image``: 2-D ``uint8``. ``crs``: a ``rasterio.crs.CRS`` or ``None``;
    ``transform``: a ``rasterio.Affine`` or ``None`` (both set, or both
    ``None``). ``pixel_size_m``: metres per pixel; ``pixel_size_source``:
    ``"option"`` (given for every scene), ``"transform"``, ``"name"`` or
    ``"default"`` (given for scenes without one; see :func:`read_scene`). ``name``: the parsed
    CaFFe name when the file follows CaFFe's naming, else ``None``.
    """

    path: Path
    image: np.ndarray
    crs: Any
    transform: Any
    pixel_size_m: float
    pixel_size_source: str
    name: SceneName | None

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    @property
    def date(self) -> dt.date | None:
        """The acquisition date: from the CaFFe name, else the first ``YYYY-MM-DD`` or ``YYYYMMDD`` in the stem."""
        if self.name is not None:
            return self.name.date
        return date_from_stem(self.stem)

    def pixel_to_map(self, xy: np.ndarray) -> np.ndarray:
        """``(n, 2)`` pixel coordinates ``(x, y)`` (pixel corners at integers) -> map coordinates.

        Without georeferencing, pixel coordinates are returned unchanged.
        """
        return np.asarray(xy, dtype=np.float64) if self.transform is None else apply_affine(self.transform, xy)


def apply_affine(transform: Any, xy: np.ndarray) -> np.ndarray:
    """Apply an affine transform (``rasterio.Affine``) to ``(n, 2)`` points ``(x, y)``."""
    a, b, c, d, e, f = tuple(transform)[:6]
    xy = np.asarray(xy, dtype=np.float64)
    return np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f])


def date_from_stem(stem: str) -> dt.date | None:
    """The first valid date written ``YYYY-MM-DD`` or ``YYYYMMDD`` in a file stem, or ``None``."""
    for match in _DATE.finditer(stem):
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


def list_scenes(source: str | Path, suffixes: tuple[str, ...] = SCENE_SUFFIXES) -> list[Path]:
    """The scene files of a folder (``suffixes``, any case), sorted, or the single file given."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(source, "no such file or folder")
    scenes = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not scenes:
        raise InputError(source, f"no scenes in folder (expected {', '.join(suffixes)} files)")
    return scenes


def read_scene(path: str | Path, *, pixel_size_m: float | None = None,
               default_pixel_size_m: float | None = None) -> GeoScene:
    """Read a PNG or GeoTIFF scene.

    The pixel size (metres) is ``pixel_size_m`` when given (the ``--pixel-size``
    option: it wins, with a warning when a projected GeoTIFF's transform says
    otherwise by more than :data:`PIXEL_SIZE_TOLERANCE`); else the GeoTIFF
    transform's when the CRS is projected; else a CaFFe-style file name's;
    else ``default_pixel_size_m`` (``--default-pixel-size``). If none applies
    an :class:`InputError` names the file; unreadable files raise it too.
    """
    path = Path(path)
    if path.suffix.lower() in GEOTIFF_SUFFIXES:
        image, crs, transform = _read_geotiff(path)
    elif path.suffix.lower() in PNG_SUFFIXES:
        image, crs, transform = read_grey(path), None, None
    else:
        raise InputError(path, f"unsupported scene format {path.suffix!r}; use {', '.join(SCENE_SUFFIXES)}")
    try:
        name = SceneName.parse(path.stem, path)
    except InputError:
        name = None
    size, source = _pixel_size(path, crs, transform, name, pixel_size_m, default_pixel_size_m)
    return GeoScene(path, image, crs, transform, size, source, name)


def _read_geotiff(path: Path) -> tuple[np.ndarray, Any, Any]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if src.count > 1:
                    warnings.warn(f"{path}: {src.count} bands, using band 1", ConversionWarning, stacklevel=3)
                band = src.read(1, masked=True)
                crs, transform, has_gcps = src.crs, src.transform, bool(src.gcps[0])
    except RasterioError as err:
        raise InputError(path, f"unreadable or truncated GeoTIFF ({err})") from err
    if band.ndim != 2 or band.size == 0:
        raise InputError(path, "empty raster")
    if crs is None:
        if has_gcps:
            warnings.warn(f"{path}: georeferenced by ground control points only; outputs are not georeferenced "
                          f"(warp the scene to a map projection first, e.g. with gdalwarp)", ConversionWarning,
                          stacklevel=3)
        transform = None
    return to_grey_8bit(band, path), crs, transform


def to_grey_8bit(band: np.ma.MaskedArray, path: Path) -> np.ndarray:
    """A raster band as 2-D ``uint8``: 8-bit unchanged; otherwise stretched, no-data -> 0 (see module doc)."""
    valid = ~np.ma.getmaskarray(band) & np.isfinite(np.ma.getdata(band))
    if band.dtype == np.uint8:
        return np.where(valid, np.ma.getdata(band), 0).astype(np.uint8)
    if not valid.any():
        raise InputError(path, "raster holds no valid pixels (all no-data)")
    values = np.ma.getdata(band).astype(np.float64)
    low, high = np.percentile(values[valid], STRETCH_PERCENTILES)
    warnings.warn(f"{path}: {band.dtype} raster stretched from {low:g}..{high:g} to 1..255 "
                  f"({STRETCH_PERCENTILES[0]:g}th..{STRETCH_PERCENTILES[1]:g}th percentile), no-data -> 0",
                  ConversionWarning, stacklevel=3)
    scaled = 1 + (np.clip(values, low, high) - low) / max(high - low, 1e-12) * 254
    return np.where(valid, np.round(scaled), 0).astype(np.uint8)


def _pixel_size(path: Path, crs: Any, transform: Any, name: SceneName | None, option_m: float | None,
                default_m: float | None) -> tuple[float, str]:
    """The scene's pixel size and its source, in the order of :func:`read_scene`."""
    for given in (option_m, default_m):
        if given is not None and not given > 0:
            raise InputError(path, f"pixel size must be positive, got {given} m")
    from_transform = transform_pixel_size(path, crs, transform) if crs is not None and crs.is_projected else None
    if option_m is not None:
        if from_transform is not None and abs(option_m - from_transform) > PIXEL_SIZE_TOLERANCE * from_transform:
            warnings.warn(f"{path}: the given pixel size {option_m:g} m is used, but the GeoTIFF's transform says "
                          f"{from_transform:g} m", UserWarning, stacklevel=3)
        return float(option_m), "option"
    if from_transform is not None:
        return from_transform, "transform"
    if name is not None:
        return name.resolution_m, "name"
    if default_m is not None:
        return float(default_m), "default"
    why = "its CRS is geographic (degrees)" if crs is not None else "it is not georeferenced"
    raise InputError(path, f"pixel size unknown: {why} and its name does not follow CaFFe's "
                           f"Glacier_YYYY-MM-DD_Sensor_Resolution_QF_Orbit; give --pixel-size or "
                           f"--default-pixel-size (metres)")


def transform_pixel_size(path: Path, crs: Any, transform: Any) -> float:
    """Metres per pixel of a projected raster: the geometric mean of the pixel's two sides (warns if not square)."""
    unit_m = crs.linear_units_factor[1]
    a, b, _, d, e, _ = tuple(transform)[:6]
    width, height = np.hypot(a, d) * unit_m, np.hypot(b, e) * unit_m
    if abs(width - height) > SQUARE_TOLERANCE * max(width, height):
        warnings.warn(f"{path}: pixels are {width:g} x {height:g} m, not square; using {np.sqrt(width * height):g} m",
                      ConversionWarning, stacklevel=3)
    return float(np.sqrt(width * height))


def mask_path(out_dir: Path, scene: GeoScene, suffix: str) -> Path:
    """Where a mask of ``scene`` goes: ``<stem><suffix>.tif`` when georeferenced, else ``.png``."""
    return out_dir / f"{scene.stem}{suffix}{'.tif' if scene.georeferenced else '.png'}"


def write_mask(path: str | Path, mask: np.ndarray, scene: GeoScene) -> Path:
    """Write a ``uint8`` mask of the scene's shape atomically: GeoTIFF with its CRS and transform, or PNG."""
    path = Path(path)
    if np.shape(mask) != scene.image.shape:
        raise ValueError(f"{path}: mask of shape {np.shape(mask)} does not match the scene's {scene.image.shape}")
    if path.suffix.lower() in PNG_SUFFIXES:
        write_png(path, np.asarray(mask, dtype=np.uint8))
        return path
    import rasterio

    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                           dtype="uint8", crs=scene.crs, transform=scene.transform, compress="deflate") as dst:
            dst.write(np.asarray(mask, dtype=np.uint8), 1)
    return path


def front_lines(paths: list[np.ndarray], scene: GeoScene) -> list[np.ndarray]:
    """Ordered front pixel paths (``(n, 2)`` ``(row, col)``) as ``(n, 2)`` ``(x, y)`` lines in the scene's CRS.

    Vertices are pixel centres; paths of fewer than two pixels are left out
    (a line needs two vertices).
    """
    return [scene.pixel_to_map(path[:, ::-1] + 0.5) for path in paths if len(path) >= 2]


def line_length_m(line: np.ndarray, scene: GeoScene) -> float:
    """Length of a line in metres (map units times the CRS unit for projected scenes, else pixels x pixel size)."""
    steps = np.hypot(*np.diff(np.asarray(line), axis=0).T).sum()
    if scene.georeferenced and scene.pixel_size_source == "transform":
        return float(steps * scene.crs.linear_units_factor[1])
    if scene.georeferenced:  # geographic CRS: measure in pixels instead
        pixel_steps = np.hypot(*np.diff(map_to_pixel(line, scene.transform), axis=0).T).sum()
        return float(pixel_steps * scene.pixel_size_m)
    return float(steps * scene.pixel_size_m)


def map_to_pixel(xy: np.ndarray, transform: Any) -> np.ndarray:
    """``(n, 2)`` map coordinates -> pixel coordinates ``(x, y)`` with the inverse of ``transform``."""
    return apply_affine(~transform, xy)


def crs_description(scene: GeoScene) -> dict[str, Any]:
    """The scene's coordinate system for JSON: ``{"kind": "crs", "epsg", "wkt"}`` or ``{"kind": "pixel"}``."""
    if not scene.georeferenced:
        return {"kind": "pixel"}
    return {"kind": "crs", "epsg": scene.crs.to_epsg(), "wkt": scene.crs.to_wkt()}


def write_front_geojson(path: str | Path, lines: list[np.ndarray], scene: GeoScene,
                        properties: dict[str, Any]) -> None:
    """Write front lines as a GeoJSON FeatureCollection of LineStrings, atomically.

    One feature per front segment with ``properties`` plus ``segment`` and
    ``length_m``. Georeferenced scenes carry the (GDAL-read) named ``crs``
    member when the CRS has an EPSG code, and ``crs_wkt`` always; other
    scenes are in pixel coordinates and say so in ``coordinates``.
    """
    features = [{
        "type": "Feature",
        "properties": {**properties, "segment": index, "length_m": round(line_length_m(line, scene), 3)},
        "geometry": {"type": "LineString", "coordinates": np.round(line, 6).tolist()},
    } for index, line in enumerate(lines)]
    collection: dict[str, Any] = {"type": "FeatureCollection", "name": scene.stem}
    system = crs_description(scene)
    if system["kind"] == "crs":
        if system["epsg"] is not None:
            collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{system['epsg']}"}}
        collection["crs_wkt"] = system["wkt"]
    else:
        collection["coordinates"] = "pixel (x = column + 0.5, y = row + 0.5, y down)"
    collection["features"] = features
    write_json(path, collection)


def read_front_geojson(path: str | Path) -> list[np.ndarray]:
    """The LineStrings of a front GeoJSON written by :func:`write_front_geojson`, as ``(n, 2)`` arrays."""
    path = Path(path)
    try:
        collection = json.loads(path.read_text())
        return [np.asarray(f["geometry"]["coordinates"], dtype=np.float64).reshape(-1, 2)
                for f in collection["features"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"not a front GeoJSON ({err})") from err
