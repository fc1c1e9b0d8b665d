r"""CSV tables: how every CSV output is written, and how CSV inputs are read; numbers in text tables.

Written CSV has a header row, ``\n`` line ends, empty cells for missing
values (``None``, NaN) and floats with 10 significant digits. Text tables
for people (Markdown reports, console output) show numbers with fixed
decimals and :data:`NO_NUMBER` for missing ones (:func:`number_cell`).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnunet_glacier.errors import InputError


def csv_value(value: Any) -> str:
    """A CSV cell: empty for ``None`` and NaN, floats with 10 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text: a header of ``columns``, then the rows (cells by :func:`csv_value`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([csv_value(v) for v in row] for row in rows)
    return buffer.getvalue()


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header as dicts; :class:`InputError` if it is missing, lacks a
    ``required`` column or has a short line."""
    if not path.is_file():
        raise InputError(path, "file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if None in row.values():
            raise InputError(path, f"line {line}: fewer fields than the header's {len(reader.fieldnames or [])}")
    return rows


#: A text table's cell for a missing number (``None``, NaN).
NO_NUMBER = "-"


def number_cell(value: float | None, digits: int) -> str:
    """A number for a Markdown or console table: ``digits`` decimals, :data:`NO_NUMBER` for ``None`` and NaN."""
    return NO_NUMBER if value is None or math.isnan(value) else f"{value:.{digits}f}"
