"""The README's main job: ``nnunet-glacier demo`` end to end at its smallest size, with real numbers."""
from __future__ import annotations

import json
import math


def test_demo_trains_predicts_evaluates_and_reports_real_numbers(demo_work):
    report = json.loads((demo_work / "report" / "report.json").read_text())
    assert list(report["experiments"]) == ["fused"]
    ensemble = report["experiments"]["fused"]["routes"]["fused"]["ensemble"]
    assert ensemble["n_images"] == 3
    assert ensemble["no_front"] < 3
    assert math.isfinite(ensemble["mde_pooled_m"]) and ensemble["mde_pooled_m"] > 0
    assert 0 < ensemble["iou_macro"] <= 1
    markdown = (demo_work / "report" / "report.md").read_text()
    assert "| fused | fused |" in markdown and "overlays/fused/" in markdown
    # the demo's scenes are synthetic: the report says so and does not set them beside the paper's real-data results
    assert report["synthetic"] and markdown.startswith("# nnunet_glacier report on synthetic scenes")
    assert "CaFFe baseline" not in markdown and "(2 folds)" in markdown
    overlays = list((demo_work / "report" / "overlays" / "fused").glob("*_overlay.png"))
    assert len(overlays) == 3
    assert (demo_work / "report" / "mde_by_glacier.png").stat().st_size > 0
    assert (demo_work / "data" / "sar_images" / "train").is_dir()  # synthetic scenes were written
    for fold in (0, 1):  # both folds trained, predicted and evaluated
        assert (demo_work / "evaluation" / "fused" / f"fold_{fold}" / "summary.json").is_file()
