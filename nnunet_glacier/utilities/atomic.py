"""Atomic file output: a file appears complete under its final name or not at all.

Every output of the tool goes through these helpers: data are written to a
temporary file in the destination folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written file.
Temporary names carry the writing process's ID (``.<stem>.<pid>.<random>.tmp<suffix>``),
so the temporaries a killed run left can be told from those of a run still
writing and removed (:func:`remove_stale_temporaries`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix so that writers choosing a format
    by extension (OpenCV, matplotlib, rasterio) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; if the block succeeds it replaces ``path`` (and what it held).

    Until then ``path`` keeps its old contents untouched: a failing or killed
    block never destroys a good folder. The swap is two renames; the old
    folder is removed after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmpdir", dir=path.parent))
    tmp.chmod(0o777 & ~_UMASK)
    try:
        yield tmp
        old = path.parent / f".{path.name}.{os.getpid()}.old.tmpdir"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.(?:.*\.tmp.*|old\.tmpdir)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporaries of :func:`atomic_path` / :func:`atomic_folder` in ``folder`` whose writer is gone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            found.append(entry)
    return sorted(found)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove what a killed write left in ``folder`` (see :func:`stale_temporaries`); returns what was removed."""
    removed = stale_temporaries(folder)
    for entry in removed:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return removed


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a 2-D ``uint8`` (or 3-channel BGR) image as PNG, atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image)):
            raise OSError(f"{path}: could not write PNG")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON (indented, keys in insertion order) atomically."""
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
