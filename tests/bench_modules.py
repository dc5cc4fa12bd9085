"""A bench/ script imported as a module by a test, with bench/ and examples/ on sys.path while
the test uses it (the scripts import their siblings and the examples by name)."""
import contextlib
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bench_module(name):
    paths = [str(ROOT / "bench"), str(ROOT / "examples")]
    sys.path[:0] = paths
    try:
        yield importlib.import_module(name)
    finally:
        for p in paths:
            sys.path.remove(p)
