"""The CaFFe benchmark's data: file names, discovery, reading and validation.

CaFFe ("Calving Fronts and where to Find thEm", Gourmelon et al. 2022) layout::

    <root>/sar_images/{train,test}/<stem>.png          8-bit grey SAR intensity
    <root>/zones/{train,test}/<stem>_zones.png         0 NA, 64 rock, 127 glacier, 254 ocean
    <root>/fronts/{train,test}/<stem>_front.png        255 on a one-pixel front line, 0 elsewhere
    <root>/bounding_boxes/<stem>*.txt                  optional: header, then 4 lines ``x,y``

with ``stem = Glacier_YYYY-MM-DD_Sensor_Resolution_QualityFactor_Orbit``
(resolution in metres per pixel). The pixel sizes a raw dataset was
exported with are recorded in its ``dataset.json`` and read back here too
(:func:`pixel_size_record`, :func:`recorded_pixel_sizes`). Every problem is
reported as a :class:`InputError` whose message starts with the offending file.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nnunet_glacier.data.tasks import TASKS
from nnunet_glacier.errors import InputError

SPLITS = ("train", "test")

#: Glacier codes of CaFFe and their full names.
GLACIERS = {
    "COL": "Columbia",
    "Mapple": "Mapple",
    "Crane": "Crane",
    "DBE": "Dinsmoor-Bombardier-Edgeworth",
    "JAC": "Jakobshavn Isbrae",
    "Jorum": "Jorum",
    "SI": "Sjogren-Inlet",
}


def glacier_code(glacier: str) -> str:
    """The CaFFe code of a glacier given by code or full name, any case (``"jakobshavn isbrae"`` -> ``"JAC"``).

    Names CaFFe does not know are returned unchanged.
    """
    return next((code for code, full in GLACIERS.items() if glacier.lower() in (code.lower(), full.lower())),
                glacier)


#: Northern-hemisphere glaciers (winter = Sep..Mar); all others are on the Antarctic Peninsula (winter = Apr..Aug).
NORTHERN_GLACIERS = frozenset({"COL", "JAC"})
NORTHERN_WINTER_MONTHS = frozenset({9, 10, 11, 12, 1, 2, 3})
SOUTHERN_WINTER_MONTHS = frozenset({4, 5, 6, 7, 8})
SENSORS = ("RSAT", "S1", "ENVISAT", "ERS", "PALSAR", "TSX", "TDX")

_STEM = re.compile(
    r"^(?P<glacier>[A-Za-z]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<sensor>[A-Za-z0-9]+)_"
    r"(?P<resolution>\d+(?:\.\d+)?)_(?P<quality>\d+)_(?P<orbit>[A-Za-z0-9]+)$"
)


class ConversionWarning(UserWarning):
    """An input was converted (RGB to grey, 16 to 8 bit); the message names the file."""


@dataclass(frozen=True)
class SceneName:
    """A parsed CaFFe stem ``Glacier_YYYY-MM-DD_Sensor_Resolution_QualityFactor_Orbit``.

    ``resolution_m`` is the sensor's pixel size in metres as written in the name.
    """

    stem: str
    glacier: str
    date: dt.date
    sensor: str
    resolution_m: float
    quality_factor: int
    orbit: str

    @classmethod
    def parse(cls, stem: str, path: str | Path | None = None) -> SceneName:
        """Parse a stem; raises :class:`InputError` naming ``path`` (or the stem)."""
        match = _STEM.match(stem)
        where = path if path is not None else stem
        if match is None:
            raise InputError(where, "file name does not follow "
                                    "Glacier_YYYY-MM-DD_Sensor_Resolution_QualityFactor_Orbit")
        try:
            date = dt.date.fromisoformat(match["date"])
        except ValueError as err:
            raise InputError(where, f"invalid date {match['date']!r} in file name") from err
        resolution = float(match["resolution"])
        if resolution <= 0:
            raise InputError(where, "resolution in the file name must be positive")
        return cls(stem, match["glacier"], date, match["sensor"], resolution,
                   int(match["quality"]), match["orbit"])

    @property
    def hemisphere(self) -> str:
        return "north" if self.glacier in NORTHERN_GLACIERS else "south"

    @property
    def season(self) -> str:
        """``"winter"`` or ``"summer"`` of the glacier's hemisphere."""
        winter = NORTHERN_WINTER_MONTHS if self.hemisphere == "north" else SOUTHERN_WINTER_MONTHS
        return "winter" if self.date.month in winter else "summer"


@dataclass(frozen=True)
class Sample:
    """One CaFFe scene: its image, labels (absent for unlabelled scenes) and metadata.

    ``pixel_size_m`` is the size of one pixel of *these files* in metres: the
    name's resolution unless overridden (e.g. for downscaled copies).
    """

    name: SceneName
    split: str
    image: Path
    zones: Path | None
    front: Path | None
    bbox: Path | None
    pixel_size_m: float

    @property
    def stem(self) -> str:
        return self.name.stem


PixelSize = float | Mapping[str, float] | None


def resolve_pixel_size(name: SceneName, pixel_size: PixelSize) -> float:
    """The pixel size of a scene in metres: an override (one number, or per stem) or the name's."""
    if pixel_size is None:
        return name.resolution_m
    if isinstance(pixel_size, Mapping):
        return float(pixel_size.get(name.stem, name.resolution_m))
    return float(pixel_size)


def pixel_size_record(samples: Iterable[Sample]) -> dict[str, float]:
    """Each sample's pixel size in metres by stem: what export records in a raw dataset's ``dataset.json``
    as ``caffe.pixel_size_m`` (read back by :func:`recorded_pixel_sizes`)."""
    return {s.stem: s.pixel_size_m for s in samples}


def dataset_json_file(dataset: str | Path) -> Path:
    """The ``dataset.json`` of a raw dataset given as its folder or as the file itself."""
    path = Path(dataset)
    return path / "dataset.json" if path.is_dir() else path


def recorded_pixel_sizes(dataset: str | Path) -> dict[str, float]:
    """The pixel size (metres) of each case as export recorded it (:func:`pixel_size_record`).

    ``dataset`` is the raw dataset's folder or its ``dataset.json``; a file
    that is missing, unreadable or holds no ``caffe.pixel_size_m`` record
    raises :class:`InputError` naming it.
    """
    path = dataset_json_file(dataset)
    try:
        sizes = json.loads(path.read_text())["caffe"]["pixel_size_m"]
        return {str(stem): float(size) for stem, size in sizes.items()}
    except FileNotFoundError as err:
        raise InputError(path, "file not found: not an exported raw dataset") from err
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(path, f"no pixel sizes recorded by nnunet_glacier's export ({err!r})") from err


def discover(root: str | Path, splits: tuple[str, ...] = SPLITS, *, pixel_size: PixelSize = None,
             require_labels: bool = True) -> list[Sample]:
    """Find and pair all scenes of a CaFFe root (sorted by split, then stem).

    Checks names, that every image has its zone and front label (unless
    ``require_labels`` is false) and that no label lacks its image. Files are
    not opened here; use :func:`load_sample` to read and validate them.
    """
    root = Path(root)
    image_root = root / "sar_images"
    if not image_root.is_dir():
        raise InputError(root, "not a CaFFe root: no sar_images/ folder")
    boxes = _bounding_boxes(root / "bounding_boxes")
    samples = []
    for split in splits:
        split_dir = image_root / split
        images = without_apple_double(sorted(split_dir.glob("*.png")))
        stems = {p.stem for p in images}
        for label_kind, suffix in (("zones", "_zones"), ("fronts", "_front")):
            for label in without_apple_double(sorted((root / label_kind / split).glob("*.png"))):
                if not label.stem.endswith(suffix) or label.stem[: -len(suffix)] not in stems:
                    raise InputError(label, f"label without a matching image in {split_dir}")
        for image in images:
            name = SceneName.parse(image.stem, image)
            zones = root / "zones" / split / f"{image.stem}_zones.png"
            front = root / "fronts" / split / f"{image.stem}_front.png"
            if require_labels:
                for label in (zones, front):
                    if not label.is_file():
                        raise InputError(image, f"missing label {label}")
            samples.append(Sample(name, split, image, zones if zones.is_file() else None,
                                  front if front.is_file() else None, boxes.get(image.stem),
                                  resolve_pixel_size(name, pixel_size)))
    if not samples:
        raise InputError(root, f"no images found in sar_images/{{{','.join(splits)}}}")
    return samples


def without_apple_double(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without macOS AppleDouble files ``._<name>`` (metadata macOS writes beside each file on disks
    of other systems; not images), each left out with a warning naming it."""
    kept = []
    for path in paths:
        if path.name.startswith("._"):
            warnings.warn(f"{path}: macOS metadata file (AppleDouble ._ file), skipped", stacklevel=2)
        else:
            kept.append(path)
    return kept


def _bounding_boxes(folder: Path) -> dict[str, Path]:
    """Map stems to bounding-box files ``<stem>*.txt`` (CaFFe names them ``<stem>_bbox.txt``)."""
    if not folder.is_dir():
        return {}
    boxes = {}
    for path in sorted(folder.glob("*.txt")):
        match = re.match(r"^([A-Za-z]+_\d{4}-\d{2}-\d{2}_[A-Za-z0-9]+_[\d.]+_\d+_[A-Za-z0-9]+?)(?:_.*)?$", path.stem)
        if match:
            boxes[match[1]] = path
    return boxes


def read_grey(path: str | Path, *, label: bool = False) -> np.ndarray:
    """Read a PNG as a 2-D ``uint8`` array, converting where it is safe.

    - RGB(A) whose colour channels are equal: the first channel is used.
    - RGB(A) with differing channels: converted to luminance for images (with a
      :class:`ConversionWarning`); an error for labels.
    - 16-bit: values <= 255 are cast; images with larger values are scaled
      linearly to 0..255 (with a warning); an error for labels.
    Unreadable or truncated files raise :class:`InputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise InputError(path, "unreadable or truncated image")
    if array.ndim == 3:
        array = _to_single_channel(array, path, label)
    if array.dtype != np.uint8:
        array = _to_8bit(array, path, label)
    return array


def _to_single_channel(array: np.ndarray, path: Path, label: bool) -> np.ndarray:
    colour = array[..., :3]
    if (colour == colour[..., :1]).all():
        warnings.warn(f"{path}: RGB image with equal channels, using one channel", ConversionWarning, stacklevel=3)
        return np.ascontiguousarray(colour[..., 0])
    if label:
        raise InputError(path, "label is a colour image; labels must be single-channel grey values")
    warnings.warn(f"{path}: colour image converted to grey (luminance)", ConversionWarning, stacklevel=3)
    return cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2GRAY)


def _to_8bit(array: np.ndarray, path: Path, label: bool) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.integer) and not label:
        low, high = float(array.min()), float(array.max())
        warnings.warn(f"{path}: {array.dtype} image scaled from {low:g}..{high:g} to 0..255",
                      ConversionWarning, stacklevel=3)
        scaled = (array - low) / max(high - low, 1e-12) * 255
        return np.round(scaled).astype(np.uint8)
    if array.max() <= 255:
        warnings.warn(f"{path}: {array.dtype} image with values <= 255 cast to 8 bit", ConversionWarning, stacklevel=3)
        return array.astype(np.uint8)
    if label:
        raise InputError(path, f"{array.dtype} label with values above 255; labels must be 8-bit")
    high = float(array.max())
    warnings.warn(f"{path}: {array.dtype} image scaled from 0..{high:g} to 0..255", ConversionWarning, stacklevel=3)
    return np.round(array.astype(np.float64) / high * 255).astype(np.uint8)


def read_zones(path: str | Path) -> np.ndarray:
    """Read a zone label as classes 0 NA, 1 rock, 2 glacier, 3 ocean (``uint8``)."""
    return read_label(path, "zone")


def read_front(path: str | Path) -> np.ndarray:
    """Read a front label as a mask: 1 on the front, 0 elsewhere (``uint8``)."""
    return read_label(path, "front")


def read_label(path: str | Path, task: str) -> np.ndarray:
    """Read a label or prediction PNG of a task (``tasks.TASKS``) as class indices (``uint8``).

    Pixel values outside the task's ``png_values`` raise :class:`InputError`.
    """
    pixels = read_grey(path, label=True)
    try:
        return TASKS[task].from_png(pixels)
    except ValueError as err:
        raise InputError(path, str(err)) from err


@dataclass(frozen=True)
class BoundingBox:
    """An axis-aligned box in pixel coordinates: ``x`` columns, ``y`` rows, max exclusive."""

    x_min: int
    x_max: int
    y_min: int
    y_max: int

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of ``shape`` that is true inside the box.

        Clipping follows the CaFFe reference evaluation exactly: minima below 0
        become 0, maxima beyond the image edge become ``size - 1``.
        """
        rows, cols = shape
        y_max = rows - 1 if self.y_max > rows else self.y_max
        x_max = cols - 1 if self.x_max > cols else self.x_max
        inside = np.zeros(shape, dtype=bool)
        inside[max(self.y_min, 0):y_max, max(self.x_min, 0):x_max] = True
        return inside


def read_bbox(path: str | Path) -> BoundingBox:
    """Read a CaFFe bounding-box file: a header line, then 4 corner lines ``x,y``.

    Corners are rounded to the nearest pixel; the box spans their minimum
    (inclusive) to maximum (exclusive) in each axis, whatever the corner order.
    """
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as err:
        raise InputError(path, f"cannot read bounding box ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise InputError(path, "bounding box is not a text file") from err
    if len(lines) < 5:
        raise InputError(path, f"bounding box needs a header and 4 corner lines, found {len(lines)} lines")
    try:
        corners = [tuple(round(float(v)) for v in line.split(",")) for line in lines[1:5]]
    except ValueError as err:
        raise InputError(path, f"bounding box corners must be 'x,y' numbers ({err})") from err
    if any(len(c) != 2 for c in corners):
        raise InputError(path, "bounding box corners must be 'x,y' pairs")
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    return BoundingBox(min(xs), max(xs), min(ys), max(ys))


@dataclass(frozen=True)
class LoadedSample:
    """A sample's arrays: SAR image (``uint8``), zone classes and front mask (``None`` if unlabelled)."""

    sample: Sample
    image: np.ndarray
    zones: np.ndarray | None
    front: np.ndarray | None


def load_sample(sample: Sample) -> LoadedSample:
    """Read and validate a sample's image and labels (same size, allowed values)."""
    image = read_grey(sample.image)
    labels: dict[str, np.ndarray | None] = {}
    for kind, path, reader in (("zones", sample.zones, read_zones), ("front", sample.front, read_front)):
        if path is None:
            labels[kind] = None
            continue
        array = reader(path)
        if array.shape != image.shape:
            raise InputError(path, f"size {array.shape[1]}x{array.shape[0]} differs from image "
                                   f"{sample.image.name} ({image.shape[1]}x{image.shape[0]})")
        labels[kind] = array
    return LoadedSample(sample, image, labels["zones"], labels["front"])
