"""Checks a wheel against the source tree it was built from.

    python .ci/check_wheel.py WHEEL [REPO]

The wheel must hold every module of the package (each ``rnnfast/**/*.py``, the typing marker
and stubs, one compiled module per ``rnnfast/**/*.pyx`` and ``rnnfast._C``) and nothing else
(no tests, C++ sources, Cython sources or generated C); auditwheel's grafted libraries
(``rnnfast.libs/``) and the ``.dist-info`` are allowed.
"""
import re
import sys
import zipfile
from pathlib import Path

PACKAGE = "rnnfast"
EXTENSION = re.compile(r"\.(cpython-[^/]*|abi3)\.so$|\.pyd$")


def expected_files(repo):
    package = repo / PACKAGE
    files = set()
    for path in package.rglob("*"):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        relative = path.relative_to(repo).as_posix()
        if path.suffix in (".py", ".pyi") or path.name == "py.typed":
            files.add(relative)
    return files


def expected_extensions(repo):
    modules = {f"{PACKAGE}/_C"}
    modules |= {p.relative_to(repo).with_suffix("").as_posix() for p in (repo / PACKAGE).rglob("*.pyx")}
    return modules


def check(wheel, repo):
    names = [n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")]
    errors = []
    in_package = {n for n in names if n.startswith(PACKAGE + "/")}
    extensions = {n for n in in_package if EXTENSION.search(n)}
    modules = {EXTENSION.split(n)[0] for n in extensions}
    for missing in sorted(expected_files(repo) - in_package):
        errors.append(f"missing from the wheel: {missing}")
    for missing in sorted(expected_extensions(repo) - modules):
        errors.append(f"missing compiled module: {missing}")
    for extra in sorted(in_package - expected_files(repo) - extensions):
        errors.append(f"not a file of the package: {extra}")
    for name in names:
        top = name.split("/", 1)[0]
        if top not in (PACKAGE, PACKAGE + ".libs") and not top.endswith(".dist-info"):
            errors.append(f"outside the package: {name}")
    return errors


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    wheel = Path(argv[1])
    repo = Path(argv[2]) if len(argv) == 3 else Path(__file__).resolve().parents[1]
    errors = check(wheel, repo)
    for error in errors:
        print(f"{wheel.name}: {error}", file=sys.stderr)
    if not errors:
        print(f"{wheel.name}: every module of {repo.name}/{PACKAGE} is in the wheel, nothing else")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
