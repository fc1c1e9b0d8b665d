"""What a result was made from: file stamps, digests of settings, and made-from records.

Every step and every detected scene records what it was made from — its
input files (:class:`FileStamp`: size, modification time and SHA-256 of the
content), its settings and the checkpoints of the model — as a JSON-able
``dict``. A result is reused only when the record it was written with
:func:`matches` what it would be made from now; otherwise it is redone, and
so is everything made from it.

Checking a stamp hashes a file only when its size or modification time
changed: a file that was touched but not changed still matches, a file
replaced by another of the same name does not.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Bytes read at a time when hashing a file.
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def digest(value: Any) -> str:
    """A stable SHA-256 hex digest of a JSON-able value (keys sorted; paths and tuples as JSON sees them)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """A file as it was: ``size`` in bytes, ``mtime_ns`` (nanoseconds since the epoch), ``sha256`` of its content."""

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileStamp:
        """The stamp of ``path`` now (reads the whole file)."""
        stat = os.stat(path)
        return cls(stat.st_size, stat.st_mtime_ns, sha256_file(path))

    def still_matches(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` still holds the content stamped: same size and time, or else the same hash."""
        try:
            stat = os.stat(path)
        except OSError:
            return False
        if stat.st_size != self.size:
            return False
        return stat.st_mtime_ns == self.mtime_ns or sha256_file(path) == self.sha256


def stamp_files(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> dict[str, dict]:
    """``{name: FileStamp as dict}`` of ``paths``, named relative to ``root`` when given, sorted by name."""
    stamps = {}
    for path in paths:
        name = os.path.relpath(path, root) if root is not None else str(path)
        stamps[name] = asdict(FileStamp.of(path))
    return dict(sorted(stamps.items()))


def files_match(stamps: Mapping[str, Mapping[str, Any]], paths: Iterable[str | os.PathLike],
                root: str | os.PathLike | None = None) -> bool:
    """Whether ``paths`` are exactly the files stamped in ``stamps`` (same names) with the same contents."""
    current = {os.path.relpath(p, root) if root is not None else str(p): Path(p) for p in paths}
    if set(current) != set(stamps):
        return False
    return all(FileStamp(**stamps[name]).still_matches(path) for name, path in current.items())


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """A made-from record written as JSON, or ``None`` when it is missing or unreadable (the work is redone)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def made_from(settings: Mapping[str, Any], inputs: Iterable[str | os.PathLike],
              root: str | os.PathLike | None = None) -> dict[str, Any]:
    """A made-from record: ``settings`` (anything JSON-able) and the stamps of the ``inputs`` files."""
    return {"settings": _as_json(dict(settings)), "inputs": stamp_files(inputs, root)}


def content_digest(record: Mapping[str, Any] | None) -> str | None:
    """A digest of what a :func:`made_from` record's work was made from — settings and input contents, not file
    times — so that work made from it stays current when its inputs are rewritten unchanged (``None``: no record)."""
    if record is None:
        return None
    contents = {name: stamp.get("sha256") for name, stamp in record.get("inputs", {}).items()}
    return digest({"settings": record.get("settings"), "inputs": contents})


def is_current(record: Mapping[str, Any] | None, settings: Mapping[str, Any],
               inputs: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> bool:
    """Whether ``record`` (from :func:`made_from`, or ``None``) still describes ``settings`` and ``inputs``."""
    if record is None or not isinstance(record.get("inputs"), Mapping):
        return False
    return record.get("settings") == _as_json(dict(settings)) and files_match(record["inputs"], inputs, root)
