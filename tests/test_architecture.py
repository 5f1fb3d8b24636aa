"""The package's shape: every import runs downward (the layer contracts in pyproject.toml,
checked by import-linter), sits at the top of its module, and every module imports on its own."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "playspeed"
CONFIG = ROOT / "pyproject.toml"

# Imports inside functions that are there for a reason other than a cycle.
LAZY_IMPORTS = {
    # each command imports its library code when it runs, so `playspeed --help` (and a
    # mistyped command) answers at once instead of after loading torch and Lightning
    "cli.py": None,
    # `import playspeed` stays torch-free; playspeed.load_backbone loads export on first use
    "__init__.py": {"playspeed.export"},
    # optional dependency (the onnx extra), checked only when installed
    "export.py": {"onnxruntime"},
}


def _lint(package_root: Path) -> subprocess.CompletedProcess:
    """import-linter's verdict on the package found under ``package_root`` (a src folder)."""
    code = ("from importlinter.cli import lint_imports; "
            f"raise SystemExit(lint_imports(config_filename={str(CONFIG)!r}, no_cache=True, "
            "no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


def test_every_import_runs_downward():
    result = _lint(PACKAGE.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    """The contracts catch what they are for: the data layer importing a task."""
    copy = tmp_path / "src" / "playspeed"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    sampling = copy / "data" / "sampling.py"
    sampling.write_text(sampling.read_text() + "\nimport playspeed.tasks.metrics  # noqa\n")
    result = _lint(tmp_path / "src")
    assert result.returncode == 1
    assert "playspeed.data is not allowed to import playspeed.tasks" in result.stdout


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import inside a function or class body of ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name) for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    found.append((inner.lineno, inner.module or ""))
    return found


def test_imports_sit_at_the_top_of_their_module():
    misplaced = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        allowed = LAZY_IMPORTS.get(relative, set())
        misplaced += [f"{relative}:{line}: {module}" for line, module in _function_imports(path)
                      if allowed is not None and module not in allowed]
    assert not misplaced, "imports inside functions:\n" + "\n".join(misplaced)


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # runs the command line when imported
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


# Run in a fresh interpreter: the third-party libraries are imported once, then every module
# of the package is imported in a forked child of its own, which starts with no playspeed
# module loaded (forking spares each child the seconds of importing torch again).
IMPORT_EACH = """
import importlib, os, sys
import av, lightning, matplotlib, numpy, omegaconf, safetensors, simplejpeg, torch, tqdm
assert not [name for name in sys.modules if name.startswith("playspeed")]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as err:
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """A module that works only after another was imported first (an import cycle broken by
    luck of order) fails here."""
    modules = _modules()
    assert len(modules) > 40
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH, *modules],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
