"""benchmarks/peak_memory.py: a process started from a large one reports its own peak memory, not its parent's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.peak_memory import peak_rss_bytes

REPO = Path(__file__).resolve().parents[1]
CHILD = f"""
import json, resource, sys
sys.path.insert(0, {str(REPO)!r})
from benchmarks.peak_memory import peak_rss_bytes
print(json.dumps([peak_rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
"""


def test_a_child_of_a_large_process_reports_its_own_peak():
    ballast = bytearray(300 * 2**20)
    ballast[:: 4096] = b"\1" * len(ballast[:: 4096])  # touched: resident
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    own, inherited = json.loads(done.stdout)
    assert peak_rss_bytes() > 300 * 2**20
    assert inherited > 300 * 2**20  # ru_maxrss: the parent's resident size at the fork
    assert 0 < own < 100 * 2**20  # a bare interpreter's own peak
    del ballast
