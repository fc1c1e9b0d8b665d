"""nnU-Net's folds: a number of the cross-validation or ``all`` (trained on every training case).

A fold's models and predictions live in ``fold_K`` / ``fold_all`` folders, as in nnU-Net.
"""
from __future__ import annotations

FOLD_ALL = "all"
#: A fold: its number in the cross-validation, or :data:`FOLD_ALL`.
Fold = int | str


def parse_fold(text: str) -> Fold:
    """A fold as typed by a user: a number ``>= 0`` or ``all``; ``ValueError`` otherwise."""
    if text == FOLD_ALL:
        return FOLD_ALL
    if not text.isdigit():
        raise ValueError(f"a fold is a number or {FOLD_ALL!r}, got {text!r}")
    return int(text)


def fold_member(fold: Fold) -> str:
    """The member name of a fold: ``fold_K`` or ``fold_all`` (nnU-Net's fold folder name too)."""
    return f"fold_{fold}"
