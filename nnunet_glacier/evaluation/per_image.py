"""The per_image.csv table that :mod:`~nnunet_glacier.evaluation.evaluate` writes beside summary.json.

One row per scene and route, columns :data:`PER_IMAGE_COLUMNS`, in the CSV
format of :mod:`nnunet_glacier.utilities.csv_tables` (an empty cell = NaN,
undefined: ``mde_m`` is empty for an image without a front). MDEs are in
metres. Its writing (:func:`per_image_text`) and its reading back
(:func:`read_per_image`, for figures, comparisons and the report) live here
together; the module imports no evaluation code, so that the figures (which
new-scene detection draws too) read the table without the evaluation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_glacier.data.tasks import ZONE_CLASSES
from nnunet_glacier.errors import InputError
from nnunet_glacier.utilities.csv_tables import csv_text, read_csv

#: The file's name in an evaluation folder.
PER_IMAGE_CSV = "per_image.csv"

PER_IMAGE_COLUMNS = (
    "stem", "glacier", "date", "season", "sensor", "resolution_m", "pixel_size_m", "route",
    "n_pred_px", "n_true_px", "mde_m", "no_front",
    "iou_macro", *(f"iou_{zone}" for zone in ZONE_CLASSES), "precision_macro", "recall_macro", "f1_macro",
)

#: The columns every reader needs (others are asked for by name, see :func:`read_per_image`).
REQUIRED_COLUMNS = ("stem", "route", "mde_m")


def per_image_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The per_image.csv text of ``rows`` (each keyed by every column of :data:`PER_IMAGE_COLUMNS`), in order."""
    return csv_text(PER_IMAGE_COLUMNS, [[row[column] for column in PER_IMAGE_COLUMNS] for row in rows])


@dataclass(frozen=True)
class PerImageRow:
    """One row of a per_image.csv as read back.

    ``mde_m`` is the image's MDE in metres, ``None`` for an image without a
    front (an empty cell); ``cells`` holds every column's text as written.
    """

    stem: str
    route: str
    mde_m: float | None
    cells: Mapping[str, str]


def read_per_image(path: str | Path, columns: Sequence[str] = ()) -> list[PerImageRow]:
    """The rows of a per_image.csv, checked.

    Besides :data:`REQUIRED_COLUMNS` the file must hold ``columns``. Raises
    :class:`InputError` naming the file if it is missing, lacks a column,
    has a line with fewer fields than the header, or an ``mde_m`` that is
    neither empty nor a non-negative finite number (the message gives the
    line).
    """
    path = Path(path)
    rows = []
    for line, row in enumerate(read_csv(path, list(dict.fromkeys((*REQUIRED_COLUMNS, *columns)))), start=2):
        text = row["mde_m"].strip()
        try:
            mde = float(text) if text else None
        except ValueError:
            mde = math.nan
        if mde is not None and not 0 <= mde < math.inf:
            raise InputError(path, f"line {line}: mde_m {row['mde_m']!r} is not a non-negative number")
        rows.append(PerImageRow(row["stem"], row["route"], mde, row))
    return rows
