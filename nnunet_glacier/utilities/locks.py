"""Locks that keep concurrent runs from doing the same work twice or mixing their results.

Two ``detect`` or ``reproduce`` runs on one output folder take a lock per
scene or per step (:func:`exclusive`): the second waits until the first has
finished that piece of work, then finds it done (its made-from record is
current) and skips it. Locks are ``flock`` locks on a ``.lock`` file: the
operating system releases them when the process holding them ends, killed
or not, so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a piece of work whose result is ``path``: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextmanager
def exclusive(path: str | os.PathLike, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock of the work whose result is ``path`` for the block.

    With ``wait`` (default) it blocks until the lock is free and yields
    ``True``; without, it yields ``False`` at once when another process
    holds the lock (and holds nothing).
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
