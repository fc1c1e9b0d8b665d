"""The reproduction report: the paper's tables from our evaluations, t-tests and figures.

Reads ``<work>/evaluation/<experiment>/{ensemble,fold_K}/summary.json`` (and
``per_image.csv``) of every experiment of a run (paths from :mod:`nnunet_glacier.pipeline.layout`)
and writes into ``<work>/report/``:

- ``report.md`` — front delineation (Table A2 form: pooled MDE as mean ± std
  over folds and of the ensemble, mean and median of per-image MDEs, images
  without a front), zones (Table A3 form: IoU, precision, recall, F1), with a
  baseline experiment (``reproduce --baseline``) every result against stock
  nnU-Net (ratio of pooled MDEs, paired Wilcoxon test over test scenes, a box
  plot per result), Welch
  t-tests between experiments on the fold-level pooled MDE (Table A1 form),
  breakdowns of the ensemble by glacier, season, sensor and resolution, the
  paper's numbers for reference, and the figures below;
- ``report.json`` — the same numbers for programs;
- figures (PNG and PDF): per-image MDE box plots by glacier, season, sensor and
  resolution; a dataset timeline; overlays of predicted vs label fronts.

MDE values are metres; IoU and the other zone scores are fractions (0..1).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier.data import caffe
from nnunet_glacier.data.experiments import Experiment, profile_description, profile_name
from nnunet_glacier.data.synthetic import MARKER, is_synthetic
from nnunet_glacier.data.tasks import ZONE_CLASSES
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation import plots
from nnunet_glacier.evaluation.compare import against_baseline, compare_runs, comparison_markdown
from nnunet_glacier.evaluation.evaluate import BREAKDOWNS
from nnunet_glacier.evaluation.figure_options import GROUP_COLUMNS
from nnunet_glacier.evaluation.paper import CAFFE_BASELINES_M, HERRMANN_2023_MDE_M
from nnunet_glacier.evaluation.per_image import PER_IMAGE_CSV, read_per_image
from nnunet_glacier.nnunet.folds import Fold, fold_member
from nnunet_glacier.pipeline.layout import ENSEMBLE, RunLayout
from nnunet_glacier.postprocessing.postprocess import choose_route
from nnunet_glacier.utilities.atomic import write_json, write_text
from nnunet_glacier.utilities.csv_tables import NO_NUMBER, number_cell

OVERLAYS_PER_EXPERIMENT = 4


def _read_summary(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(layout: RunLayout, experiments: Sequence[Experiment],
            folds: Mapping[str, Sequence[Fold]]) -> dict[str, Any]:
    """Per experiment and route: the ensemble's and each fold's overall results, and the ensemble's breakdowns.

    ``folds`` names the folds of each experiment (by name) whose evaluations are read.
    """
    collected: dict[str, Any] = {}
    for experiment in experiments:
        ensemble = _read_summary(layout.evaluation(experiment.name, ENSEMBLE) / "summary.json")
        if ensemble is None:
            continue
        folds_read = [s for s in (_read_summary(layout.evaluation(experiment.name, fold_member(k)) / "summary.json")
                                  for k in folds[experiment.name]) if s is not None]
        collected[experiment.name] = {
            "title": experiment.title,
            "n_folds": len(folds_read),
            "routes": {route: {"ensemble": entry["overall"],
                               "folds": [f["routes"][route]["overall"] for f in folds_read if route in f["routes"]],
                               "breakdowns": {b: entry[f"by_{b}"] for b in BREAKDOWNS}}
                       for route, entry in ensemble["routes"].items()},
        }
    return collected


def _over_folds(values: list[float | None], digits: int) -> str:
    """Mean ± sample std of the folds' defined values, and over how many folds (``541.0 ± 84.0 (5 folds)``)."""
    defined = [v for v in values if v is not None]
    if not defined:
        return NO_NUMBER
    if len(defined) == 1:
        return f"{number_cell(defined[0], digits)} (1 fold)"
    return (f"{number_cell(float(np.mean(defined)), digits)} ± {number_cell(float(np.std(defined, ddof=1)), digits)}"
            f" ({len(defined)} folds)")


def front_table(collected: dict[str, Any]) -> list[str]:
    lines = ["| experiment | route | MDE, mean ± std over folds (m) | MDE ensemble (m) | mean of images (m) "
             "| median (m) | no front |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, experiment in collected.items():
        for route, result in experiment["routes"].items():
            ensemble = result["ensemble"]
            lines.append(f"| {name} | {route} | {_over_folds([f['mde_pooled_m'] for f in result['folds']], 1)} "
                         f"| {number_cell(ensemble['mde_pooled_m'], 1)} | {number_cell(ensemble['mde_mean_m'], 1)} "
                         f"| {number_cell(ensemble['mde_median_m'], 1)} "
                         f"| {ensemble['no_front']} of {ensemble['n_images']} |")
    return lines


def zone_table(collected: dict[str, Any]) -> list[str]:
    lines = ["| experiment | route | IoU, mean ± std over folds | IoU ensemble | IoU NA | IoU rock | IoU glacier "
             "| IoU ocean | precision | recall | F1 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, experiment in collected.items():
        for route, result in experiment["routes"].items():
            ensemble = result["ensemble"]
            if "iou_macro" not in ensemble:
                continue
            keys = ("iou_macro", *(f"iou_{zone}" for zone in ZONE_CLASSES), "precision_macro", "recall_macro",
                    "f1_macro")
            cells = [number_cell(ensemble.get(key), 3) for key in keys]
            lines.append(f"| {name} | {route} | {_over_folds([f.get('iou_macro') for f in result['folds']], 3)} | "
                         + " | ".join(cells) + " |")
    return lines


def breakdown_tables(collected: dict[str, Any]) -> list[str]:
    """Ensemble pooled MDE per group, one table per breakdown, a column per experiment and route."""
    columns = [(name, route) for name, e in collected.items() for route in e["routes"]]
    lines = []
    for breakdown in BREAKDOWNS:
        groups = sorted({g for name, route in columns
                         for g in collected[name]["routes"][route]["breakdowns"][breakdown]})
        lines += ["", f"**by {breakdown.replace('_', ' × ')}** (ensemble, pooled MDE in m; n images)", "",
                  "| group | " + " | ".join(f"{n}:{r}" for n, r in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for group in groups:
            cells = []
            for name, route in columns:
                entry = collected[name]["routes"][route]["breakdowns"][breakdown].get(group)
                cells.append(NO_NUMBER if entry is None
                             else f"{number_cell(entry['mde_pooled_m'], 0)} ({entry['n_images']})")
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines


def t_test_section(layout: RunLayout, collected: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    runs = {name: str(layout.evaluation(name, fold_member("*")) / "summary.json")
            for name, experiment in collected.items() if experiment["n_folds"] > 0}
    if sum(e["n_folds"] >= 2 for e in collected.values()) < 2:
        return ["Welch t-tests need two or more experiments with at least two evaluated folds each."], None
    comparison = compare_runs(runs)
    return [comparison_markdown(comparison)], comparison


def figures(layout: RunLayout, collected: dict[str, Any], data: Path, out: Path, synthetic: bool) -> list[str]:
    """Write the figures (the timeline and overlays from the CaFFe root ``data``); returns Markdown lines.

    On ``synthetic`` data the captions and titles say so and the box plots
    leave out the CaFFe baselines (results on real data).
    """
    of_data = " (synthetic scenes)" if synthetic else ""
    lines = []
    csvs = {name: layout.evaluation(name, ENSEMBLE) / PER_IMAGE_CSV for name in collected}
    for by in GROUP_COLUMNS:
        try:
            series = plots.mde_series(csvs, by)
        except InputError as err:  # e.g. no image with a front at all
            lines.append(f"(no MDE box plot by {by}: {err})")
            continue
        plots.plot_mde_boxplot(series, out / f"mde_by_{by}", by=by, baselines={} if synthetic else CAFFE_BASELINES_M,
                               no_front=plots.no_front_series(csvs, by), title=f"MDE per image by {by}{of_data}")
        lines.append(f"![per-image MDE by {by}{of_data}](mde_by_{by}.png)")
    samples = caffe.discover(data)
    plots.plot_timeline(samples, out / "dataset_timeline")
    lines.append(f"![dataset timeline{of_data}](dataset_timeline.png)")
    test_samples = [s for s in samples if s.split == "test"]
    for name in collected:
        pairs = plots.find_predictions(test_samples, layout.evaluation(name, ENSEMBLE))[:OVERLAYS_PER_EXPERIMENT]
        written = plots.write_overlays(pairs, out / "overlays" / name)
        lines.append(f"\n{name}{of_data} (label front blue, prediction yellow, overlap magenta, box cyan):\n")
        lines += [f"![{p.stem}](overlays/{name}/{p.name})" for p in written]
    return lines


def paper_section(synthetic: bool) -> list[str]:
    """The paper's real-data results for reference, or on synthetic data why they are left out."""
    if synthetic:
        return ["The paper's results on the real CaFFe data are not shown: these scenes are synthetic, so the "
                "numbers above only show that every step runs; they say nothing about real calving fronts."]
    rows = [*HERRMANN_2023_MDE_M, *((name, f"{metres:g}") for name, metres in CAFFE_BASELINES_M.items())]
    return ["| result | MDE (m) |", "|---|---:|", *(f"| {name} | {mde} |" for name, mde in rows)]


def per_image_mde(csv_path: Path) -> dict[str, dict[str, float]]:
    """``{route: {stem: MDE in m}}`` of an evaluation's per_image.csv (scenes without a front left out).

    Raises :class:`InputError` naming the file as
    :func:`~nnunet_glacier.evaluation.per_image.read_per_image` does.
    """
    per_route: dict[str, dict[str, float]] = {}
    for row in read_per_image(csv_path):
        if row.mde_m is not None:
            per_route.setdefault(row.route, {})[row.stem] = row.mde_m
    return per_route


def baseline_section(layout: RunLayout, experiments: Sequence[Experiment], collected: dict[str, Any],
                     out: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Every result against the first evaluated baseline (stock nnU-Net): Markdown lines and the numbers.

    Compared on the fold ensembles: the ratio of pooled MDEs and a two-sided
    Wilcoxon signed-rank test over the test scenes both have a front for;
    with a box plot of the per-image MDEs of every result.
    """
    baseline = next((e for e in experiments if e.role == "baseline" and e.name in collected), None)
    if baseline is None:
        return [], None
    key = f"{baseline.name}:{choose_route(baseline.tasks)}"
    per_image, pooled = {}, {}
    for name, experiment in collected.items():
        mdes = per_image_mde(layout.evaluation(name, ENSEMBLE) / PER_IMAGE_CSV)
        for route, result in experiment["routes"].items():
            per_image[f"{name}:{route}"] = mdes.get(route, {})
            pooled[f"{name}:{route}"] = result["ensemble"]["mde_pooled_m"]
    comparison = against_baseline(pooled, per_image, key)
    lines = [f"## Against stock nnU-Net (`{key}`)", "",
             f"Fold ensembles. Ratio: pooled MDE over `{key}`'s; p: two-sided Wilcoxon signed-rank test over the "
             "test scenes with a front in both, in brackets the scenes where the row's MDE is lower / scenes "
             "paired.", "",
             "| result | pooled MDE (m) | ratio to stock | p |", "|---|---:|---:|---:|"]
    for name, entry in comparison.items():
        test = entry["test"]
        p = NO_NUMBER if not test or test["p"] is None else f"{test['p']:.3g} ({test['a_lower']}/{test['n']})"
        lines.append(f"| {name} | {number_cell(pooled[name], 1)} | {number_cell(entry['ratio'], 2)} | {p} |")
    series = {name: {"test": [v for v in values.values() if v > 0]} for name, values in per_image.items()}
    if any(s["test"] for s in series.values()):
        plots.plot_mde_boxplot(series, out / "mde_by_experiment", by="experiment", baselines={})
        lines += ["", "![per-image MDE of every result](mde_by_experiment.png)"]
    return lines, {"baseline": key, "results": comparison}


def write_report(layout: RunLayout, experiments: Sequence[Experiment], folds: Mapping[str, Sequence[Fold]],
                 data: Path, out: Path | None = None) -> Path:
    """Write report.md, report.json and the figures into ``out`` (default ``layout.report_dir``); returns the
    report's path.

    ``experiments`` (in report order) with their ``folds`` (by experiment
    name) were evaluated on the test split of the CaFFe root ``data``.
    """
    collected = collect(layout, experiments, folds)
    if not collected:
        raise InputError(layout.work / "evaluation", "no evaluated experiment: run the evaluate step first")
    out = Path(out) if out is not None else layout.report_dir
    synthetic = is_synthetic(data)
    t_lines, comparison = t_test_section(layout, collected)
    baseline_lines, against_stock = baseline_section(layout, experiments, collected, out)
    lines = [
        "# nnunet_glacier report on synthetic scenes" if synthetic else "# nnunet_glacier reproduction report", "",
        *([f"**The data are synthetic** (`{data / MARKER}`): fjord scenes drawn by `nnunet-glacier synth`, not "
           "SAR images of real glaciers. The numbers show that the method runs end to end; they are not "
           "comparable with the paper's.", ""] if synthetic else []),
        f"Data: `{data}`; work directory: `{layout.work}`; profile: `{profile_name(experiments[0].profile)}` "
        f"({profile_description(experiments[0].profile)}); "
        f"test split evaluated with the CaFFe bounding boxes where present.", "",
        "## Front delineation (Table A2 form)", "",
        "Pooled MDE (Eq. 1) over all test images, as mean ± std over the folds (their number in brackets) and "
        "for the mean-probability "
        "ensemble of the folds; mean and median of per-image MDEs and images without a predicted front for "
        "the ensemble.", "",
        *front_table(collected), "",
        "## Glacier zones (Table A3 form)", "",
        "Scores averaged over images (macro over NA, rock, glacier, ocean), ensemble unless stated.", "",
        *zone_table(collected), "",
        *baseline_lines, "",
        "## Welch t-tests between experiments (Table A1 form)", "",
        *t_lines, "",
        "## Breakdowns", *breakdown_tables(collected), "",
        "## The paper's results for reference (test set MDE, m)", "", *paper_section(synthetic), "",
        "## Figures", "", *figures(layout, collected, data, out, synthetic), "",
    ]
    write_json(out / "report.json", {"synthetic": synthetic, "experiments": collected, "comparison": comparison,
                                     "against_stock": against_stock})
    write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"
