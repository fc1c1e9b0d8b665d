"""The reproduction report: the paper's tables from our evaluations, t-tests and figures.

Reads ``<work>/evaluation/<experiment>/{ensemble,fold_K}/summary.json`` (and
``per_image.csv``) of every experiment of a run (paths from :mod:`nnunet_glacier.layout`)
and writes into ``<work>/report/``:

- ``report.md`` — front delineation (Table A2 form: pooled MDE as mean ± std
  over folds and of the ensemble, mean and median of per-image MDEs, images
  without a front), zones (Table A3 form: IoU, precision, recall, F1), Welch
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

from nnunet_glacier import caffe, plots
from nnunet_glacier.atomic import write_json, write_text
from nnunet_glacier.compare import compare_runs, comparison_markdown
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluate import BREAKDOWNS
from nnunet_glacier.experiments import Experiment, profile_description
from nnunet_glacier.layout import ENSEMBLE, RunLayout, fold_member


#: The paper's test-set MDEs (Herrmann et al. 2023) and the CaFFe baselines, in metres.
PAPER_MDE_M = (
    ("fused labels, zone route", "541 ± 84"),
    ("multi-task learning variants", "509 – 568"),
    ("single-task front", "1103"),
    ("single-task zones", "1184"),
    ("CaFFe baseline, zones", "753"),
    ("CaFFe baseline, fronts", "887"),
)
OVERLAYS_PER_EXPERIMENT = 4
BOXPLOT_GROUPS = ("glacier", "season", "sensor", "resolution")


def _read_summary(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(layout: RunLayout, experiments: Sequence[Experiment],
            folds: Mapping[str, Sequence[int]]) -> dict[str, Any]:
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


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mean_std(values: list[float | None], digits: int) -> str:
    defined = [v for v in values if v is not None]
    if not defined:
        return "–"
    if len(defined) == 1:
        return _number(defined[0], digits)
    return f"{np.mean(defined):.{digits}f} ± {np.std(defined, ddof=1):.{digits}f}"


def front_table(collected: dict[str, Any]) -> list[str]:
    lines = ["| experiment | route | MDE folds (m) | MDE ensemble (m) | mean of images (m) | median (m) | no front |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, experiment in collected.items():
        for route, result in experiment["routes"].items():
            ensemble = result["ensemble"]
            lines.append(f"| {name} | {route} | {_mean_std([f['mde_pooled_m'] for f in result['folds']], 1)} "
                         f"| {_number(ensemble['mde_pooled_m'], 1)} | {_number(ensemble['mde_mean_m'], 1)} "
                         f"| {_number(ensemble['mde_median_m'], 1)} "
                         f"| {ensemble['no_front']} of {ensemble['n_images']} |")
    return lines


def zone_table(collected: dict[str, Any]) -> list[str]:
    lines = ["| experiment | route | IoU folds | IoU ensemble | IoU NA | IoU rock | IoU glacier | IoU ocean "
             "| precision | recall | F1 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, experiment in collected.items():
        for route, result in experiment["routes"].items():
            ensemble = result["ensemble"]
            if "iou_macro" not in ensemble:
                continue
            cells = [_number(ensemble.get(key), 3) for key in ("iou_macro", "iou_na", "iou_rock", "iou_glacier",
                                                               "iou_ocean", "precision_macro", "recall_macro",
                                                               "f1_macro")]
            lines.append(f"| {name} | {route} | {_mean_std([f.get('iou_macro') for f in result['folds']], 3)} | "
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
                cells.append("–" if entry is None else f"{_number(entry['mde_pooled_m'], 0)} ({entry['n_images']})")
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines


def t_test_section(layout: RunLayout, collected: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    runs = {name: str(layout.evaluation(name, fold_member("*")) / "summary.json")
            for name, experiment in collected.items() if experiment["n_folds"] > 0}
    if sum(e["n_folds"] >= 2 for e in collected.values()) < 2:
        return ["Welch t-tests need two or more experiments with at least two evaluated folds each."], None
    comparison = compare_runs(runs)
    return [comparison_markdown(comparison)], comparison


def figures(layout: RunLayout, collected: dict[str, Any], data: Path, out: Path) -> list[str]:
    """Write the figures (the timeline and overlays from the CaFFe root ``data``); returns Markdown lines."""
    lines = []
    csvs = {name: layout.evaluation(name, ENSEMBLE) / "per_image.csv" for name in collected}
    for by in BOXPLOT_GROUPS:
        try:
            series = plots.mde_series(csvs, by)
        except InputError as err:  # e.g. no image with a front at all
            lines.append(f"(no MDE box plot by {by}: {err})")
            continue
        plots.plot_mde_boxplot(series, out / f"mde_by_{by}", by=by)
        lines.append(f"![per-image MDE by {by}](mde_by_{by}.png)")
    samples = caffe.discover(data)
    plots.plot_timeline(samples, out / "dataset_timeline")
    lines.append("![dataset timeline](dataset_timeline.png)")
    test_samples = [s for s in samples if s.split == "test"]
    for name in collected:
        pairs = plots.find_predictions(test_samples, layout.evaluation(name, ENSEMBLE))[:OVERLAYS_PER_EXPERIMENT]
        written = plots.write_overlays(pairs, out / "overlays" / name)
        lines.append(f"\n{name} (label front blue, prediction yellow, overlap magenta, box cyan):\n")
        lines += [f"![{p.stem}](overlays/{name}/{p.name})" for p in written]
    return lines


def write_report(layout: RunLayout, experiments: Sequence[Experiment], folds: Mapping[str, Sequence[int]],
                 data: Path) -> Path:
    """Write report.md, report.json and the figures into ``layout.report_dir``; returns the report's path.

    ``experiments`` (in report order) with their ``folds`` (by experiment
    name) were evaluated on the test split of the CaFFe root ``data``.
    """
    collected = collect(layout, experiments, folds)
    if not collected:
        raise InputError(layout.work / "evaluation", "no evaluated experiment: run the evaluate step first")
    out = layout.report_dir
    t_lines, comparison = t_test_section(layout, collected)
    lines = [
        "# nnunet_glacier reproduction report", "",
        f"Data: `{data}`; work directory: `{layout.work}`; profile: `{experiments[0].profile}` "
        f"({profile_description(experiments[0].profile)}); "
        f"test split evaluated with the CaFFe bounding boxes where present.", "",
        "## Front delineation (Table A2 form)", "",
        "Pooled MDE (Eq. 1) over all test images, as mean ± std over the folds and for the mean-probability "
        "ensemble of the folds; mean and median of per-image MDEs and images without a predicted front for "
        "the ensemble.", "",
        *front_table(collected), "",
        "## Glacier zones (Table A3 form)", "",
        "Scores averaged over images (macro over NA, rock, glacier, ocean), ensemble unless stated.", "",
        *zone_table(collected), "",
        "## Welch t-tests between experiments (Table A1 form)", "",
        *t_lines, "",
        "## Breakdowns", *breakdown_tables(collected), "",
        "## The paper's results for reference (test set MDE, m)", "",
        "| result | MDE (m) |", "|---|---:|", *(f"| {k} | {v} |" for k, v in PAPER_MDE_M), "",
        "## Figures", "", *figures(layout, collected, data, out), "",
    ]
    write_json(out / "report.json", {"experiments": collected, "comparison": comparison})
    write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"
