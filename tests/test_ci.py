"""The CI script installs the package and runs exactly the README's test command."""
from __future__ import annotations

import os
from pathlib import Path

CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def test_ci_script_runs_the_test_command():
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert '.venv/bin/pip install -e ".[test]"' in lines
    assert lines[-2:] == [".venv/bin/ruff check .", TEST_COMMAND]  # the style is checked before the tests
    assert os.access(CI_RUN, os.X_OK)
