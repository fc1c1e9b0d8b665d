"""The kinds of problem nnunet_glacier reports, one error type each.

- :class:`InputError` — a bad input file or folder (missing, unreadable, wrongly
  named, inconsistent with its partner files); the message names it.
- :class:`ConfigError` — a bad configuration: an experiment or profile file
  that is missing, malformed or inconsistent.
- :class:`ModelError` — a bad model folder: not an nnU-Net results folder of
  ours, or without the trained folds asked for; the message names it.

All derive from :class:`GlacierError`; the command line reports each as one
``error: <message>`` line on stderr and exit code 1.
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
