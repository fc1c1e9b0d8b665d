"""How fast the command line answers ``--help`` and ``--version``, against named baselines in the same run.

Each case runs in a fresh interpreter (``python -c`` calling ``nnunet_glacier.cli.main``), ``--repeats`` times;
the median wall time is printed with its ratio to the baselines ``python -c "import torch"`` (what every
``--help`` cost when the parser imported the predictor) and ``python -c "pass"`` (the interpreter's start).
Goal: every ``--help`` well under a second, i.e. a small fraction of importing torch, and close to ``pass``.

    PYTHONPATH=. python benchmarks/bench_cli.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from nnunet_glacier.cli import build_parser, help_requests


def wall_time(code: str, repeats: int) -> float:
    """Median seconds of ``python -c code`` over ``repeats`` fresh interpreters (output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeats", type=int, default=3)
    repeats = options.parse_args().repeats
    baselines = {"import torch": wall_time("import torch", repeats), "pass": wall_time("pass", repeats)}
    print(f"baselines (median of {repeats}): " + ", ".join(f'python -c "{k}" {v:.3f} s' for k, v in baselines.items()))
    print(f"{'nnunet-glacier ...':<32}{'seconds':>9}{'/ import torch':>16}{'/ pass':>9}")
    for args in help_requests(build_parser()):
        seconds = wall_time(f"import sys; from nnunet_glacier.cli import main; sys.exit(main({args!r}))", repeats)
        print(f"{' '.join(args):<32}{seconds:>9.3f}{seconds / baselines['import torch']:>16.2f}"
              f"{seconds / baselines['pass']:>9.1f}")


if __name__ == "__main__":
    main()
