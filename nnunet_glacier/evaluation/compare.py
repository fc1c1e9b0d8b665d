"""Experiments side by side: fold-level results and Welch t-tests (the paper's Table A1 form).

Input: per experiment, the ``summary.json`` files written by
:mod:`nnunet_glacier.evaluation.evaluate` for its folds (one per fold). A *result* is
one route of one experiment, named ``<experiment>:<route>``. For each result
the fold values of the pooled MDE (metres) and of the macro zone IoU are
summarised as mean and sample standard deviation (``ddof=1``) over folds;
folds where a value is undefined (no image with a front; the front route's
IoU) are left out. Every pair of results is compared with Welch's t-test
(``scipy.stats.ttest_ind(equal_var=False)``) on their fold-level pooled MDEs;
the test is undefined (``None``) with fewer than two folds on either side.

Results are compared only when they were evaluated on the same scenes: a
result's scenes are those of its route's rows in the ``per_image.csv``
that :mod:`~nnunet_glacier.evaluation.evaluate` writes beside each ``summary.json``,
over its folds. Results whose scene sets differ (another split, another
data root, predictions missing for some scenes) are refused with an
:class:`InputError` naming both results and the scenes only one of them has:
their pooled MDEs are not comparable. A summary without ``per_image.csv``
beside it (copied alone) is not checked.
"""
from __future__ import annotations

import glob
import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation.per_image import PER_IMAGE_CSV, read_per_image
from nnunet_glacier.utilities.atomic import write_json, write_text
from nnunet_glacier.utilities.csv_tables import NO_NUMBER, number_cell

#: Fold-level values compared, keyed by their name in a summary's ``overall`` entry.
FOLD_VALUES = ("mde_pooled_m", "iou_macro")
#: Scenes named at most in the message about differing scene sets (then "and N more").
LISTED_SCENES = 5


def read_summaries(pattern: str) -> list[tuple[Path, dict[str, Any]]]:
    """The evaluation summaries matching a glob pattern (``**`` allowed), sorted by path.

    Raises :class:`InputError` if nothing matches or a file is not an evaluation summary.
    """
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    if not paths:
        raise InputError(pattern, "matches no summary.json file")
    summaries = []
    for path in paths:
        try:
            summary = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(path, f"cannot read evaluation summary ({err})") from err
        if not isinstance(summary, dict) or not isinstance(summary.get("routes"), dict):
            raise InputError(path, "not an evaluation summary (no 'routes'); expected a summary.json of `evaluate`")
        summaries.append((path, summary))
    return summaries


def _spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (``None`` where undefined) of fold values."""
    return {"values": list(values), "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def _welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float | None]:
    """Welch's t statistic and two-sided p-value; ``None`` if undefined (< 2 values, no variance on either side)."""
    if len(a) < 2 or len(b) < 2:
        return {"t": None, "p": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's warning on constant samples; checked below
        test = stats.ttest_ind(a, b, equal_var=False)
    defined = math.isfinite(test.statistic)
    return {"t": float(test.statistic) if defined else None, "p": float(test.pvalue) if defined else None}


def evaluated_scenes(summary: Path, route: str) -> frozenset[str] | None:
    """The stems a summary's ``route`` was evaluated on, from the ``per_image.csv`` beside it (``None``
    without one)."""
    table = summary.parent / PER_IMAGE_CSV
    if not table.is_file():
        return None
    return frozenset(row.stem for row in read_per_image(table) if row.route == route)


def _listed(stems: Sequence[str]) -> str:
    if not stems:
        return "none"
    more = len(stems) - LISTED_SCENES
    return ", ".join(stems[:LISTED_SCENES]) + (f" and {more} more" if more > 0 else "")


def check_same_scenes(scenes: Mapping[str, frozenset[str]], files: Mapping[str, Path]) -> None:
    """:class:`InputError` (at ``files[name]``) unless every result of ``scenes`` (name -> the stems it was
    evaluated on) was evaluated on the same scenes; the message names both results and what differs."""
    if not scenes:
        return
    (first, reference), *others = scenes.items()
    for name, stems in others:
        if stems != reference:
            only_first, only_this = _listed(sorted(reference - stems)), _listed(sorted(stems - reference))
            raise InputError(files[name], f"{name} was evaluated on {len(stems)} scenes, {first} on "
                                          f"{len(reference)} — only in {first}: {only_first}; only in {name}: "
                                          f"{only_this}. Results on different scenes are not comparable: "
                                          f"evaluate them on the same split")


def compare_runs(runs: Mapping[str, str]) -> dict[str, Any]:
    """Compare experiments given as ``{name: glob of their folds' summary.json}``; see the module docstring."""
    results: dict[str, dict[str, Any]] = {}
    scenes: dict[str, frozenset[str]] = {}
    files: dict[str, Path] = {}
    for name, pattern in runs.items():
        summaries = read_summaries(pattern)
        routes = sorted({route for _, s in summaries for route in s["routes"]})
        for route in routes:
            overall = [s["routes"][route]["overall"] for _, s in summaries if route in s["routes"]]
            entry: dict[str, Any] = {"experiment": name, "route": route, "n_folds": len(overall),
                                     "files": [str(p) for p, s in summaries if route in s["routes"]]}
            for key in FOLD_VALUES:
                entry[key] = _spread([o[key] for o in overall if o.get(key) is not None])
            results[f"{name}:{route}"] = entry
            known = [evaluated_scenes(p, route) for p, s in summaries if route in s["routes"]]
            if any(stems is not None for stems in known):
                scenes[f"{name}:{route}"] = frozenset().union(*(stems for stems in known if stems is not None))
                files[f"{name}:{route}"] = Path(entry["files"][0])
    check_same_scenes(scenes, files)
    tests = [{"a": a, "b": b, "mean_a_m": results[a]["mde_pooled_m"]["mean"],
              "mean_b_m": results[b]["mde_pooled_m"]["mean"],
              **_welch(results[a]["mde_pooled_m"]["values"], results[b]["mde_pooled_m"]["values"])}
             for a, b in itertools.combinations(results, 2)]
    return {"runs": dict(runs), "results": results, "welch_mde": tests}


def _mean_std(spread: Mapping[str, Any], digits: int) -> str:
    if spread["mean"] is None:
        return NO_NUMBER
    return number_cell(spread["mean"], digits) + ("" if spread["std"] is None
                                                  else f" ± {number_cell(spread['std'], digits)}")


def comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """Two Markdown tables: results (mean ± std over folds) and Welch t-tests on the pooled MDE."""
    lines = ["| result | folds | MDE pooled (m) | IoU macro |", "| --- | ---: | ---: | ---: |"]
    for name, entry in comparison["results"].items():
        lines.append(f"| {name} | {entry['n_folds']} | {_mean_std(entry['mde_pooled_m'], 1)} "
                     f"| {_mean_std(entry['iou_macro'], 3)} |")
    lines += ["", "Welch t-test on the fold-level pooled MDE:", "",
              "| A | B | mean A (m) | mean B (m) | t | p |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for test in comparison["welch_mde"]:
        lines.append(f"| {test['a']} | {test['b']} | {number_cell(test['mean_a_m'], 1)} "
                     f"| {number_cell(test['mean_b_m'], 1)} | {number_cell(test['t'], 3)} "
                     f"| {number_cell(test['p'], 4)} |")
    return "\n".join(lines) + "\n"


def write_comparison(comparison: Mapping[str, Any], out: str | Path) -> list[Path]:
    """Write ``compare.json`` and ``compare.md`` into ``out`` (atomically); returns their paths."""
    out = Path(out)
    paths = [out / "compare.json", out / "compare.md"]
    write_json(paths[0], comparison)
    write_text(paths[1], comparison_markdown(comparison))
    return paths


# --- paired comparison over test images (against a baseline) ----------------------------------------------------

def paired_wilcoxon(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of per-image values ``a`` against ``b`` (e.g. MDEs, keyed by scene).

    Pairs the scenes both have with a finite value. Returns ``n`` (pairs),
    ``p`` (``None`` with fewer than two pairs or no difference at all), the
    median of ``a - b`` and ``a_lower``, the number of scenes where ``a`` is
    lower (better, for an error).
    """
    common = sorted(s for s in set(a) & set(b) if math.isfinite(a[s]) and math.isfinite(b[s]))
    differences = np.array([a[s] - b[s] for s in common], dtype=float)
    result: dict[str, Any] = {"n": len(common), "p": None,
                              "median_difference": float(np.median(differences)) if common else None,
                              "a_lower": int(np.sum(differences < 0))}
    if len(common) >= 2 and np.any(differences):
        result["p"] = float(stats.wilcoxon(differences).pvalue)
    return result


def against_baseline(pooled: Mapping[str, float | None], per_image: Mapping[str, Mapping[str, float]],
                     baseline: str) -> dict[str, dict[str, Any]]:
    """Each result's ratio of its pooled value to the baseline's and its paired test against the baseline.

    ``pooled`` maps result names to one number (e.g. pooled MDE), ``per_image``
    to per-scene values; the baseline itself gets a ratio of 1 and no test.
    A ratio is ``None`` where either value is undefined.
    """
    reference = pooled.get(baseline)
    comparison = {}
    for name, value in pooled.items():
        ratio = None
        if value is not None and reference and math.isfinite(value) and math.isfinite(reference):
            ratio = value / reference
        comparison[name] = {
            "ratio": ratio,
            "test": None if name == baseline or baseline not in per_image or name not in per_image
            else paired_wilcoxon(per_image[name], per_image[baseline]),
        }
    return comparison
