"""The README's main job: ``nnunet-glacier demo`` end to end at its smallest size (conftest.DEMO_ARGS).

The demo's model trains for one iteration per fold, so what it predicts is not asserted; what is: every step
ran for both folds and the ensemble, and the report's numbers are those of its predictions evaluated anew.
"""
from __future__ import annotations

import json
import math

from nnunet_glacier.data.experiments import get_experiment
from nnunet_glacier.evaluation.evaluate import evaluate_predictions
from nnunet_glacier.pipeline.layout import RunLayout
from nnunet_glacier.postprocessing.postprocess import PostprocessSettings


def test_demo_trains_predicts_evaluates_and_reports_the_numbers_of_its_predictions(demo_work, tmp_path):
    report = json.loads((demo_work / "report" / "report.json").read_text())
    assert list(report["experiments"]) == ["fused"]
    ensemble = report["experiments"]["fused"]["routes"]["fused"]["ensemble"]
    assert ensemble["n_images"] == 3 and 0 <= ensemble["no_front"] <= 3
    has_front = ensemble["no_front"] < ensemble["n_images"]
    if has_front:
        assert math.isfinite(ensemble["mde_pooled_m"]) and ensemble["mde_pooled_m"] > 0
    else:
        assert ensemble["mde_pooled_m"] is None
    assert 0 <= ensemble["iou_macro"] <= 1

    # the report's numbers are those of the ensemble's predictions, evaluated here once more
    layout, experiment = RunLayout.in_work_dir(demo_work), get_experiment("fused", "demo")
    settings = PostprocessSettings(experiment.evaluation.front_min_length_m,
                                   experiment.evaluation.fused_glacier_dilation_px)
    evaluate_predictions(layout.predictions("fused", "ensemble"), demo_work / "data", out=tmp_path, settings=settings,
                         dataset=layout.workspace.raw / experiment.dataset, workers=1, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["routes"]["fused"]["overall"] == ensemble

    markdown = (demo_work / "report" / "report.md").read_text()
    assert "| fused | fused |" in markdown and "overlays/fused/" in markdown
    # the demo's scenes are synthetic: the report says so and does not set them beside the paper's real-data results
    assert report["synthetic"] and markdown.startswith("# nnunet_glacier report on synthetic scenes")
    assert "CaFFe baseline" not in markdown and "(2 folds)" in markdown
    overlays = list((demo_work / "report" / "overlays" / "fused").glob("*_overlay.png"))
    assert len(overlays) == 3
    # the box plot shows the images with a front; without any, the report says why it has none
    assert (demo_work / "report" / "mde_by_glacier.png").is_file() == has_front
    assert has_front or "(no MDE box plot by glacier:" in markdown
    assert (demo_work / "data" / "sar_images" / "train").is_dir()  # synthetic scenes were written
    for fold in (0, 1):  # both folds trained, predicted and evaluated
        assert (demo_work / "evaluation" / "fused" / f"fold_{fold}" / "summary.json").is_file()
