"""The rnnfast.torch benchmarks run end to end on tiny shapes: bench/interleaved_torch.py with
its breakdown, bench/torch_step_overhead.py and bench/torch_compiled_vs_eager.py (which checks
the compiled model's outputs and gradients against eager before timing). Their numbers are not
asserted (tests never assert wall-clock times), only that every row is there and positive."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bench_modules import bench_module
from subprocess_env import python_env

pytest.importorskip("torch")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def run(script, *args):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, env=python_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def numbers(line):
    return [float(w) for w in line.split() if w.replace(".", "", 1).isdigit()]


def test_interleaved_with_breakdown():
    out = run("interleaved_torch.py", "--threads", "1", "--rounds", "2", "--steps", "1",
              "--T", "3", "--B", "2", "--size", "8", "--hidden", "8", "--vocab", "5",
              "--breakdown")
    rows = [line for line in out.splitlines() if line.split()[:1] == ["1"]]
    assert [line.split()[1] for line in rows] == ["torch", "rnnfast"]
    assert all(len(numbers(line)) == 7 and min(numbers(line)) > 0 for line in rows)
    for label in ("torch step", "rnnfast step", "torch LSTM forward+backward",
                  "rnnfast LSTM forward+backward", "rnnfast kernels forward+backward",
                  "torch LSTM forward", "torch LSTM backward", "rnnfast kernels forward",
                  "rnnfast kernels backward"):
        assert any(line.strip().startswith(label + " ") for line in out.splitlines()), label
    assert "bridge (rnnfast LSTM - kernels)" in out
    # the time outside the two kernel bindings, split at their entry and exit
    splits = [line.split(None, 3)[3] for line in out.splitlines()
              if " before " in line and line.strip().startswith("rnnfast ")]
    assert len(splits) == 2, out
    for text in splits:
        parts = dict((p.split()[0], numbers(p)) for p in text.split(", "))
        assert sorted(parts) == ["after", "before", "between"], text
        assert all(len(v) == 2 and min(v) >= 0 for v in parts.values()), text


def test_step_overhead():
    out = run("torch_step_overhead.py", "--rounds", "1", "--calls", "2", "--input", "3",
              "--hidden", "5")
    for mode in ("no_grad", "autograd", "backward"):
        for name in ("rnnfast.torch.LSTM", "torch.nn.LSTM"):
            line = next(x for x in out.splitlines() if x.split()[:2] == [name, mode])
            assert float(line.split()[2]) > 0
        ratio = next(x for x in out.splitlines() if x.split()[:1] == [mode])
        assert "torch.nn / rnnfast.torch = " in ratio and float(ratio.split()[-1]) > 0


@pytest.mark.slow
def test_compiled_vs_eager():
    out = run("torch_compiled_vs_eager.py", "--rounds", "2", "--calls", "1", "--T", "3",
              "--B", "2", "--size", "4", "--hidden", "5", "--models", "lstm", "--torch",
              "--fixed-cost", "--spins", "0.2", "--guards", "--floor", "0", "0.2")
    assert "lstm: compiled (forward and backward) and checked against eager" in out
    model_rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["lstm"]
                  and len(line.split()) > 3]
    # the floor's rows (a spin in ms third) after the timing table's (a variant name third)
    floor = [r for r in model_rows if r[2].replace(".", "", 1).isdigit()]
    rows = [r for r in model_rows if r not in floor]
    variants = {(r[1], " ".join(r[2:-5])) for r in rows}
    assert variants == {(mode, name) for mode in ("inference", "training")
                        for name in ("eager", "compiled", "torch.nn eager")}
    assert all(float(v) > 0 for r in rows for v in r[-5:])
    assert "PyTorch's cost per compiled call" in out
    by_mode = [line.split() for line in out.splitlines()
               if line.split()[:1] in (["inference"], ["training"])]
    fixed = [r for r in by_mode if r[1] in ("warm", "cold")]
    assert {(r[0], r[1]) for r in fixed} == {(mode, state) for mode in ("inference", "training")
                                             for state in ("warm", "cold")}
    spun = [r for r in by_mode if r[1] == "spin0.2"]
    assert [r[0] for r in spun] == ["inference", "training"]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in spun)
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in fixed)
    # the guards of the compiled model's cache entry per mode: a count, then four times
    assert "guards of the compiled lstm model" in out
    guards = [r for r in by_mode if r[1].isdigit()]
    assert [r[0] for r in guards] == ["inference", "training"]
    assert all(len(r) == 6 and int(r[1]) > 10 and all(float(v) > 0 for v in r[2:])
               for r in guards)
    # compiled minus eager with stand-in kernels, per mode and spin; the eager call's time
    # holds the stand-ins' spins (one kernel call in inference, two in training)
    assert "compiled minus eager with stand-in kernels" in out
    assert [(r[1], float(r[2])) for r in floor] == [
        (mode, spin) for spin in (0.0, 0.2) for mode in ("inference", "training")]
    for r in floor:
        assert len(r) == 8 and float(r[3]) > 0
        assert float(r[3]) >= float(r[2]) * (1 if r[1] == "inference" else 2)


def test_compare_with_bfloat16_precision(tmp_path):
    """bench/compare.py --precision float32 bfloat16: a row per precision, each peer checked
    (bfloat16 by issue 16's rule against PyTorch under autocast) before it was timed."""
    out = run("compare.py", "--precision", "float32", "bfloat16", "--cells", "lstm", "gru",
              "--shapes", "small", "--threads", "1", "--repeats", "1", "--no-step",
              "--peers", "rnnfast", "torch", "--out", str(tmp_path))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| 1 |")]
    got = {(r[1], r[3], r[4]) for r in rows}
    assert got == {(cell, mode, p) for cell in ("lstm", "gru") for mode in ("inference", "training")
                   for p in ("float32", "bfloat16")}, out
    for r in rows:
        assert float(r[5].split()[0]) > 0 and float(r[6].split()[0]) > 0, r
        assert float(r[7]) > 0, r  # speedup vs torch
    assert 'rnnfast precision="bfloat16"' in out


def test_compare_bfloat16_check_refuses_an_error_over_twice_autocasts():
    """The bfloat16 check is not vacuous: rnnfast's results pass it, the same results with one
    gradient's error tripled (relative to the float64 oracle) do not."""
    with bench_module("_peers") as peers, bench_module("_shapes") as shapes:
        case = peers.make_case(shapes.CELLS["lstm"], shapes.Shape("tiny", 6, 3, 5, 16))
        oracle = peers.compute_oracle(case)
        yard = peers.TorchPeer(np.float32, autocast=True).prepare(case, "training")
        yard = yard.extract(yard.call())
        peer = peers.BF16_PEERS["rnnfast"]
        run_ = peer.prepare(case, "training")
        result = run_.extract(run_.call())
        worst = peers.check_bf16(peer, case, "training", result, oracle, yard)
        assert 0 < worst["outputs"] <= 2 and 0 < worst["grads"] <= 2
        bad = dict(result)
        ref = oracle["dw_hh"]
        bad["dw_hh"] = (ref + 3 * (yard["dw_hh"] - ref)).astype(np.float32)
        with pytest.raises(AssertionError, match="dw_hh: RMS error"):
            peers.check_bf16(peer, case, "training", bad, oracle, yard)
