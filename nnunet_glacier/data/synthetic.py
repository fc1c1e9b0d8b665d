"""Synthetic CaFFe-like SAR scenes, for tests and the demo.

:func:`generate_caffe` writes scenes in the exact CaFFe layout and naming
(see :mod:`nnunet_glacier.data.caffe`), so every part of the tool can run on them
without the real data set. Each scene is a fjord seen from above, ``x``
(columns) running from the glacier's side to the sea:

- rock walls above and below; the fjord opens towards the sea;
- a glacier tongue entering from one image edge, ending at the calving front;
- ocean with a bright, blotchy ice melange that fades away from the front;
- a corner wedge without information (NA), as outside a sensor's swath.

Mean intensities differ per class (NA 0, ocean 45, melange up to 115, rock
150, glacier 205 on the 0..255 scale), modulated by smooth relief and by
multiplicative speckle drawn from a gamma distribution with mean 1, as in
multi-looked SAR. The front follows the zones exactly (ocean pixels with a
4-neighbour glacier pixel, :func:`nnunet_glacier.data.labels.front_from_zones`).

Names are real CaFFe glacier codes (training glaciers Crane, DBE, JAC, Jorum,
SI; test glaciers COL, Mapple) with sensors active at the scene's date and
their resolution. Scenes of one glacier share its fjord; the front retreats
over the years and advances in the glacier's winter, so time series show a
trend and a seasonal cycle. Everything is drawn from one seeded generator:
the same arguments give byte-identical files.

The root also gets :data:`MARKER` (``synthetic.json``, the generator's
arguments), so that reports can say that their data are synthetic
(:func:`is_synthetic`) instead of guessing from names.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nnunet_glacier.data import caffe, labels
from nnunet_glacier.data.experiments import TASKS
from nnunet_glacier.errors import InputError
from nnunet_glacier.utilities.atomic import write_json, write_png, write_text

GLACIERS_BY_SPLIT = {"train": ("Crane", "DBE", "JAC", "Jorum", "SI"), "test": ("COL", "Mapple")}
#: Pixel size in metres written into the names, per sensor (CaFFe's resolutions).
SENSOR_RESOLUTION_M = {"RSAT": 12, "S1": 20, "ENVISAT": 20, "ERS": 20, "PALSAR": 17, "TSX": 7, "TDX": 6}
#: First and last year (inclusive) in which a sensor takes scenes.
SENSOR_YEARS = {"ERS": (1995, 2010), "RSAT": (1997, 2008), "ENVISAT": (2003, 2011), "PALSAR": (2007, 2011),
                "TSX": (2008, 2021), "TDX": (2011, 2021), "S1": (2015, 2021)}
FIRST_YEAR, LAST_YEAR = 1995, 2021
MIN_SIZE_PX = 32

#: Mean intensity (0..255) of the zone classes NA, rock, glacier, ocean; and of dense ice melange.
CLASS_MEANS = np.array([0.0, 115.0, 200.0, 40.0], dtype=np.float32)
MELANGE_MEAN = 100.0
SPECKLE_LOOKS = 12  # gamma shape of the speckle; its relative standard deviation is 1 / sqrt(looks)

#: Glacier extent (fraction of the image width the tongue covers) at FIRST_YEAR, its total retreat
#: until LAST_YEAR, and the amplitude of its seasonal advance and retreat.
EXTENT_START, EXTENT_RETREAT, EXTENT_SEASONAL = 0.62, 0.22, 0.05
#: Day of the year of the front's farthest seasonal advance: the end of the hemisphere's winter.
ADVANCE_PEAK_DAY = {"north": 80, "south": 240}
BBOX_MARGIN = 0.2  # bounding boxes extend the front's extent by this fraction of the image size


@dataclass(frozen=True)
class Fjord:
    """The fixed geometry of one glacier's fjord; phases are fractions of a sine period."""

    wall_phases: tuple[float, float]
    front_phase: float
    flip_rows: bool
    flip_cols: bool

    @classmethod
    def random(cls, rng: np.random.Generator) -> Fjord:
        """A fjord with random wall and front shapes and a random orientation."""
        return cls((rng.random(), rng.random()), rng.random(), bool(rng.integers(2)), bool(rng.integers(2)))


@dataclass(frozen=True)
class Scene:
    """One synthetic scene: SAR image (``uint8``), zone classes (0..3) and front mask (0/1)."""

    stem: str
    split: str
    image: np.ndarray
    zones: np.ndarray
    front: np.ndarray


def scene_dates(rng: np.random.Generator, glacier: str, count: int) -> list[dt.date]:
    """``count`` distinct dates in FIRST_YEAR..LAST_YEAR, alternately in the glacier's winter and summer.

    Each date lies in its own (year, month); raises ``ValueError`` when a
    season has fewer months in the period than scenes asked of it.
    """
    north = glacier in caffe.NORTHERN_GLACIERS
    winter = caffe.NORTHERN_WINTER_MONTHS if north else caffe.SOUTHERN_WINTER_MONTHS
    seasons = (sorted(winter), sorted(set(range(1, 13)) - winter))
    first = int(rng.integers(2))
    dates = []
    for season, months in enumerate(seasons):
        n = len(range((season - first) % 2, count, 2))
        slots = [(year, month) for year in range(FIRST_YEAR, LAST_YEAR + 1) for month in months]
        if n > len(slots):
            raise ValueError(f"at most {2 * len(slots)} scenes per glacier, asked {count} of {glacier}")
        for index in rng.choice(len(slots), size=n, replace=False):
            year, month = slots[index]
            dates.append(dt.date(year, month, int(rng.integers(1, 29))))
    return sorted(dates)


def scene_stem(rng: np.random.Generator, glacier: str, date: dt.date) -> str:
    """A CaFFe stem ``Glacier_YYYY-MM-DD_Sensor_Resolution_QualityFactor_Orbit`` for a scene of ``date``."""
    active = [s for s, (first, last) in SENSOR_YEARS.items() if first <= date.year <= last]
    sensor = active[int(rng.integers(len(active)))]
    quality = int(rng.integers(1, 6))
    orbit = int(rng.integers(1, 500))
    return f"{glacier}_{date.isoformat()}_{sensor}_{SENSOR_RESOLUTION_M[sensor]}_{quality}_{orbit:03d}"


def glacier_extent(glacier: str, date: dt.date) -> float:
    """Fraction of the image width covered by the glacier tongue on ``date``.

    A linear retreat from FIRST_YEAR to LAST_YEAR plus a seasonal cycle whose
    farthest advance is at the end of the glacier's winter.
    """
    day = date.timetuple().tm_yday
    progress = (date.year + day / 365.25 - FIRST_YEAR) / (LAST_YEAR + 1 - FIRST_YEAR)
    hemisphere = "north" if glacier in caffe.NORTHERN_GLACIERS else "south"
    seasonal = math.cos(2 * math.pi * (day - ADVANCE_PEAK_DAY[hemisphere]) / 365.25)
    return EXTENT_START - EXTENT_RETREAT * progress + EXTENT_SEASONAL * seasonal


def fjord_zones(shape: tuple[int, int], fjord: Fjord, extent: float, swath_edge: float) -> np.ndarray:
    """Zone classes (0 NA, 1 rock, 2 glacier, 3 ocean) of a fjord scene.

    ``extent`` is the glacier's mean front position as a fraction of the
    width; ``swath_edge`` (fraction of the image, ~0.2) sizes the NA wedge.
    """
    rows, cols = shape
    y = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    x = (np.arange(cols, dtype=np.float32) / cols)[None, :]
    mouth = np.clip((x - 0.7) / 0.3, 0, 1)  # the fjord widens towards the sea
    top = 0.27 + 0.04 * np.sin(2 * np.pi * (1.5 * x + fjord.wall_phases[0])) - 0.15 * mouth
    bottom = 0.73 + 0.04 * np.sin(2 * np.pi * (1.3 * x + fjord.wall_phases[1])) + 0.15 * mouth
    front = extent + 0.04 * np.sin(2 * np.pi * (2 * y + fjord.front_phase))
    in_fjord = (y > top) & (y < bottom)
    zones = np.full(shape, labels.ROCK, dtype=np.uint8)
    zones[in_fjord & (x < front)] = labels.GLACIER
    zones[in_fjord & (x >= front)] = labels.OCEAN
    zones[y + (1 - x) < swath_edge] = labels.NA
    if fjord.flip_rows:
        zones = zones[::-1]
    if fjord.flip_cols:
        zones = zones[:, ::-1]
    return np.ascontiguousarray(zones)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to zero mean and unit standard deviation (``float32``)."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma_px)
    return (noise - noise.mean()) / max(float(noise.std()), 1e-6)


def sar_image(rng: np.random.Generator, zones: np.ndarray, front: np.ndarray) -> np.ndarray:
    """A speckled SAR-like image (``uint8``) of zone classes, with ice melange near the front mask."""
    shape = zones.shape
    image = CLASS_MEANS[zones] * np.clip(1 + 0.15 * smooth_noise(rng, shape, 0.04 * max(shape)), 0.3, None)
    distance_px = cv2.distanceTransform((front == 0).astype(np.uint8), cv2.DIST_L2, 3)
    density = np.exp(-distance_px / (0.12 * max(shape))) * (smooth_noise(rng, shape, 1.5) > 0)
    ocean = zones == labels.OCEAN
    image[ocean] += (MELANGE_MEAN - CLASS_MEANS[labels.OCEAN]) * density[ocean]
    image *= rng.gamma(SPECKLE_LOOKS, 1 / SPECKLE_LOOKS, shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, name: caffe.SceneName, split: str, fjord: Fjord,
               shape: tuple[int, int]) -> Scene:
    """Draw the zones, front and image of the scene ``name`` in its glacier's ``fjord``."""
    extent = glacier_extent(name.glacier, name.date) + rng.normal(0, 0.01)
    zones = fjord_zones(shape, fjord, extent, swath_edge=rng.uniform(0.15, 0.3))
    front = labels.front_from_zones(zones)
    return Scene(name.stem, split, sar_image(rng, zones, front), zones, front)


def bbox_text(front: np.ndarray) -> str:
    """A CaFFe bounding-box file: header, then corners ``x,y`` left-upper, left-lower, right-lower, right-upper.

    The box covers the front's extent plus BBOX_MARGIN of the image size on
    every side, clipped to the image (pixels; maxima exclusive).
    """
    rows, cols = np.nonzero(front)
    margin_y, margin_x = (round(BBOX_MARGIN * n) for n in front.shape)
    top, bottom = max(rows.min() - margin_y, 0), min(rows.max() + 1 + margin_y, front.shape[0])
    left, right = max(cols.min() - margin_x, 0), min(cols.max() + 1 + margin_x, front.shape[1])
    corners = ((left, top), (left, bottom), (right, bottom), (right, top))
    return "bounding box corners x,y in pixels\n" + "".join(f"{x},{y}\n" for x, y in corners)


def write_scene(root: Path, scene: Scene, with_bounding_box: bool) -> Path:
    """Write a scene's image, zones, front (and bounding box) in the CaFFe layout; returns the image path."""
    image = root / "sar_images" / scene.split / f"{scene.stem}.png"
    write_png(image, scene.image)
    write_png(root / "zones" / scene.split / f"{scene.stem}_zones.png", TASKS["zone"].to_png(scene.zones))
    write_png(root / "fronts" / scene.split / f"{scene.stem}_front.png", TASKS["front"].to_png(scene.front))
    if with_bounding_box:
        write_text(root / "bounding_boxes" / f"{scene.stem}_bbox.txt", bbox_text(scene.front))
    return image


def plan_names(rng: np.random.Generator, split: str, count: int) -> list[caffe.SceneName]:
    """Names of ``count`` scenes of a split, spread round-robin over the split's glaciers."""
    glaciers = GLACIERS_BY_SPLIT[split]
    names = []
    for index, glacier in enumerate(glaciers):
        for date in scene_dates(rng, glacier, len(range(index, count, len(glaciers)))):
            names.append(caffe.SceneName.parse(scene_stem(rng, glacier, date)))
    return names


def _check_no_foreign_scenes(root: Path, names: dict[str, list[caffe.SceneName]]) -> None:
    """Refuse to mix scenes into a root holding other scenes (a re-run with the same arguments is fine)."""
    for split, split_names in names.items():
        stems = {name.stem for name in split_names}
        for image in sorted((root / "sar_images" / split).glob("*.png")):
            if image.stem not in stems:
                raise InputError(image, "the output folder already holds other scenes; "
                                        "choose an empty folder")


#: The file in a CaFFe root that marks its scenes as synthetic (written by :func:`generate_caffe`).
MARKER = "synthetic.json"


def is_synthetic(root: str | Path) -> bool:
    """Whether the CaFFe root ``root`` holds scenes written by :func:`generate_caffe` (it has :data:`MARKER`)."""
    return (Path(root) / MARKER).is_file()


def generate_caffe(root: Path, n_train: int = 8, n_test: int = 4, size: tuple[int, int] = (128, 128),
                   seed: int = 0, with_bounding_boxes: bool = True) -> list[Path]:
    """Write ``n_train`` + ``n_test`` synthetic scenes of ``size`` (rows, columns) pixels under ``root``.

    Layout and names are CaFFe's (see the module docstring); bounding-box
    files ``bounding_boxes/<stem>_bbox.txt`` are written if asked. Returns the
    image paths, train split first; ``root/synthetic.json`` (:data:`MARKER`)
    records the arguments. Raises ``ValueError`` for negative counts
    or sides below MIN_SIZE_PX, :class:`~nnunet_glacier.errors.InputError` if
    ``root`` already holds other scenes.
    """
    if n_train < 0 or n_test < 0:
        raise ValueError(f"scene counts must not be negative, got {n_train} train and {n_test} test")
    shape = (int(size[0]), int(size[1]))
    if min(shape) < MIN_SIZE_PX:
        raise ValueError(f"scenes need at least {MIN_SIZE_PX} x {MIN_SIZE_PX} pixels, got {shape[0]} x {shape[1]}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    fjords = {glacier: Fjord.random(rng) for split in caffe.SPLITS for glacier in GLACIERS_BY_SPLIT[split]}
    names = {"train": plan_names(rng, "train", n_train), "test": plan_names(rng, "test", n_test)}
    _check_no_foreign_scenes(root, names)
    write_json(root / MARKER, {"generator": __name__, "n_train": n_train, "n_test": n_test, "size": list(shape),
                               "seed": seed, "with_bounding_boxes": with_bounding_boxes})
    images = []
    for split, split_names in names.items():
        for name in split_names:
            scene = make_scene(rng, name, split, fjords[name.glacier], shape)
            images.append(write_scene(root, scene, with_bounding_boxes))
    return images
