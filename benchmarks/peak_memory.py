"""The peak memory of this process itself, for benchmarks and tests that run each case in a fresh interpreter.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not that on Linux: a process started
by ``fork`` and ``exec`` (``subprocess.run``) starts its count at its parent's
resident size at the fork, so every case of a large parent reports at least
the parent's size (measured: the child of an 800 MB Python process reports
814 MB; its own high-water mark is 13.5 MB). The kernel's high-water mark of
the process's current memory map, ``VmHWM`` in ``/proc/self/status``, starts
afresh at ``exec``.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's program (since its ``exec``), in bytes: ``VmHWM`` where
    ``/proc`` has it (Linux), else ``ru_maxrss`` (bytes on macOS, kB elsewhere)."""
    if STATUS.is_file():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
