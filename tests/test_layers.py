"""The layer rules of DESIGN.md, checked on the source: imports only go down the stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "masklet"

# layer -> masklet subpackages it may import (besides itself)
ALLOWED = {
    "model": {"configs", "errors", "model"},
    "io": {"errors", "io"},
    "predict": {"configs", "errors", "model", "io", "predict", "checkpoints", "build"},
    "eval": {"configs", "errors", "model", "io", "predict", "eval"},
    "engine": {"configs", "errors", "model", "io", "predict", "eval", "engine", "checkpoints", "build"},
    "train": {"configs", "errors", "model", "io", "predict", "eval", "engine", "train", "checkpoints", "build"},
}
CLI = SRC / "cli"
MODEL_STDLIB_OK = {"__future__", "dataclasses", "math", "typing", "functools", "itertools", "collections", "enum",
                   "warnings", "logging", "torch"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_import_only_downwards():
    problems = []
    for layer, allowed in ALLOWED.items():
        for path in (SRC / layer).rglob("*.py"):
            for name in _imports(path):
                if name.startswith("masklet."):
                    target = name.split(".")[1]
                    if target not in allowed:
                        problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert not problems, problems


def import_cycles(package: Path, prefix: str) -> list[list[str]]:
    """Cycles among a package's modules, counting every import (also those under TYPE_CHECKING)."""
    modules = {p.stem for p in package.glob("*.py")}
    graph = {
        m: sorted({n[len(prefix) :] for n in _imports(package / f"{m}.py") if n[len(prefix) :] in modules} - {m})
        for m in modules
    }
    cycles, state = [], dict.fromkeys(modules, 0)  # 0 new, 1 on the path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state[n] == 1:
                cycles.append(path[path.index(n) :] + [m, n] if n in path else [m, n])
            elif state[n] == 0:
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(modules):
        if state[m] == 0:
            visit(m, [])
    return cycles


def test_model_modules_import_no_circle():
    """The step functions are typed against model/types.py and tracking_modules.py, not against
    sam2.py, which calls them: no model module imports another that imports it back."""
    assert import_cycles(SRC / "model", "masklet.model.") == []


def test_model_does_no_io():
    problems = []
    for path in (SRC / "model").rglob("*.py"):
        for name in _imports(path):
            root = name.split(".")[0]
            if root != "masklet" and root not in MODEL_STDLIB_OK:
                problems.append(f"{path.name} imports {name}")
    assert not problems, problems


def test_model_files_stay_small():
    too_long = {p.name: n for p in (SRC / "model").glob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not too_long, too_long


def test_import_masklet_is_cheap():
    code = "import sys, masklet; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_commands_import_only_common():
    """cli/common.py is the bottom of the CLI; a command module never imports another one (no cycle)."""
    problems = []
    for path in CLI.glob("*.py"):
        if path.name in ("__init__.py", "main.py"):
            continue
        for name in _imports(path):
            if name.startswith("masklet.cli") and name != "masklet.cli.common":
                problems.append(f"cli/{path.name} imports {name}")
            if name.startswith("masklet.compat"):
                problems.append(f"cli/{path.name} imports {name}")
    assert not problems, problems


def test_cli_starts_without_torch_or_the_database():
    code = "import sys, masklet.cli; print('torch' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_version_from_the_command_and_the_module():
    import masklet

    for argv in (["-m", "masklet", "--version"], ["-m", "masklet.cli.main", "--version"]):
        out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"masklet {masklet.__version__}"
