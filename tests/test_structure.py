"""The package's structure: which module may import which (one home per piece, no import cycles).

The import graph is read from the source with ``ast``: every ``import`` of a
``nnunet_glacier`` module counts, at module level, inside functions (lazy
imports) and under ``TYPE_CHECKING`` alike.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_glacier"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for child in graph.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_no_import_cycle():
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert not cycles, f"modules on an import cycle: {cycles}"


@pytest.mark.parametrize("module, forbidden", [
    ("nnunet_glacier.data.caffe", "nnunet_glacier.data.experiments"),  # the data layer knows tasks, not experiments
    ("nnunet_glacier.field.detect", "nnunet_glacier.evaluation.evaluate"),  # both use the routes of postprocess
])
def test_module_does_not_depend_on(module, forbidden):
    assert forbidden not in reachable(import_graph(), module)


#: Modules that make the command line slow to answer; ``--help`` must not import them.
HEAVY = ("torch", "nnunetv2", "matplotlib", "scipy", "skimage", "rasterio")

HELP_PROBE = """
import sys
from nnunet_glacier.cli import build_parser, help_requests, main
cases = help_requests(build_parser())
for args in cases:
    try:
        main(args)
    except SystemExit as done:
        assert done.code == 0, (args, done.code)
print(len(cases), [m for m in HEAVY if m in sys.modules])
"""


def test_help_and_version_of_every_command_import_no_heavy_module():
    """``--help`` (every command, every figure) and ``--version`` answer at once: no torch, nnU-Net, matplotlib ...

    Their time is measured in benchmarks/bench_cli.py; here the imports are checked in a fresh interpreter.
    """
    result = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{HELP_PROBE}"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    n_cases, imported = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(n_cases) >= 20 and imported == "[]"


def test_prediction_types_import_no_torch():
    """Prediction's values (one scene's prediction, a run's report) can be used without torch and nnU-Net."""
    probe = ("import sys\nimport nnunet_glacier.nnunet.prediction_types\n"
             "print([m for m in ('torch', 'nnunetv2') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_trainer_path_prints_the_folder_to_export(capsys):
    from nnunet_glacier.cli import main
    from nnunet_glacier.nnunet.workspace import TRAINER_DIR

    assert main(["trainer-path"]) == 0
    assert capsys.readouterr().out.strip() == str(TRAINER_DIR)
    assert (TRAINER_DIR / "caffe_trainers.py").is_file()


#: The floors of the package, from the bottom: a module imports only from its own package or from lower floors
#: (``field`` and ``pipeline`` share the top floor below the command line and do not import each other).
FLOORS = {"__init__": 0, "errors": 0, "utilities": 1, "data": 2, "nnunet": 3, "postprocessing": 4, "evaluation": 5,
          "field": 6, "pipeline": 6, "cli": 7}


def floor_package(module: str) -> str:
    """``nnunet_glacier.data.caffe`` -> ``data``; ``nnunet_glacier.cli`` -> ``cli``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_sits_in_a_floor_package():
    assert {floor_package(name) for name in import_graph()} == set(FLOORS)


def test_imports_point_down_the_pipeline():
    upward = sorted(f"{module} -> {imported}" for module, imports in import_graph().items() for imported in imports
                    if floor_package(module) != floor_package(imported)
                    and FLOORS[floor_package(imported)] >= FLOORS[floor_package(module)])
    assert not upward, f"imports against the pipeline's direction: {upward}"
