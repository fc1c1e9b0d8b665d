"""Evaluation time: our evaluator (KD-tree MDE) against a straightforward all-pairs baseline.

Data: a synthetic CaFFe-like test set written to a temporary folder — by
default 122 scenes (as CaFFe's test split) of 2000..3000 px edge with long,
wiggly calving fronts crossing the whole scene, zone and front-task
predictions whose fronts deviate from the label by a smooth random offset,
plus a few spurious blobs. ``--quick``: 6 scenes of 600..800 px.

Timed:

- the whole evaluator (:func:`nnunet_glacier.evaluation.evaluate.evaluate_predictions`:
  reading PNGs, post-processing both routes, bounding boxes, MDE, zone
  metrics, writing outputs), with one process and with all cores;
- the MDE stage alone on the post-processed fronts: ours
  (:func:`nnunet_glacier.evaluation.metrics.front_error`, KD-trees) against the
  baseline, the reference approach: for each direction the full
  ``scipy.spatial.distance.cdist`` matrix between predicted and true front
  pixels and its row minima (in row blocks so the matrix fits in memory);
- the MDE stage alone on single pairs of longer fronts (n random pixels
  each), to show how both scale with front length.

Both MDE implementations must agree to 1e-6 m per image and pooled, or the
script exits with an error. Usage::

    python benchmarks/bench_evaluate.py [--quick] [--images N] [--min-size PX] [--max-size PX] [--seed S]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.distance import cdist

from nnunet_glacier.data import caffe
from nnunet_glacier.data.labels import GLACIER, NA, OCEAN, ROCK
from nnunet_glacier.evaluation import metrics
from nnunet_glacier.evaluation.evaluate import POST_SUFFIX, evaluate_predictions

ZONE_PNG = np.array([0, 64, 127, 254], dtype=np.uint8)  # class -> CaFFe pixel value
GLACIERS = (("COL", 7), ("COL", 20), ("Mapple", 6), ("Mapple", 20))
BASELINE_BLOCK_ROWS = 1024


# --- synthetic scenes ------------------------------------------------------------------------------------------

def wiggly_border(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Column (float) of a calving front per row: random sines, amplitude proportional to wavelength.

    Wavelengths run from half the scene height (amplitude ~6 % of the width)
    down to ~1/60 of it (rough at small scales).
    """
    y = np.arange(rows)
    x = np.full(rows, cols * rng.uniform(0.4, 0.6))
    for fraction in (2, 7, 23, 61):
        amplitude = cols * 0.12 / fraction * rng.uniform(0.5, 1.5)
        x += amplitude * np.sin(2 * np.pi * y * fraction / rows + rng.uniform(0, 2 * np.pi))
    return x


def zones_from_border(border: np.ndarray, cols: int, rock_rows: int) -> np.ndarray:
    """Glacier left of the border, ocean right; rock in the top and bottom ``rock_rows``, NA in a corner."""
    zones = np.where(np.arange(cols)[None, :] < border[:, None], GLACIER, OCEAN).astype(np.uint8)
    zones[:rock_rows] = ROCK
    zones[-rock_rows:] = ROCK
    zones[-rock_rows:, : cols // 5] = NA
    return zones


def draw_border(shape: tuple[int, int], border: np.ndarray, rows: np.ndarray, thickness: int) -> np.ndarray:
    """A 0/255 ``uint8`` image with the border's polyline over ``rows``, ``thickness`` px wide (8-connected)."""
    image = np.zeros(shape, np.uint8)
    points = np.stack([np.round(border[rows]), rows], axis=1).astype(np.int32)
    cv2.polylines(image, [points], isClosed=False, color=255, thickness=thickness)
    return image


def scene(rng: np.random.Generator, rows: int, cols: int) -> dict[str, np.ndarray]:
    """Label zones and front, and zone and front-task predictions (CaFFe pixel values)."""
    rock_rows = rows // 20
    border = wiggly_border(rng, rows, cols)
    front_rows = np.arange(rock_rows, rows - rock_rows)
    offset = np.convolve(rng.normal(0, 6, rows), np.ones(101) / 101 * 10, mode="same")  # smooth, ~6 px std
    pred_border = border + offset
    pred_front = draw_border((rows, cols), pred_border, front_rows, thickness=5)
    for _ in range(3):  # spurious blobs, e.g. icebergs
        cv2.circle(pred_front, (int(rng.integers(cols)), int(rng.integers(rows))), int(rng.integers(2, 15)), 255, -1)
    return {"zones": ZONE_PNG[zones_from_border(border, cols, rock_rows)],
            "front": draw_border((rows, cols), border, front_rows, thickness=1),
            "pred_zones": ZONE_PNG[zones_from_border(pred_border, cols, rock_rows)], "pred_front": pred_front}


def write_set(root: Path, predictions: Path, n_images: int, sizes: tuple[int, int], seed: int) -> list[str]:
    """Write a CaFFe-like test split and its predictions; returns the stems."""
    rng = np.random.default_rng(seed)
    for folder in ("sar_images", "zones", "fronts"):
        (root / folder / "test").mkdir(parents=True)
    predictions.mkdir(parents=True)
    stems = []
    for index in range(n_images):
        glacier, resolution = GLACIERS[index % len(GLACIERS)]
        stem = f"{glacier}_{2008 + index // 12:04d}-{1 + index % 12:02d}-15_TSX_{resolution}_1_{index:03d}"
        rows, cols = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, size=2))
        arrays = scene(rng, rows, cols)
        cv2.imwrite(str(root / "sar_images" / "test" / f"{stem}.png"), np.zeros((rows, cols), np.uint8))
        cv2.imwrite(str(root / "zones" / "test" / f"{stem}_zones.png"), arrays["zones"])
        cv2.imwrite(str(root / "fronts" / "test" / f"{stem}_front.png"), arrays["front"])
        cv2.imwrite(str(predictions / f"{stem}_zones.png"), arrays["pred_zones"])
        cv2.imwrite(str(predictions / f"{stem}_front.png"), arrays["pred_front"])
        stems.append(stem)
    return stems


# --- the baseline ----------------------------------------------------------------------------------------------

def all_pairs_nearest(from_px: np.ndarray, to_px: np.ndarray) -> np.ndarray:
    """Baseline: distance from each pixel of ``from_px`` to the nearest of ``to_px`` via full cdist rows."""
    return np.concatenate([cdist(from_px[i:i + BASELINE_BLOCK_ROWS], to_px).min(axis=1)
                           for i in range(0, len(from_px), BASELINE_BLOCK_ROWS)])


def baseline_front_error(pred: np.ndarray, true: np.ndarray, pixel_size_m: float) -> metrics.FrontError:
    """Baseline :class:`~nnunet_glacier.evaluation.metrics.FrontError` from all pairwise distances (the reference approach)."""
    pred_px, true_px = np.argwhere(pred > 0), np.argwhere(true > 0)
    if len(pred_px) == 0 or len(true_px) == 0:
        return metrics.FrontError(len(pred_px), len(true_px), 0.0)
    total = all_pairs_nearest(pred_px, true_px).sum() + all_pairs_nearest(true_px, pred_px).sum()
    return metrics.FrontError(len(pred_px), len(true_px), float(total) * pixel_size_m)


# --- timing ----------------------------------------------------------------------------------------------------

def time_mde(front_pairs: list[tuple[np.ndarray, np.ndarray, float]]) -> dict[str, tuple[float, list]]:
    """Seconds and per-image errors of both MDE implementations over the same fronts."""
    timings = {}
    for name, function in (("ours (KD-tree)", metrics.front_error), ("baseline (all-pairs cdist)",
                                                                      baseline_front_error)):
        start = time.perf_counter()
        errors = [function(pred, true, pixel_size) for pred, true, pixel_size in front_pairs]
        timings[name] = (time.perf_counter() - start, errors)
    return timings


def check_agreement(ours: list[metrics.FrontError], baseline: list[metrics.FrontError]) -> float:
    """The largest per-image MDE difference (m); exits if it or the pooled MDEs differ by more than 1e-6 m."""
    worst = max((abs(a.mde_m - b.mde_m) for a, b in zip(ours, baseline) if a.has_front), default=0.0)
    pooled = abs(metrics.summarise_fronts(ours).mde_pooled_m - metrics.summarise_fronts(baseline).mde_pooled_m)
    if worst > 1e-6 or pooled > 1e-6:
        sys.exit(f"MDE mismatch: per image up to {worst:.3g} m, pooled {pooled:.3g} m")
    return worst


def random_front(rng: np.random.Generator, edge_px: int, n_px: int) -> np.ndarray:
    """A ``bool`` mask of ``edge_px`` x ``edge_px`` with ``n_px`` distinct random front pixels."""
    mask = np.zeros(edge_px * edge_px, bool)
    mask[rng.choice(mask.size, n_px, replace=False)] = True
    return mask.reshape(edge_px, edge_px)


def time_by_front_length(lengths: list[int], edge_px: int, seed: int) -> list[tuple[int, float, float]]:
    """Seconds of both MDE implementations for one pair of random fronts of each length (pixels)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n_px in lengths:
        pair = (random_front(rng, edge_px, n_px), random_front(rng, edge_px, n_px), 1.0)
        (ours_s, ours), (base_s, baseline) = time_mde([pair]).values()
        check_agreement(ours, baseline)
        rows.append((n_px, ours_s, base_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 scenes of 600..800 px")
    parser.add_argument("--images", type=int, default=None, help="number of scenes (default 122; quick 6)")
    parser.add_argument("--min-size", type=int, default=None, help="smallest scene edge in px (default 2000)")
    parser.add_argument("--max-size", type=int, default=None, help="largest scene edge in px (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()
    n_images = args.images or (6 if args.quick else 122)
    sizes = (args.min_size or (600 if args.quick else 2000), args.max_size or (800 if args.quick else 3000))
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        root, predictions = Path(tmp) / "caffe", Path(tmp) / "predictions"
        start = time.perf_counter()
        stems = write_set(root, predictions, n_images, sizes, args.seed)
        print(f"wrote {n_images} synthetic scenes of {sizes[0]}..{sizes[1]} px in {time.perf_counter() - start:.1f} s")

        wall = {}
        for workers in sorted({1, cores}):
            start = time.perf_counter()
            evaluation = evaluate_predictions(predictions, root, out=Path(tmp) / f"eval_{workers}", workers=workers,
                                              progress=False)
            wall[workers] = time.perf_counter() - start
        samples = {s.stem: s for s in caffe.discover(root, ("test",))}
        pairs = [(caffe.read_front(evaluation.out / folder / f"{stem}{POST_SUFFIX}.png"),
                  caffe.read_front(samples[stem].front), samples[stem].pixel_size_m)
                 for folder in ("front", ".") for stem in stems]  # front route, then the zone route
        timings = time_mde(pairs)

    (ours_s, ours), (base_s, baseline) = timings.values()
    worst = check_agreement(ours, baseline)
    n_px = np.array([e.n_pred_px + e.n_true_px for e in ours])
    print(f"front pixels per scene and route (predicted + true): mean {n_px.mean():.0f}, max {n_px.max()}")
    print(f"\nwhole evaluator, {n_images} scenes x 2 routes (zone, front):")
    for workers, seconds in wall.items():
        print(f"  {workers} process(es): {seconds:7.2f} s  ({seconds / n_images * 1000:.0f} ms per scene)")
    print(f"\nMDE stage only, {len(pairs)} front pairs:")
    for name, seconds in ((name, s) for name, (s, _) in timings.items()):
        print(f"  {name:<28} {seconds:8.2f} s  ({seconds / len(pairs) * 1000:8.1f} ms per pair)")
    print(f"  speed-up: {base_s / ours_s:.0f}x; largest per-image MDE difference {worst:.1e} m")
    for route, errors in (("front", ours[:n_images]), ("zone", ours[n_images:])):
        print(f"  pooled MDE, {route} route: {metrics.summarise_fronts(errors).mde_pooled_m:.3f} m (both agree)")

    edge = sizes[1]
    print(f"\nMDE of one pair of fronts of n random pixels each in a {edge} x {edge} image (results agree):")
    print(f"  {'n':>7} {'ours s':>9} {'baseline s':>11} {'speed-up':>9}")
    for n_px, ours_s, base_s in time_by_front_length([500, 2000] if args.quick else [1000, 4000, 16000], edge,
                                                     args.seed):
        print(f"  {n_px:>7} {ours_s:>9.3f} {base_s:>11.3f} {base_s / ours_s:>8.0f}x")


if __name__ == "__main__":
    main()
