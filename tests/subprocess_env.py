"""How tests start Python subprocesses that must import the same rnnfast as the tests do.

The tests may import an installed rnnfast (site-packages: `pip install . && pytest tests`) or
a source tree built in place (`python -m pytest tests`). A subprocess started from the
repository root with the repository on PYTHONPATH would import the uncompiled source tree in
the first case, so subprocesses get the folder that holds the imported package instead, both
as PYTHONPATH and as working directory for `python -c` / `python -m`.
"""
import os
import pathlib

import rnnfast

PACKAGE_PARENT = pathlib.Path(rnnfast.__file__).resolve().parents[1]


def python_env(**extra):
    """os.environ with the imported rnnfast's folder first on PYTHONPATH, plus extra variables."""
    env = dict(os.environ, **extra)
    rest = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT)] + ([rest] if rest else []))
    return env
