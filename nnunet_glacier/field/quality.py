"""Quality flags of detected scenes: which fronts to check by hand (the paper notes that outliers must be
filtered manually).

``quality.csv`` in a detect output folder (columns :data:`QUALITY_COLUMNS`)
holds one row per scene record (see :mod:`nnunet_glacier.field.detect`) with the flags

- ``no_front``: no front left after post-processing;
- ``length_outlier``: front length outside ``usual / length_factor .. usual
  * length_factor``, ``usual`` being the median front length of the
  glacier's scenes in ``OUT`` (needs ``min_scenes`` scenes with a front);
- ``low_agreement``: ensemble disagreement above ``max_disagreement``. The
  disagreement is the mean, over the front pixels and the folds, of the
  total-variation distance ``0.5 * sum_c |p_fold,c - p_mean,c|`` between a
  fold's class probabilities and the ensemble's (0 = all folds agree; at
  most ``1 - 1/n_folds``, reached when the folds are certain of different
  classes: 0.5 for two folds, 0.8 for five); empty with one fold;
- ``touches_nodata`` / ``touches_border``: the front reaches the band kept
  free along no-data / the image border (``postprocess.front_touches_edge``),
  so it probably runs on where the scene shows nothing: its length and
  position are partial;
- ``no_contrast``: the scene's pixels with data show (almost) one grey
  value (``geo.lacks_contrast``: fewer than two values or a standard
  deviation below ``geo.MIN_CONTRAST_GREY`` grey levels), e.g. a constant
  backscatter raster; detect draws no front in it;
- ``resolution_mismatch``: the resolution in the scene's CaFFe name differs
  from its GeoTIFF grid's pixel size by more than ``geo.RESOLUTION_TOLERANCE``
  (10 %), e.g. a ``..._20_...`` scene on a 78 m grid (``geo.resolution_mismatch``):
  mislabelled or resampled, so its pixel size and lengths are doubtful;
- ``no_context``: a model with temporal context found no earlier or later
  acquisition of the scene's glacier (the first of a series, an undated
  scene): it saw the scene itself in every context channel, as it was
  trained to for such scenes, but with less to go on. ``context_found``
  counts the distinct context acquisitions found (empty for a model without
  temporal context, which never gets the flag).

``needs_check`` is any of the flags.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nnunet_glacier.utilities.csv_tables import csv_text

QUALITY_CSV = "quality.csv"

#: Flags a scene's record holds itself (set by detect's checks of the scene).
SCENE_PROBLEMS = ("no_contrast", "resolution_mismatch")
#: Every flag of a row, in column order; ``needs_check`` is any of them.
QUALITY_FLAGS = ("no_front", "length_outlier", "low_agreement", "touches_nodata", "touches_border", *SCENE_PROBLEMS,
                 "no_context")

QUALITY_COLUMNS = (
    "stem", "glacier", "date", "pixel_size_m", "pixel_size_source", "georeferenced", "route", "n_folds",
    "n_segments", "front_length_m", "usual_length_m", "length_ratio", "disagreement", "nodata_fraction",
    "context_found", *QUALITY_FLAGS, "needs_check",
)


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality flags (see the module doc)."""

    length_factor: float = 2.0
    min_scenes: int = 3
    max_disagreement: float = 0.15


def quality_rows(records: Sequence[dict[str, Any]], settings: QualitySettings) -> list[dict[str, Any]]:
    """One row of :data:`QUALITY_COLUMNS` per record, with the flags of the module doc."""
    lengths = defaultdict(list)
    for record in records:
        if record["n_segments"]:
            lengths[record["glacier"]].append(record["front_length_m"])
    rows = []
    for record in records:
        glacier_lengths = lengths[record["glacier"]]
        usual = statistics.median(glacier_lengths) if len(glacier_lengths) >= settings.min_scenes else None
        no_front = record["n_segments"] == 0
        ratio = record["front_length_m"] / usual if usual and not no_front else None
        outlier = ratio is not None and not (1 / settings.length_factor <= ratio <= settings.length_factor)
        disagreement = record["disagreement"]
        low_agreement = disagreement is not None and disagreement > settings.max_disagreement
        context = record.get("context")  # None: a model without temporal context (or a record from before them)
        context_found = context["found"] if context is not None else None
        flags = {"no_front": no_front, "length_outlier": outlier, "low_agreement": low_agreement,
                 **{flag: record[flag] for flag in ("touches_nodata", "touches_border", *SCENE_PROBLEMS)},
                 "no_context": context_found == 0}
        rows.append({
            "stem": record["stem"], "glacier": record["glacier"], "date": record["date"],
            "pixel_size_m": record["pixel_size_m"], "pixel_size_source": record["pixel_size_source"],
            "georeferenced": record["coordinates"]["kind"] == "crs", "route": record["route"],
            "n_folds": len(record["folds"]), "n_segments": record["n_segments"],
            "front_length_m": record["front_length_m"], "usual_length_m": usual, "length_ratio": ratio,
            "disagreement": disagreement, "nodata_fraction": record["nodata_fraction"],
            "context_found": context_found, **flags,
            "needs_check": any(flags.values()),
        })
    return rows


def quality_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV text (empty cells for missing values)."""
    return csv_text(QUALITY_COLUMNS, [[row[column] for column in QUALITY_COLUMNS] for row in rows])
