"""The kinds of problem nnunet_glacier reports, one error type each.

- :class:`InputError` — a bad input file or folder (missing, unreadable, wrongly
  named, inconsistent with its partner files); the message names it.
- :class:`ConfigError` — a bad configuration: an experiment or profile file
  that is missing, malformed or inconsistent.
- :class:`ModelError` — a bad model folder: not an nnU-Net results folder of
  ours, or without the trained folds asked for; the message names it.

All derive from :class:`GlacierError`; the command line reports each as one
``error: <message>`` line on stderr and exit code 1, and so an :class:`OSError`
(:func:`os_error_message`).
"""
from __future__ import annotations

from pathlib import Path


class GlacierError(Exception):
    """Base of the problems nnunet_glacier reports to its user."""


class _PathProblem(GlacierError):
    """A problem with one file or folder: the message is ``<path>: <problem>``."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        # rebuild from (path, problem) so the error survives a worker process (pickling)
        return type(self), (self.path, self.problem)


class InputError(_PathProblem, ValueError):
    """Bad input data; the message names the file and the problem."""


class ModelError(_PathProblem):
    """A model folder that cannot be used; the message names the folder (or file) and what is wrong."""


class ConfigError(GlacierError, ValueError):
    """A config or profile file is missing, malformed or inconsistent."""


def os_error_message(err: OSError) -> str:
    """An operating-system error as one line: ``<path>: <reason>`` (``<path> -> <other path>: <reason>`` for a
    rename or link), or its own text when it names no file."""
    if err.filename is None:
        return str(err)
    paths = str(err.filename) if err.filename2 is None else f"{err.filename} -> {err.filename2}"
    return f"{paths}: {err.strerror or err}"


def problem_of(err: Exception, path: str | Path) -> str:
    """What ``err`` says went wrong with ``path``, for a ``<path>: <problem>`` line: without ``path`` when the
    error is ours about that very path (it would be named twice), else the error's whole message."""
    if isinstance(err, _PathProblem) and err.path == Path(path):
        return err.problem
    return os_error_message(err) if isinstance(err, OSError) else str(err)
