"""Scenes in, georeferenced masks and front lines out: GeoTIFF and PNG I/O for new SAR scenes.

A :class:`GeoScene` is one input scene as the network sees it — a 2-D
``uint8`` grey image — plus what places it on the ground: the coordinate
reference system (CRS) and the affine pixel-to-map transform of a GeoTIFF
(``None`` for PNGs and TIFFs without georeferencing), the pixel size in
metres, and where the scene has no data.

Conventions:

- The affine transform maps ``(column, row)`` pixel *corners* to map
  coordinates (rasterio/GDAL convention); a pixel's centre is at
  ``(column + 0.5, row + 0.5)``.
- Front lines are written in the scene's CRS when it is georeferenced, and
  in pixel coordinates ``(x, y) = (column + 0.5, row + 0.5)`` (y pointing
  down) otherwise.
- CRSs travel as full WKT, so a projection without an EPSG code (a custom
  polar stereographic grid, say) reaches every output unchanged.
- Grey values: 8-bit inputs are used as they are (CaFFe images are 8-bit);
  16-bit, float and other inputs (e.g. calibrated backscatter in dB) are
  stretched linearly from their 0.5th..99.5th percentile (of the pixels with
  data) to 1..255, with a warning. No-data pixels become 0 (CaFFe's
  no-information value).
- No-data (:attr:`GeoScene.nodata`, ``True`` where a pixel has no data) is,
  for GeoTIFFs, what GDAL masks — the declared nodata value, an internal
  mask band or an alpha band — plus NaN and +-inf in float rasters; and, for
  every scene, the zero fill of swath borders: zero-valued pixels in a
  4-connected zero region that touches the image border and covers at least
  :data:`ZERO_BORDER_MIN_FRACTION` of the image (Sentinel-1 and other
  processors fill the area outside the swath with 0; a dark sea rarely
  quantises to a border-touching zero region that large). ``zero_border=False``
  keeps such regions as data. Inside the image, isolated zeros stay data.

Outputs: rasters go through :func:`write_raster` (Cloud-Optimized GeoTIFF
with declared nodata, colour table and class names; PNG for scenes without
georeferencing), vectors through :func:`write_front_geojson` (one scene) and
:func:`write_geopackage` (all scenes of a run). Other inputs: rasters written
here are read back by :func:`read_raster`, vectors a user draws (a box, a
centre line) by :func:`read_vector`, and points are reprojected between CRSs
by :func:`reproject`.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from nnunet_glacier.data.caffe import ConversionWarning, SceneName, read_grey, without_apple_double
from nnunet_glacier.errors import InputError
from nnunet_glacier.utilities.atomic import atomic_path, write_json, write_png
from nnunet_glacier.utilities.csv_tables import read_csv

GEOTIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
SCENE_SUFFIXES = GEOTIFF_SUFFIXES + PNG_SUFFIXES
#: Percentiles (of valid pixels) mapped to grey values 1 and 255 when stretching non-8-bit scenes.
STRETCH_PERCENTILES = (0.5, 99.5)
#: Pixel sides differing by more than this fraction are reported as non-square.
SQUARE_TOLERANCE = 0.01
#: A given pixel size differing from a GeoTIFF transform's by more than this fraction is reported.
PIXEL_SIZE_TOLERANCE = 0.01
#: A zero region touching the image border is no-data when it covers at least this fraction of the image.
ZERO_BORDER_MIN_FRACTION = 0.001
#: A CaFFe name's resolution differing from the GeoTIFF grid's pixel size by more than this fraction (of the
#: grid's) is an inconsistent scene (:func:`resolution_mismatch`).
RESOLUTION_TOLERANCE = 0.10
#: Scenes whose pixels with data vary by less than this standard deviation (grey levels of the 8-bit image)
#: have no contrast (:func:`lacks_contrast`).
MIN_CONTRAST_GREY = 1.0

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
    ``nodata``: ``bool``, ``True`` where the scene has no data (see the
    module doc); ``None`` when every pixel has data. ``grid_pixel_size_m``:
    metres per pixel of the GeoTIFF's grid (:func:`grid_pixel_size`),
    ``None`` without georeferencing.
    """

    path: Path
    image: np.ndarray
    crs: Any
    transform: Any
    pixel_size_m: float
    pixel_size_source: str
    name: SceneName | None
    nodata: np.ndarray | None = None
    grid_pixel_size_m: float | None = None

    @property
    def nodata_mask(self) -> np.ndarray:
        """``bool`` of the image's shape, ``True`` where the scene has no data."""
        return np.zeros(self.image.shape, dtype=bool) if self.nodata is None else self.nodata

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


#: Suffix of a scene list file: one scene path a line (relative paths from the list's folder).
SCENE_LIST_SUFFIX = ".txt"


def list_scenes(source: str | Path, suffixes: tuple[str, ...] = SCENE_SUFFIXES) -> list[Path]:
    """The scenes of ``source``: the files of a folder (``suffixes``, any case), sorted; the lines of a scene
    list file (``.txt``: one path a line, relative to the list's folder; blank and ``#`` lines ignored), in
    order; or the single scene given.

    Hidden files of a folder (e.g. temporaries of a write in progress) are left
    out, macOS ``._name`` metadata files with a warning.
    """
    source = Path(source)
    if source.is_file() and source.suffix.lower() == SCENE_LIST_SUFFIX:
        return _read_scene_list(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(source, "no such file or folder")
    candidates = without_apple_double(sorted(p for p in source.iterdir()
                                             if p.is_file() and p.suffix.lower() in suffixes))
    scenes = [p for p in candidates if not p.name.startswith(".")]
    if not scenes:
        raise InputError(source, f"no scenes in folder (expected {', '.join(suffixes)} files)")
    return scenes


def _read_scene_list(path: Path) -> list[Path]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    scenes = [path.parent / line for line in lines if line and not line.startswith("#")]
    if not scenes:
        raise InputError(path, "empty scene list (expected one scene path a line)")
    return scenes


def read_scene(path: str | Path, *, pixel_size_m: float | None = None, default_pixel_size_m: float | None = None,
               zero_border: bool = True) -> GeoScene:
    """Read a PNG or GeoTIFF scene, with its no-data (see the module doc; ``zero_border`` as there).

    The pixel size (metres) is ``pixel_size_m`` when given (the ``--pixel-size``
    option: it wins, with a warning when a projected GeoTIFF's transform says
    otherwise by more than :data:`PIXEL_SIZE_TOLERANCE`); else the GeoTIFF
    transform's when the CRS is projected; else a CaFFe-style file name's;
    else ``default_pixel_size_m`` (``--default-pixel-size``). If none applies
    an :class:`InputError` names the file; unreadable files raise it too, and
    so does a raster without any pixel with data.
    """
    path = Path(path)
    if path.suffix.lower() in GEOTIFF_SUFFIXES:
        band, crs, transform = _read_geotiff(path)
    elif path.suffix.lower() in PNG_SUFFIXES:
        band, crs, transform = np.ma.masked_array(read_grey(path), mask=False), None, None
    else:
        raise InputError(path, f"unsupported scene format {path.suffix!r}; use {', '.join(SCENE_SUFFIXES)}")
    try:
        name = SceneName.parse(path.stem, path)
    except InputError:
        name = None
    grid = grid_pixel_size(path, crs, transform, band.shape) if crs is not None else None
    size, source = _pixel_size(path, crs, grid if crs is not None and crs.is_projected else None, name,
                               pixel_size_m, default_pixel_size_m)
    nodata = nodata_mask(band, zero_border)
    if nodata.all():
        raise InputError(path, "raster holds no pixel with data (all no-data)")
    return GeoScene(path, to_grey_8bit(band, nodata, path), crs, transform, size, source, name,
                    nodata if nodata.any() else None, grid)


def _read_geotiff(path: Path) -> tuple[np.ma.MaskedArray, Any, Any]:
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
        reason = str(err).replace(f"'{path}' ", "")  # rasterio's message names the file again
        raise InputError(path, f"unreadable or truncated GeoTIFF ({reason})") from err
    if band.ndim != 2 or band.size == 0:
        raise InputError(path, "empty raster")
    if crs is None:
        if has_gcps:
            warnings.warn(f"{path}: georeferenced by ground control points only; outputs are not georeferenced "
                          f"(warp the scene to a map projection first, e.g. with gdalwarp)", ConversionWarning,
                          stacklevel=3)
        transform = None
    return band, crs, transform


def nodata_mask(band: np.ma.MaskedArray, zero_border: bool = True) -> np.ndarray:
    """``True`` where a band has no data: masked, not finite, or (``zero_border``) zero fill at the border.

    See the module doc for the zero-border rule.
    """
    values = np.ma.getdata(band)
    nodata = np.ma.getmaskarray(band).copy()
    if np.issubdtype(values.dtype, np.floating):
        nodata |= ~np.isfinite(values)
    if zero_border:
        nodata |= border_zeros(np.where(nodata, 1, values) == 0)
    return nodata


def border_zeros(zero: np.ndarray, min_fraction: float = ZERO_BORDER_MIN_FRACTION) -> np.ndarray:
    """The 4-connected regions of ``zero`` (``bool``) that touch the image border and cover ``>= min_fraction``."""
    from scipy import ndimage

    regions, _ = ndimage.label(zero)
    edge = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    sizes = np.bincount(regions.ravel())
    keep = np.zeros(len(sizes), dtype=bool)
    keep[edge] = True
    keep &= sizes >= min_fraction * zero.size
    keep[0] = False
    return keep[regions]


def to_grey_8bit(band: np.ma.MaskedArray, nodata: np.ndarray, path: Path) -> np.ndarray:
    """A raster band as 2-D ``uint8``: 8-bit unchanged; otherwise stretched (see module doc); no-data -> 0."""
    valid = ~nodata
    if band.dtype == np.uint8:
        return np.where(valid, np.ma.getdata(band), 0).astype(np.uint8)
    values = np.ma.getdata(band).astype(np.float64)
    low, high = np.percentile(values[valid], STRETCH_PERCENTILES)
    warnings.warn(f"{path}: {band.dtype} raster stretched from {low:g}..{high:g} to 1..255 "
                  f"({STRETCH_PERCENTILES[0]:g}th..{STRETCH_PERCENTILES[1]:g}th percentile), no-data -> 0",
                  ConversionWarning, stacklevel=3)
    scaled = 1 + (np.clip(values, low, high) - low) / max(high - low, 1e-12) * 254
    return np.where(valid, np.round(scaled), 0).astype(np.uint8)


def _pixel_size(path: Path, crs: Any, from_transform: float | None, name: SceneName | None, option_m: float | None,
                default_m: float | None) -> tuple[float, str]:
    """The scene's pixel size and its source, in the order of :func:`read_scene` (``from_transform``: metres per
    pixel of a projected GeoTIFF's grid, else ``None``)."""
    for given in (option_m, default_m):
        if given is not None and not given > 0:
            raise InputError(path, f"pixel size must be positive, got {given} m")
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


def grid_pixel_size(path: Path, crs: Any, transform: Any, shape: tuple[int, ...]) -> float | None:
    """Metres per pixel of a georeferenced grid: :func:`transform_pixel_size` for a projected CRS; for a
    geographic one (degrees), the geometric mean of the geodesic lengths of the two sides of the pixel at the
    image's centre, on the CRS's ellipsoid (``None`` for a CRS without one, e.g. a local engineering grid, or
    when its coordinates are no longitudes and latitudes)."""
    if crs.is_projected:
        return transform_pixel_size(path, crs, transform)
    from pyproj import CRS as ProjCRS

    geod = ProjCRS.from_wkt(crs.to_wkt()).get_geod()
    if geod is None:
        return None
    row, col = shape[0] // 2, shape[1] // 2
    corner, right, below = apply_affine(transform, np.array([[col, row], [col + 1, row], [col, row + 1]]))
    size = float(np.sqrt(np.prod([geod.inv(*corner, *end)[2] for end in (right, below)])))
    return size if np.isfinite(size) else None


def lacks_contrast(scene: GeoScene) -> str | None:
    """Why a scene shows nothing to segment — its pixels with data hold one grey value, or their standard
    deviation is below :data:`MIN_CONTRAST_GREY` grey levels (of the 8-bit image the network sees) — or ``None``."""
    values = scene.image[~scene.nodata_mask]
    spread = float(values.std())
    if np.unique(values).size >= 2 and spread >= MIN_CONTRAST_GREY:
        return None
    return (f"no contrast: its pixels with data have a standard deviation of {spread:.3g} grey levels "
            f"(at least {MIN_CONTRAST_GREY:g} needed); no front is drawn from it")


def resolution_mismatch(scene: GeoScene) -> str | None:
    """Why a scene's CaFFe-name resolution and its GeoTIFF grid disagree (by more than
    :data:`RESOLUTION_TOLERANCE` of the grid's pixel size), or ``None`` when they agree or either is missing."""
    if scene.name is None or scene.grid_pixel_size_m is None:
        return None
    named, grid = scene.name.resolution_m, scene.grid_pixel_size_m
    if abs(named - grid) <= RESOLUTION_TOLERANCE * grid:
        return None
    return (f"its name says {named:g} m per pixel but its GeoTIFF grid has {grid:.3g} m pixels (more than "
            f"{RESOLUTION_TOLERANCE:.0%} apart): a mislabelled or resampled scene")


def mask_path(out_dir: Path, scene: GeoScene, suffix: str) -> Path:
    """Where a mask of ``scene`` goes: ``<stem><suffix>.tif`` when georeferenced, else ``.png``."""
    return out_dir / f"{scene.stem}{suffix}{'.tif' if scene.georeferenced else '.png'}"


def write_raster(path: str | Path, array: np.ndarray, scene: GeoScene, *, nodata: float | None = None,
                 colours: dict[int, tuple[int, int, int, int]] | None = None,
                 class_names: dict[int, str] | None = None, description: str = "") -> Path:
    """Write a 2-D raster on the scene's pixel grid, atomically; every raster output goes through here.

    ``.tif``: a Cloud-Optimized GeoTIFF (GDAL's COG driver: 512 px tiles,
    deflate compression, internal overviews once the raster exceeds a tile —
    nearest-neighbour for class rasters, i.e. those with ``colours``,
    averaged otherwise) carrying the scene's CRS as full WKT and its
    transform when it is georeferenced; ``nodata`` is the declared nodata
    value, ``colours`` (value -> RGBA 0..255) the colour table of an
    ``uint8`` class raster, ``class_names`` (value -> name) are stored as
    band metadata items ``CLASS_<value>``, ``description`` as the band
    description. ``.png``: an 8-bit PNG of the values (PNG holds no
    georeferencing, nodata or colours; only for scenes without
    georeferencing). Returns ``path``.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.shape != scene.image.shape:
        raise ValueError(f"{path}: raster of shape {array.shape} does not match the scene's {scene.image.shape}")
    if path.suffix.lower() in PNG_SUFFIXES:
        write_png(path, array.astype(np.uint8))
        return path
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    options = {"compress": "deflate", "blocksize": 512, "resampling": "nearest" if colours else "average"}
    if np.issubdtype(array.dtype, np.floating):
        options["predictor"] = "floating_point"
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", driver="COG", width=array.shape[1], height=array.shape[0], count=1,
                           dtype=array.dtype, crs=scene.crs, transform=scene.transform, nodata=nodata,
                           **options) as dst:
            dst.write(array, 1)
            if colours:
                dst.write_colormap(1, colours)
            if class_names:
                dst.update_tags(1, **{f"CLASS_{value}": name for value, name in class_names.items()})
            if description:
                dst.set_band_description(1, description)
    return path


def read_raster(path: str | Path) -> np.ndarray:
    """Band 1 of a raster :func:`write_raster` wrote (``.tif``; ``.png`` for scenes without georeferencing), its
    values as stored; :class:`InputError` names the file when it is missing or unreadable (a PNG must hold 8-bit
    grey values, as a label does: :func:`~nnunet_glacier.data.caffe.read_grey`)."""
    path = Path(path)
    if path.suffix.lower() in PNG_SUFFIXES:
        return read_grey(path, label=True)
    import rasterio
    from rasterio.errors import RasterioError

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with rasterio.open(path) as src:
            return src.read(1)
    except RasterioError as err:
        reason = str(err).replace(f"'{path}' ", "")  # rasterio's message names the file again
        raise InputError(path, f"unreadable or truncated GeoTIFF ({reason})") from err


def pixel_lines(paths: list[np.ndarray]) -> list[np.ndarray]:
    """Ordered front pixel paths (``(n, 2)`` ``(row, col)``) as ``(n, 2)`` ``(x, y)`` lines of pixel centres.

    Paths of fewer than two pixels are left out (a line needs two vertices).
    """
    return [path[:, ::-1] + 0.5 for path in paths if len(path) >= 2]


def front_lines(paths: list[np.ndarray], scene: GeoScene) -> list[np.ndarray]:
    """Ordered front pixel paths as ``(n, 2)`` ``(x, y)`` lines in the scene's CRS (see :func:`pixel_lines`)."""
    return [scene.pixel_to_map(line) for line in pixel_lines(paths)]


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


def crs_epsg(crs: Any) -> int | None:
    """The EPSG code of a CRS only if that code's CRS equals it exactly, else ``None`` (then use its WKT)."""
    from rasterio.crs import CRS

    code = crs.to_epsg()
    return code if code is not None and CRS.from_epsg(code) == crs else None


def crs_name(crs_wkt: str) -> str:
    """A short name of a CRS given as WKT: ``EPSG:<code>`` when that code describes it exactly, else its name
    (or, for an unnamed projected CRS, its projection method)."""
    from pyproj import CRS as ProjCRS
    from rasterio.crs import CRS

    code = crs_epsg(CRS.from_wkt(crs_wkt))
    if code is not None:
        return f"EPSG:{code}"
    crs = ProjCRS.from_wkt(crs_wkt)
    if crs.name.lower() == "unknown" and crs.coordinate_operation is not None:
        return crs.coordinate_operation.method_name
    return crs.name


def crs_description(scene: GeoScene) -> dict[str, Any]:
    """The scene's coordinate system for JSON: ``{"kind": "crs", "epsg", "wkt"}`` or ``{"kind": "pixel"}``.

    ``wkt`` is the full WKT (it defines the CRS); ``epsg`` is informative,
    ``None`` when no EPSG code describes the CRS exactly.
    """
    if not scene.georeferenced:
        return {"kind": "pixel"}
    return {"kind": "crs", "epsg": crs_epsg(scene.crs), "wkt": scene.crs.to_wkt()}


def reproject(xy: np.ndarray, source: str, target: str, where: Path) -> np.ndarray:
    """``(n, 2)`` points ``(x, y)`` in CRS ``source`` -> CRS ``target`` (the scenes'), both as pyproj reads them
    (WKT, ``EPSG:<code>``, ...); ``x`` is easting or longitude whatever a CRS's axis order. Unchanged when the
    two are one CRS.

    :class:`InputError` naming ``where`` (the file the points come from) when ``source`` is geographic and the
    points are no longitudes, latitudes (map coordinates in a GeoJSON without a ``crs`` member, most often).
    """
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    xy = np.asarray(xy, dtype=np.float64)
    source_crs, target_crs = ProjCRS.from_user_input(source), ProjCRS.from_user_input(target)
    if source_crs == target_crs:
        return xy
    if source_crs.is_geographic and not ((np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()):
        raise InputError(where, f"coordinates out of range for {source_crs.name} (a GeoJSON without a 'crs' "
                                f"member is longitude, latitude): add the scenes' CRS to the file")
    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))


#: Vertices a geometry read by :func:`read_vector` needs at least (a Polygon's ring is closed: 3 corners and back).
MIN_VERTICES = {"LineString": 2, "Polygon": 4}


def read_vector(path: str | Path, geometry: str) -> tuple[np.ndarray, str | None]:
    """The vertices ``(n, 2)`` ``(x, y)`` of a file's first ``geometry`` (``"LineString"``, or ``"Polygon"``: its
    outer ring), and the file's CRS (WKT or ``EPSG:<code>``; ``None`` for a CSV).

    Any vector file GDAL reads (GeoJSON, GeoPackage, Shapefile, ...; the parts of multi-geometries count; a
    GeoJSON without a ``crs`` member is WGS84 longitude, latitude), or a CSV with ``x``, ``y`` columns, a vertex a
    row, read by :func:`~nnunet_glacier.utilities.csv_tables.read_csv`. :class:`InputError` names the file and
    the problem (missing, unreadable, no such geometry, fewer than :data:`MIN_VERTICES` vertices, a CSV without
    numeric ``x``, ``y``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{geometry.lower()} file not found")
    if path.suffix.lower() == ".csv":
        return _vertices(path, _csv_vertices(path, geometry), geometry), None
    import pyogrio
    import shapely
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        meta, _, geometries, _ = pyogrio.raw.read(path, read_geometry=True)
    except (DataSourceError, DataLayerError) as err:
        raise InputError(path, f"not a vector file GDAL reads ({err})") from err
    for part in shapely.get_parts(shapely.from_wkb([g for g in geometries if g is not None])):
        if part.geom_type == geometry:
            ring = part.exterior if geometry == "Polygon" else part
            return _vertices(path, np.asarray(ring.coords)[:, :2], geometry), meta["crs"]
    raise InputError(path, f"no {geometry} feature")


def _csv_vertices(path: Path, geometry: str) -> np.ndarray:
    """The ``x``, ``y`` columns of a CSV as ``(n, 2)`` finite floats (:func:`read_vector`)."""
    try:
        rows = read_csv(path, ("x", "y"))
    except InputError as err:
        raise InputError(path, f"not a {geometry}: expected a CSV with x,y columns ({err.problem})") from err
    vertices = []
    for line, row in enumerate(rows, start=2):
        try:
            vertex = (float(row["x"]), float(row["y"]))
        except ValueError:
            vertex = (math.nan, math.nan)  # refused below, naming the cells
        if not all(math.isfinite(v) for v in vertex):
            raise InputError(path, f"line {line}: x, y must be finite numbers, got {row['x']!r}, {row['y']!r}")
        vertices.append(vertex)
    return np.array(vertices, dtype=np.float64).reshape(-1, 2)


def _vertices(path: Path, coords: np.ndarray, geometry: str) -> np.ndarray:
    """``coords`` when they are enough for ``geometry`` (:data:`MIN_VERTICES`), else :class:`InputError`."""
    needed = MIN_VERTICES[geometry]
    if len(coords) < needed:
        raise InputError(path, f"a {geometry} needs at least {needed} (x, y) vertices, got {len(coords)}")
    return coords


def to_lon_lat(lines: list[np.ndarray], crs: Any) -> list[np.ndarray]:
    """Lines in ``crs`` as WGS84 longitude, latitude (degrees)."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
    return [np.column_stack(transformer.transform(line[:, 0], line[:, 1])) for line in lines]


def write_front_geojson(path: str | Path, lines: list[np.ndarray], scene: GeoScene,
                        properties: dict[str, Any], *, rfc7946: bool = False) -> None:
    """Write front lines as a GeoJSON FeatureCollection of LineStrings, atomically.

    One feature per front segment with ``properties`` plus ``segment`` and
    ``length_m``. Georeferenced scenes are written in their CRS, named in the
    (pre-RFC 7946) ``crs`` member that GDAL reads: an EPSG URN when an EPSG
    code describes the CRS exactly, else its full WKT — or, with
    ``rfc7946``, as RFC 7946 GeoJSON in WGS84 longitude, latitude (7
    decimals, about 1 cm) without a ``crs`` member. Scenes without
    georeferencing are in pixel coordinates and say so in ``coordinates``.
    """
    lengths = [round(line_length_m(line, scene), 3) for line in lines]
    collection: dict[str, Any] = {"type": "FeatureCollection", "name": scene.stem}
    if not scene.georeferenced:
        collection["coordinates"] = "pixel (x = column + 0.5, y = row + 0.5, y down)"
        digits = 6
    elif rfc7946:
        lines, digits = to_lon_lat(lines, scene.crs), 7
    else:
        code = crs_epsg(scene.crs)
        name = f"urn:ogc:def:crs:EPSG::{code}" if code is not None else scene.crs.to_wkt()
        collection["crs"] = {"type": "name", "properties": {"name": name}}
        digits = 6
    collection["features"] = [{
        "type": "Feature",
        "properties": {**properties, "segment": index, "length_m": length},
        "geometry": {"type": "LineString", "coordinates": np.round(line, digits).tolist()},
    } for index, (line, length) in enumerate(zip(lines, lengths))]
    write_json(path, collection)


#: GeoPackage field types of :class:`VectorLayer` columns -> the numpy dtype written.
FIELD_DTYPES: dict[str, DTypeLike] = {"str": object, "float": np.float64, "int": np.int64, "bool": bool,
                                      "date": "datetime64[D]"}


@dataclass(frozen=True)
class VectorLayer:
    """One GeoPackage layer: ``columns`` name -> type (a key of :data:`FIELD_DTYPES`), one row per feature.

    ``rows`` hold the attribute values (``None`` = null; dates as ISO text or
    ``datetime.date``); ``geometries`` are shapely geometries (``None`` =
    no geometry); ``crs_wkt`` is the layer's CRS as WKT, ``None`` for pixel
    coordinates.
    """

    name: str
    crs_wkt: str | None
    columns: dict[str, str]
    rows: list[dict[str, Any]]
    geometries: list[Any]
    geometry_type: str = "MultiLineString"


def _field(values: list[Any], kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A column's values as the numpy array written and its null mask (``None``: nothing null or nulls encoded
    in the values, as NaN and NaT are)."""
    if kind == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64), None
    if kind == "date":
        return np.array(["NaT" if v is None else str(v) for v in values], dtype="datetime64[D]"), None
    nulls = np.array([v is None for v in values], dtype=bool)
    if kind == "bool" and nulls.any():
        raise ValueError("bool fields cannot be null")
    if kind == "int":
        return np.array([0 if v is None else v for v in values], dtype=np.int64), nulls if nulls.any() else None
    return np.array(values, dtype=FIELD_DTYPES[kind]), None


def write_geopackage(path: str | Path, layers: Sequence[VectorLayer]) -> None:
    """Write layers into a new GeoPackage (via GDAL, pyogrio), atomically; an empty layer keeps its schema."""
    import shapely
    from pyogrio.raw import write

    with atomic_path(path) as tmp:
        tmp.unlink()  # GDAL creates the file
        for layer in layers:
            geometry = np.array(shapely.to_wkb(layer.geometries), dtype=object) if layer.geometries else \
                np.array([], dtype=object)
            fields, masks = zip(*(_field([row[c] for row in layer.rows], kind)
                                  for c, kind in layer.columns.items()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pyogrio's "no crs" warning for pixel layers
                write(tmp, geometry=geometry, field_data=list(fields), fields=list(layer.columns),
                      field_mask=list(masks) if any(m is not None for m in masks) else None, layer=layer.name,
                      driver="GPKG", crs=layer.crs_wkt, geometry_type=layer.geometry_type)
