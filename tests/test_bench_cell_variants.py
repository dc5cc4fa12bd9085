"""bench/cell_variants.py runs end to end on tiny shapes: its implementations agree (the script
checks rnnfast.torch against torch.nn with proj_size, and the peephole kernel against its
PyTorch loop, before timing) and it prints every variant and the ratios. Nothing is timed."""
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "cell_variants.py"


def test_cell_variants_bench_runs():
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--rounds", "1",
                           "--steps", "3", "--batch", "2", "--input", "5", "--hidden", "7",
                           "--proj", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    timings = [line for line in proc.stdout.splitlines() if line.endswith(" ms")]
    for name in ["rnnfast.torch.LSTM(proj_size)", "torch.nn.LSTM(proj_size)",
                 "rnnfast peephole LSTM", "PyTorch loop", "rnnfast projection LSTM",
                 "rnnfast zoneout LSTM", "PyTorch zoneout loop"]:
        assert sum(name in line for line in timings) == 2, name  # inference and training
    assert proc.stdout.count("peephole PyTorch loop / rnnfast = ") == 2
    assert proc.stdout.count("zoneout / plain = ") == 2
    assert proc.stdout.count("zoneout PyTorch loop / rnnfast = ") == 2
    assert sum("rnnfast recurrent-dropout LSTM" in line for line in timings) == 1  # training
    assert proc.stdout.count("training: recurrent dropout / plain = ") == 1
