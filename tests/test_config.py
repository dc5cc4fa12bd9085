"""The configuration report (rnnfast.get_config / show_config / python -m rnnfast --config) and
the environment variables read at import (RNNFAST_ISA, RNNFAST_NUM_THREADS)."""
import io
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import rnnfast

ALL_ISAS = ["generic", "avx2", "avx512"]
# The directory the rnnfast under test comes from (site-packages, or a source tree built in
# place): child processes get it first on sys.path and run elsewhere, so they import the same
# rnnfast, never a source tree without its compiled module in their working directory.
IMPORT_DIR = str(Path(rnnfast.__file__).resolve().parents[1])


def run_python(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("RNNFAST_ISA", "RNNFAST_NUM_THREADS")}
    environ["PYTHONPATH"] = os.pathsep.join([IMPORT_DIR] + [p for p in [
        os.environ.get("PYTHONPATH")] if p])
    environ.update(env)
    return subprocess.run([sys.executable, *args], env=environ, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=120, check=False)


def test_get_config_agrees_with_the_runtime():
    c = rnnfast.get_config()
    assert c["version"] == rnnfast.__version__
    assert c["numpy"] == np.__version__
    assert c["python"] == platform.python_version()
    assert c["isa"] == rnnfast.active_isa()
    assert c["isas_supported"] == rnnfast.supported_isas()
    assert c["threads"] == rnnfast.get_num_threads()
    assert c["isas_built"][0] == "generic"
    assert set(c["isas_supported"]) <= set(c["isas_built"]) <= set(ALL_ISAS)
    assert c["isa"] in c["isas_supported"]


def test_build_flags_are_recorded_and_portable():
    c = rnnfast.get_config()
    assert c["compiler"].split()[0] in ("GCC", "Clang", "MSVC"), c["compiler"]
    assert c["cxx_standard"] >= 201703
    assert c["pybind11"].count(".") == 2
    flags = c["flags"].split()
    assert "-std=c++17" in flags and "-O3" in flags, c["flags"]
    every = " ".join([c["flags"]] + list(c["isa_flags"].values()))
    for forbidden in ("-march=native", "-mtune=native", "-ffast-math", "-Ofast"):
        assert forbidden not in every
    # Only the ISA translation units get instruction-set flags; the rest is baseline.
    assert not any(f.startswith(("-mavx", "-mfma", "-march")) for f in flags), c["flags"]
    assert c["isa_flags"]["generic"] == ""
    if "avx2" in c["isas_built"]:
        assert {"-mavx2", "-mfma"} <= set(c["isa_flags"]["avx2"].split())
    if "avx512" in c["isas_built"]:
        assert {"-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"} <= set(
            c["isa_flags"]["avx512"].split())
    if c["target"] == "x86_64":
        assert c["isas_built"] == ALL_ISAS
    else:
        assert c["isas_built"] == ["generic"]


def test_show_config_prints_every_field():
    out = io.StringIO()
    rnnfast.show_config(file=out)
    text = out.getvalue()
    c = rnnfast.get_config()
    for value in (f"rnnfast {c['version']}", f"numpy {c['numpy']}", f"python {c['python']}",
                  f"instruction set: {c['isa']}", ", ".join(c["isas_supported"]),
                  f"threads: {c['threads']}", c["compiler"], f"pybind11 {c['pybind11']}",
                  f"flags: {c['flags']}", "kernels: " + ", ".join(c["isas_built"])):
        assert value in text, (value, text)
    for isa, flags in c["isa_flags"].items():
        if flags:
            assert f"{isa} flags: {flags}" in text


def test_show_config_defaults_to_stdout(capsys):
    rnnfast.show_config()
    out = io.StringIO()
    rnnfast.show_config(file=out)
    assert capsys.readouterr().out == out.getvalue()


def test_main_config_prints_show_config():
    done = run_python("-m", "rnnfast", "--config", "--threads", "1")
    assert done.returncode == 0, done.stderr
    expected = run_python("-c", "import rnnfast; rnnfast.set_num_threads(1); rnnfast.show_config()")
    assert expected.returncode == 0, expected.stderr
    assert done.stdout == expected.stdout


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_rnnfast_isa_forces_a_supported_isa_and_rejects_a_missing_one(isa):
    done = run_python("-c", "import rnnfast; print(rnnfast.active_isa())", RNNFAST_ISA=isa.upper())
    if isa in rnnfast.supported_isas():
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == isa
    else:
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("ValueError: RNNFAST_ISA="), last
        assert f"instruction set '{isa}' is not supported by this CPU or build" in last
        assert "this CPU and build support " + ", ".join(rnnfast.supported_isas()) in last


def test_rnnfast_isa_rejects_an_unknown_name():
    done = run_python("-c", "import rnnfast", RNNFAST_ISA="avx1024")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: RNNFAST_ISA='avx1024': unknown instruction set"), last
    assert "expected generic, avx2 or avx512" in last


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "1025", "99999999999999999999", "0x4",
                                   "True", "4 threads"])
def test_rnnfast_num_threads_rejects_bad_values(value):
    done = run_python("-c", "import rnnfast", RNNFAST_NUM_THREADS=value)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"ValueError: RNNFAST_NUM_THREADS: expected an integer in 1..1024, got {value!r}"


@pytest.mark.parametrize("value,threads", [("1024", 1024), (" 3 ", 3), ("+2", 2)])
def test_rnnfast_num_threads_takes_integers_up_to_the_bound(value, threads):
    done = run_python("-c", "import rnnfast; print(rnnfast.get_num_threads())",
                      RNNFAST_NUM_THREADS=value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(threads)


def test_set_isa_names_what_is_supported():
    before = rnnfast.active_isa()
    with pytest.raises(ValueError, match="this CPU and build support generic"):
        rnnfast.set_isa("neon")
    with pytest.raises(TypeError, match="name: expected a str, got int"):
        rnnfast.set_isa(2)
    assert rnnfast.active_isa() == before
    for isa in ALL_ISAS:
        if isa not in rnnfast.supported_isas():
            with pytest.raises(ValueError, match=f"'{isa}' is not supported by this CPU or build"):
                rnnfast.set_isa(isa)
            assert rnnfast.active_isa() == before
