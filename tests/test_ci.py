"""The CI script installs the package and runs exactly the README's test command."""
from __future__ import annotations

import os
from pathlib import Path

CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"
README = Path(__file__).resolve().parents[1] / "README.md"
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def test_ci_script_runs_the_test_command():
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert '.venv/bin/pip install -e ".[test]"' in lines
    # the style, then the types (mypy reads its configuration from pyproject.toml) are checked before the tests
    assert lines[-3:] == [".venv/bin/ruff check .", ".venv/bin/mypy", TEST_COMMAND]
    assert os.access(CI_RUN, os.X_OK)
    assert f"```bash\n{TEST_COMMAND}\n```" in README.read_text()  # the README's test command, as it states it
