"""The scripts of benchmarks/ are not a package: tests import them by path."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("recipe")`` -> the module of ``benchmarks/recipe.py``."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # Registered as the import system does: dataclasses look their module up there.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load
