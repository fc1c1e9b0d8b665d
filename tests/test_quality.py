"""The scene-check flags of quality.csv and fronts.gpkg (nnunet_glacier.field.quality, nnunet_glacier.field.detect)."""
from __future__ import annotations

import pytest

from nnunet_glacier.field.detect import GPKG_COLUMNS
from nnunet_glacier.field.quality import QUALITY_COLUMNS, QUALITY_FLAGS, SCENE_PROBLEMS, QualitySettings, quality_rows


def record(stem: str, **flags) -> dict:
    """A scene record of a 10 km front that no flag but ``flags`` concerns."""
    return {"stem": stem, "glacier": "JAC", "date": "2020-01-01", "pixel_size_m": 20.0, "pixel_size_source": "name",
            "coordinates": {"kind": "pixel"}, "route": "zone", "folds": [0, 1], "n_segments": 1,
            "front_length_m": 10_000.0, "disagreement": 0.01, "nodata_fraction": 0.0, "touches_nodata": False,
            "touches_border": False, "no_contrast": False, "resolution_mismatch": False, **flags}


@pytest.mark.parametrize("flag", SCENE_PROBLEMS)
def test_a_scene_problem_is_a_column_and_needs_a_check(flag):
    rows = {row["stem"]: row for row in quality_rows([record("fine"), record("odd", **{flag: True})],
                                                       QualitySettings())}
    assert rows["odd"][flag] and rows["odd"]["needs_check"]
    assert not rows["fine"][flag] and not rows["fine"]["needs_check"]
    assert flag in QUALITY_COLUMNS and GPKG_COLUMNS[flag] == "bool"


def test_every_flag_is_a_column_of_both_tables():
    assert set(QUALITY_FLAGS) <= set(QUALITY_COLUMNS) and set(QUALITY_FLAGS) <= set(GPKG_COLUMNS)
    assert QUALITY_COLUMNS[-1] == "needs_check"


def test_context_found_and_no_context_only_for_models_with_temporal_context():
    def context(found: int) -> dict:
        return {"files": [], "stems": [], "previous_found": found, "next_found": 0, "found": found}

    rows = {row["stem"]: row for row in quality_rows(
        [record("alone"), record("first", context=context(0)), record("later", context=context(2))],
        QualitySettings())}
    assert rows["alone"]["context_found"] is None and not rows["alone"]["no_context"]
    assert rows["first"]["context_found"] == 0 and rows["first"]["no_context"] and rows["first"]["needs_check"]
    assert rows["later"]["context_found"] == 2 and not rows["later"]["needs_check"]
    assert "context_found" in QUALITY_COLUMNS and GPKG_COLUMNS["no_context"] == "bool"
