"""``compare`` refuses results evaluated on different scenes (nnunet_glacier.evaluation.compare)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_glacier.cli import main
from nnunet_glacier.errors import InputError
from nnunet_glacier.evaluation.compare import compare_runs
from nnunet_glacier.utilities.csv_tables import csv_text


def write_evaluation(folder: Path, route: str, mde_m: float, stems: list[str]) -> Path:
    """A summary.json and its per_image.csv as ``evaluate`` writes them, for ``stems`` of one route."""
    folder.mkdir(parents=True)
    summary = folder / "summary.json"
    summary.write_text(json.dumps({"n_scenes": len(stems), "routes": {route: {
        "missing": [], "overall": {"n_images": len(stems), "mde_pooled_m": mde_m, "iou_macro": 0.7}}}}))
    (folder / "per_image.csv").write_text(csv_text(("stem", "route", "mde_m"), [[s, route, mde_m] for s in stems]))
    return summary


def test_results_on_the_same_scenes_are_compared(tmp_path):
    for name, mdes in (("a", (500.0, 520.0)), ("b", (600.0, 640.0))):
        for fold, mde in enumerate(mdes):
            write_evaluation(tmp_path / name / f"fold_{fold}", "zone", mde, ["s1", "s2", "s3"])
    comparison = compare_runs({name: f"{tmp_path}/{name}/*/summary.json" for name in "ab"})
    assert comparison["results"]["a:zone"]["mde_pooled_m"]["mean"] == pytest.approx(510.0)
    assert len(comparison["welch_mde"]) == 1


def test_results_on_different_scenes_are_refused_naming_both_and_the_scenes(tmp_path, capsys):
    a = write_evaluation(tmp_path / "a", "zone", 500.0, ["s1", "s2", "s3"])
    b = write_evaluation(tmp_path / "b", "zone", 400.0, ["s1", "s2"])  # 3 scenes against 2
    with pytest.raises(InputError, match=r"b:zone was evaluated on 2 scenes, a:zone on 3 — only in a:zone: s3; "
                                         r"only in b:zone: none"):
        compare_runs({"a": str(a), "b": str(b)})
    out = tmp_path / "cmp"
    assert main(["compare", "--runs", f"a={a}", f"b={b}", "--out", str(out)]) == 1
    assert str(b) in capsys.readouterr().err and not (out / "compare.json").exists()


def test_the_scenes_of_a_result_are_those_of_its_route(tmp_path):
    """A route evaluated on fewer scenes (predictions missing for one) is refused against a complete one."""
    summary = tmp_path / "a" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"routes": {route: {"overall": {"mde_pooled_m": 500.0, "iou_macro": 0.7}}
                                              for route in ("zone", "front")}}))
    rows = [[s, "zone", 500.0] for s in ("s1", "s2")] + [["s1", "front", 500.0]]
    (summary.parent / "per_image.csv").write_text(csv_text(("stem", "route", "mde_m"), rows))
    with pytest.raises(InputError, match=r"a:zone was evaluated on 2 scenes, a:front on 1 — only in a:front: none; "
                                         r"only in a:zone: s2"):
        compare_runs({"a": str(summary)})
