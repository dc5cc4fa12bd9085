"""The package as shipped: version, typing marker, the installed files, the API page, and the
machine code of rnnfast._C (AVX instructions only in the instruction-set translation units).

CI sets RNNFAST_TEST_INSTALLED=1: the tests that need an installed rnnfast then fail instead of
skipping when the rnnfast under test is not the installed distribution."""
import bisect
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnfast
import rnnfast.functional
from rnnfast import _C

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(rnnfast.__file__).resolve().parent
EXPECT_INSTALLED = os.environ.get("RNNFAST_TEST_INSTALLED") == "1"
ISA_UNITS = re.compile(r"_avx(2|512)\.cc$")
# AVX/AVX-512 code: a VEX/EVEX mnemonic (all start with "v"), a ymm/zmm register or an opmask.
AVX = re.compile(r"^v(?!err|erw)[a-z]|%[yz]mm\d|%k[0-7]\b")


def installed_distribution():
    """The installed rnnfast distribution if it is what `import rnnfast` gave, else None."""
    try:
        dist = importlib.metadata.distribution("rnnfast")
    except importlib.metadata.PackageNotFoundError:
        return None
    init = Path(dist.locate_file("rnnfast/__init__.py")).resolve()
    return dist if init == PACKAGE_DIR / "__init__.py" else None


@pytest.fixture
def dist():
    found = installed_distribution()
    if found is None:
        message = f"rnnfast is imported from {PACKAGE_DIR}, not from an installed distribution"
        if EXPECT_INSTALLED:
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_version_has_one_source():
    from rnnfast import _version

    assert rnnfast.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", rnnfast.__version__)


def test_typing_marker_is_shipped():
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_installed_metadata_and_files(dist):
    assert dist.version == rnnfast.__version__
    files = {str(f).replace("\\", "/") for f in dist.files}
    for needed in ("rnnfast/__init__.py", "rnnfast/_version.py", "rnnfast/py.typed",
                   "rnnfast/functional/__init__.py", "rnnfast/reference/__init__.py"):
        assert needed in files, needed
    assert any(re.fullmatch(r"rnnfast/_C\..*(so|pyd)", f) for f in files)
    assert not any(f.startswith(("tests/", "csrc/", "bench/")) for f in files)
    requires = dist.requires or []
    assert any(r.startswith("numpy") for r in requires)
    extras = set(dist.metadata.get_all("Provides-Extra") or [])
    assert {"test", "bench", "torch"} <= extras


def torch_extra(requires):
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        if re.search(r"""extra\s*==\s*["']torch["']""", marker):
            return spec.strip()
    return None


def test_torch_extra_is_a_range_tested_at_its_low_end(dist):
    """[torch] does not pin users to one release: torch>=X. CI installs torch==X (the low end,
    .ci/torch_low_end.py), so there the installed torch must be release X."""
    spec = torch_extra(dist.requires or [])
    assert spec is not None and "==" not in spec, spec
    low = re.search(r">=\s*([0-9.]+)", spec)
    assert low, spec
    if EXPECT_INSTALLED:
        try:
            installed = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            pytest.skip("torch is not installed")
        release = [int(p) for p in re.match(r"[0-9.]+", installed).group(0).strip(".").split(".")]
        wanted = [int(p) for p in low.group(1).split(".")]
        width = max(len(release), len(wanted))
        assert release + [0] * (width - len(release)) == wanted + [0] * (width - len(wanted)), \
            f"CI tests torch {installed}, not the low end of {spec}"


def test_tests_import_the_installed_package(dist):
    """The package under test is the installed one, not a source tree on sys.path."""
    assert Path(_C.__file__).resolve().parent == PACKAGE_DIR
    assert PACKAGE_DIR != (ROOT / "rnnfast").resolve()


def load_gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_is_up_to_date():
    page = load_gen_api().render(PACKAGE_DIR)
    current = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    assert page == current, "docs/API.md is out of date: run `python docs/gen_api.py`"


def test_api_page_documents_every_public_function():
    page = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    for module in (rnnfast, rnnfast.functional):
        for name in module.__all__:
            assert f"### `{module.__name__}.{name}`" in page, name
            obj = getattr(module, name)
            if callable(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
    for name in rnnfast.functional.__all__:
        assert "Args" in getattr(rnnfast.functional, name).__doc__, name


# ---- machine code: only the ISA translation units may hold AVX instructions


def function_symbols(path):
    """Function symbols of .symtab as (start, end, name, source file); the file is known for the
    symbols local to one object (those listed after its FILE entry), else None."""
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    table = out[out.find("Symbol table '.symtab'"):]
    symbols, current = [], None
    for line in table.splitlines():
        parts = line.split()
        if len(parts) < 7 or not parts[0].endswith(":"):
            continue
        size, kind, bind, name = parts[2], parts[3], parts[4], parts[7] if len(parts) > 7 else ""
        if kind == "FILE":
            current = name or None
            continue
        if kind == "FUNC" and int(size, 0) > 0:
            start = int(parts[1], 16)
            symbols.append((start, start + int(size, 0), name, current if bind == "LOCAL" else None))
    return sorted(symbols)


def avx_instructions(path):
    """Addresses and text of the AVX instructions in the executable sections."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-w", str(path)],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip().endswith(":"):
            continue
        text = "\t".join(parts[1:]).strip()
        if AVX.search(text):
            found.append((int(parts[0].strip()[:-1], 16), text))
    return found


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
                    reason="x86-64 Linux only")
@pytest.mark.skipif(not (shutil.which("objdump") and shutil.which("readelf")),
                    reason="needs binutils (objdump, readelf)")
def test_avx_code_only_in_isa_translation_units():
    """The baseline x86-64 code never executes an AVX instruction on a CPU without AVX: every
    function holding one is local to a *_avx2.cc / *_avx512.cc object (so the linker cannot
    have merged it with a baseline copy of an inline function or template)."""
    so = Path(_C.__file__)
    found = avx_instructions(so)
    if rnnfast.get_config()["isas_built"] == ["generic"]:
        assert not found, f"AVX instructions in a build without the x86 kernels: {found[:5]}"
        return
    symbols = function_symbols(so)
    if not any(f and ISA_UNITS.search(f) for _, _, _, f in symbols):
        pytest.skip(f"{so.name} has no symbol table with source files (stripped)")
    starts = [s[0] for s in symbols]
    in_isa_units, outside = 0, {}
    for address, text in found:
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and symbols[i][0] <= address < symbols[i][1]:
            _, _, name, source = symbols[i]
        else:
            name, source = f"<no symbol at {address:#x}>", None
        if source and ISA_UNITS.search(source):
            in_isa_units += 1
        else:
            outside.setdefault(f"{name} ({source or 'not local to one object'})", text)
    assert not outside, ("AVX instructions outside the ISA translation units (keep ISA code in an "
                         f"anonymous namespace of *_avx2.cc / *_avx512.cc): {outside}")
    assert in_isa_units > 1000, "found (almost) no AVX code at all: is the parsing broken?"


def unbuilt_source_tree(folder):
    """A copy of the package's sources without the compiled modules, with a setup.py beside
    it (as in a fresh checkout); the environment to run Python in it."""
    shutil.copytree(PACKAGE_DIR, folder / "rnnfast",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (folder / "setup.py").write_text("raise SystemExit('not to be run')\n")
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def assert_says_how_to_build(done, tree):
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cannot import rnnfast._C from "), last
    assert f"{tree} is a source tree without its build" in last, last
    assert "pip install -e ." in last and "python setup.py build_ext --inplace" in last, last
    assert "outside the source tree" in last, last


def test_a_source_tree_without_its_build_says_so(tmp_path):
    """Importing rnnfast from a tree with the sources but no compiled module, and no installed
    copy (-S: no site-packages), is an ImportError that says what to run."""
    tree = tmp_path / "tree"
    env = unbuilt_source_tree(tree)
    numpy_only = tmp_path / "numpy_only"  # NumPy, without the site-packages that hold rnnfast
    numpy_only.mkdir()
    numpy_dir = Path(np.__file__).resolve().parent
    for name in ("numpy", "numpy.libs"):
        if (numpy_dir.parent / name).exists():
            (numpy_only / name).symlink_to(numpy_dir.parent / name)
    env["PYTHONPATH"] = str(numpy_only)
    done = subprocess.run([sys.executable, "-S", "-c", "import rnnfast"], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert_says_how_to_build(done, tree)


def test_a_source_tree_without_its_build_never_runs_another_copy(tmp_path, dist):
    """In a fresh checkout's root, where ./rnnfast shadows the installed package, `import
    rnnfast` and `python -m rnnfast --config` fail loudly with the command to run: they never
    take code from the installed copy (which could be older than the sources being edited)."""
    env = unbuilt_source_tree(tmp_path)
    for command in (["-c", "import rnnfast"], ["-m", "rnnfast", "--config"]):
        done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert_says_how_to_build(done, tmp_path)
        assert "instruction set:" not in done.stdout


def test_a_broken_installed_copy_says_reinstall(tmp_path):
    """Without a setup.py beside the package (an installed copy whose compiled module is
    missing or broken), the error says to reinstall."""
    env = unbuilt_source_tree(tmp_path)
    (tmp_path / "setup.py").unlink()
    done = subprocess.run([sys.executable, "-c", "import rnnfast"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cannot import rnnfast._C from "), last
    assert "reinstall rnnfast" in last, last
