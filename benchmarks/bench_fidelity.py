"""Fidelity: our evaluator against the CaFFe reference evaluation, on perturbed predictions of real scenes.

Data: the 77 test scenes of ../shared/data/caffe_256 (or ``--data``), at a
pixel size of 75 m (the downscaled copies have no true resolution; 75 m is
the size the issue's comparison used), without bounding boxes. From each
scene's label a fixed set of predictions is drawn (seed ``--seed``):

- front-task maps of two kinds: ``perturbed`` (the front dilated, shifted a
  few pixels, with spurs and speckle) and ``loops`` (the front dilated, with
  holes punched into the band and small rings hung on it, so the skeleton
  has loops);
- zone maps: the label with its glacier border moved, blobs of other
  classes, and in every third scene one class (cycling through all four)
  missing from the prediction;
- fused maps: those zone maps with the perturbed front band as class 4.

Both sides see the same PNGs. Ours: :func:`nnunet_glacier.evaluation.evaluate.evaluate_predictions`.
The reference: tests/caffe_reference.py, the published evaluation's steps
(skimage + FilFinder + scikit-learn, see there), with FilFinder's random
tie-break pinned to the published one. Printed per route: pooled and mean
MDE and images without a front, zone precision/recall (macro and per class)
of both, and the largest differences. Goal: MDE identical to 0.01 m, zone
scores to 1e-12; the script exits 1 if not. ``--unseeded N`` also runs the
reference front route N times with FilFinder's own unseeded tie-break, to
show how much the reference varies by itself. Usage::

    python benchmarks/bench_fidelity.py [--data CAFFE_256] [--seed S] [--unseeded N]

Needs the test extra (fil_finder, scikit-learn).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))   # the reference pipeline lives beside the tests that use it

import caffe_reference as reference  # noqa: E402

from nnunet_glacier.data import caffe  # noqa: E402
from nnunet_glacier.evaluation import metrics  # noqa: E402
from nnunet_glacier.evaluation.evaluate import evaluate_predictions  # noqa: E402

PIXEL_SIZE_M = 75.0
MIN_LENGTH_M = 750.0
FRONT_KINDS = ("perturbed", "loops")
MDE_GOAL_M = 0.01
SCORE_GOAL = 1e-12


# --- perturbed predictions -------------------------------------------------------------------------------------

def front_map(rng: np.random.Generator, front: np.ndarray, kind: str) -> np.ndarray:
    """A ``bool`` front-task map from a label front: ``perturbed`` or ``loops`` (see the module docstring)."""
    band = ndimage.binary_dilation(front, np.ones((3, 3), bool), iterations=int(rng.integers(1, 3)))
    coords = np.argwhere(front)
    if kind == "perturbed":
        band = np.roll(band, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
        canvas = band.astype(np.uint8)
        for row, col in coords[rng.choice(len(coords), size=min(4, len(coords)), replace=False)]:
            end = (int(col + rng.integers(-20, 21)), int(row + rng.integers(-20, 21)))
            cv2.line(canvas, (int(col), int(row)), end, 1, int(rng.integers(1, 3)))
        speckle = ndimage.binary_dilation(rng.random(front.shape) < 0.0015, np.ones((2, 2), bool))
        return (canvas > 0) | speckle
    holes = band & ~(rng.random(band.shape) < 0.1)
    canvas = holes.astype(np.uint8)
    for row, col in coords[rng.choice(len(coords), size=min(3, len(coords)), replace=False)]:
        radius = int(rng.integers(3, 8))
        centre = (int(col + rng.integers(-radius, radius + 1)), int(row + rng.integers(-radius, radius + 1)))
        cv2.circle(canvas, centre, radius, 1, 1)
    return canvas > 0


def zone_map(rng: np.random.Generator, zones: np.ndarray, index: int) -> np.ndarray:
    """Zone classes 0..3 from a label: border moved, blobs of other classes, maybe one class dropped."""
    pred = zones.copy()
    glacier = pred == 2
    moved = (ndimage.binary_dilation(glacier, iterations=int(rng.integers(1, 6))) if rng.random() < 0.5
             else ndimage.binary_erosion(glacier, iterations=int(rng.integers(1, 6))))
    pred[moved & (pred == 3)] = 2
    pred[glacier & ~moved] = 3
    blobs = ndimage.gaussian_filter(rng.random(zones.shape), 4) > 0.56
    pred[blobs] = rng.integers(0, 4)
    if index % 3 == 0:
        dropped = (index // 3) % 4
        pred[pred == dropped] = (dropped + 1) % 4
    return pred


def write_predictions(folder: Path, stem: str, zones: np.ndarray, front: np.ndarray) -> None:
    """Write ``<stem>_zones.png``, ``_front.png`` and ``_fused.png`` in CaFFe values."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}_zones.png"), reference.ZONE_VALUES[zones])
    cv2.imwrite(str(folder / f"{stem}_front.png"), np.where(front, 255, 0).astype(np.uint8))
    cv2.imwrite(str(folder / f"{stem}_fused.png"), np.where(front, 255, reference.ZONE_VALUES[zones]).astype(np.uint8))


# --- the reference ---------------------------------------------------------------------------------------------

def reference_front(route: str, prediction: Path, min_pixels: float, tie_break="published") -> np.ndarray:
    """The reference's post-processed front of one prediction PNG along ``route``."""
    image = cv2.imread(str(prediction), cv2.IMREAD_GRAYSCALE)
    if route == "front":
        return reference.front_route((image == 255).astype(np.uint8), min_pixels, tie_break)
    if route == "fused":
        classes = np.searchsorted(reference.ZONE_VALUES, np.where(image == 255, 254, image))
        classes[image == 255] = 4
        return reference.zone_route(reference.fused_to_zones(classes), min_pixels)
    return reference.zone_route(image, min_pixels)


def reference_zone_map(route: str, prediction: Path) -> np.ndarray:
    """The zone classes the reference scores for one prediction PNG (zone or fused route)."""
    image = cv2.imread(str(prediction), cv2.IMREAD_GRAYSCALE)
    if route == "fused":
        classes = np.searchsorted(reference.ZONE_VALUES, np.where(image == 255, 254, image))
        classes[image == 255] = 4
        image = reference.fused_to_zones(classes)
    return np.searchsorted(reference.ZONE_VALUES, image)


def mde_summary(distances: list[np.ndarray | None]) -> tuple[float, float, int]:
    """Pooled and mean MDE (m) and the number of images without a front, as the reference computes them."""
    present = [d * PIXEL_SIZE_M for d in distances if d is not None]
    pooled = float(np.concatenate(present).mean()) if present else float("nan")
    mean = float(np.mean([d.mean() for d in present])) if present else float("nan")
    return pooled, mean, len(distances) - len(present)


# --- comparison ------------------------------------------------------------------------------------------------

def compare_route(route: str, folder: Path, samples: dict[str, caffe.Sample], ours: dict[str, object],
                  min_pixels: float) -> dict[str, float]:
    """Print our and the reference's figures for one route; returns the largest differences."""
    distances, ours_errors, worst_image_m = [], [], 0.0
    for stem, sample in samples.items():
        loaded = caffe.load_sample(sample)
        prediction = folder / f"{stem}{'_zones' if route == 'zone' else '_' + route}.png"
        expected = reference.front_distances(reference_front(route, prediction, min_pixels), loaded.front > 0)
        distances.append(expected)
        error = ours[stem].front
        ours_errors.append(error)
        if (expected is None) != (not error.has_front):
            worst_image_m = float("inf")
        elif expected is not None:
            worst_image_m = max(worst_image_m, abs(error.mde_m - float((expected * PIXEL_SIZE_M).mean())))
    ref_pooled, ref_mean, ref_none = mde_summary(distances)
    summary = metrics.summarise_fronts(ours_errors)
    pooled_diff = abs(summary.mde_pooled_m - ref_pooled)
    print(f"  MDE pooled {summary.mde_pooled_m:9.3f} m (reference {ref_pooled:9.3f}), mean {summary.mde_mean_m:9.3f} m "
          f"(reference {ref_mean:9.3f}), no front {summary.no_front} (reference {ref_none}); "
          f"largest difference: per image {worst_image_m:.2e} m, pooled {pooled_diff:.2e} m")
    differences = {"mde_m": max(worst_image_m, pooled_diff, abs(summary.mde_mean_m - ref_mean))}
    if route == "front":
        return differences
    worst_score, failed, ours_scores, ref_scores = 0.0, 0, [], []
    for stem, sample in samples.items():
        prediction = folder / f"{stem}{'_zones' if route == 'zone' else '_fused'}.png"
        true = caffe.load_sample(sample).zones
        try:
            expected = reference.zone_scores(true, reference_zone_map(route, prediction))
        except ValueError:
            failed += 1   # a class in neither map: the reference cannot score the image
            continue
        scores = ours[stem].zones
        ours_scores.append(scores)
        ref_scores.append(expected)
        for name in ("precision", "recall", "iou", "f1"):
            worst_score = max(worst_score, float(np.max(np.abs(getattr(scores, name) - expected[name]))))
    for name in ("precision", "recall"):
        ours_macro = np.mean([s.macro(name) for s in ours_scores])
        ref_macro = np.mean([e[name].mean() for e in ref_scores])
        ours_class = np.mean([getattr(s, name) for s in ours_scores], axis=0)
        ref_class = np.mean([e[name] for e in ref_scores], axis=0)
        worst_score = max(worst_score, abs(ours_macro - ref_macro), float(np.max(np.abs(ours_class - ref_class))))
        print(f"  {name:9s} macro {ours_macro:.6f} (reference {ref_macro:.6f}); per class "
              f"{np.array2string(ours_class, precision=4)} (reference {np.array2string(ref_class, precision=4)})")
    print(f"  zone scores (IoU, precision, recall, F1 per class and image): largest difference {worst_score:.1e}"
          f" over {len(ours_scores)} images ({failed} the reference cannot score: a class in neither map)")
    differences["score"] = worst_score
    return differences


def unseeded_spread(folder: Path, samples: dict[str, caffe.Sample], min_pixels: float, runs: int) -> None:
    """Pooled MDE of the reference front route with FilFinder's own unseeded tie-break, ``runs`` times."""
    pooled = []
    for _ in range(runs):
        distances = [reference.front_distances(
            reference_front("front", folder / f"{stem}_front.png", min_pixels, tie_break=None),
            caffe.load_sample(sample).front > 0) for stem, sample in samples.items()]
        pooled.append(mde_summary(distances)[0])
    print(f"  reference with FilFinder's unseeded tie-break, {runs} runs: pooled MDE "
          + ", ".join(f"{p:.3f}" for p in pooled) + " m")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "caffe_256",
                        help="a CaFFe root with a test split (default ../shared/data/caffe_256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations (default 0)")
    parser.add_argument("--unseeded", type=int, default=0, metavar="N",
                        help="also run the reference front route N times unseeded (default 0)")
    args = parser.parse_args()
    samples = {s.stem: s for s in caffe.discover(args.data, ("test",), pixel_size=PIXEL_SIZE_M)}
    min_pixels = MIN_LENGTH_M / PIXEL_SIZE_M
    print(f"{len(samples)} test scenes of {args.data}, {PIXEL_SIZE_M:g} m per pixel, fronts <= {MIN_LENGTH_M:g} m "
          f"({min_pixels:g} px) dropped, no bounding boxes")
    rng = np.random.default_rng(args.seed)
    worst = {"mde_m": 0.0, "score": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {kind: Path(tmp) / kind for kind in FRONT_KINDS}
        for index, (stem, sample) in enumerate(samples.items()):
            loaded = caffe.load_sample(sample)
            zones = zone_map(rng, loaded.zones, index)
            for kind, folder in folders.items():
                write_predictions(folder, stem, zones, front_map(rng, loaded.front > 0, kind))
        for kind, folder in folders.items():
            start = time.perf_counter()
            evaluation = evaluate_predictions(folder, args.data, pixel_size=PIXEL_SIZE_M, workers=1, progress=False)
            print(f"\nfront maps '{kind}' (zone and fused maps the same in both sets); "
                  f"our evaluator: {time.perf_counter() - start:.1f} s")
            routes = ("front",) if kind != FRONT_KINDS[0] else ("front", "zone", "fused")
            for route in routes:
                print(f" route {route}:")
                ours = {r.sample.stem: r for r in evaluation.results if r.route == route}
                start = time.perf_counter()
                for key, value in compare_route(route, folder, samples, ours, min_pixels).items():
                    worst[key] = max(worst[key], value)
                print(f"  (reference: {time.perf_counter() - start:.1f} s)")
            if args.unseeded:
                unseeded_spread(folder, samples, min_pixels, args.unseeded)
    ok = worst["mde_m"] <= MDE_GOAL_M and worst["score"] <= SCORE_GOAL
    print(f"\nlargest differences: MDE {worst['mde_m']:.2e} m (goal {MDE_GOAL_M} m), zone scores "
          f"{worst['score']:.1e} (goal {SCORE_GOAL:g}): {'identical' if ok else 'NOT identical'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
