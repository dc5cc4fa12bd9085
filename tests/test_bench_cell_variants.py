"""bench/cell_variants.py runs end to end on tiny shapes: its implementations agree (the script
checks rnnfast.torch against torch.nn with proj_size, and the peephole kernel against its
PyTorch loop, and the LayerNorm kernels against theirs, before timing) and it prints every
variant, the ratios, both libraries' SGEMM rates and the SGEMM bound of every target against a
PyTorch peer (inference and training). Nothing is asserted of times."""
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
    for name in ["zoneout masks (h and c)", "recurrent-dropout masks"]:
        assert sum(name in line for line in timings) == 1, name  # the masks alone
    assert proc.stdout.count("training: drawing the masks: zoneout ") == 1
    for name in ["rnnfast LayerNorm LSTM", "rnnfast LayerNorm GRU", "rnnfast plain GRU"]:
        assert sum(name in line for line in timings) == 2, name
    assert sum("PyTorch LayerNorm loop" in line for line in timings) == 4  # LSTM, GRU
    for name in ["LSTM", "GRU"]:
        assert proc.stdout.count(f"LayerNorm {name} PyTorch loop / rnnfast = ") == 2
        assert proc.stdout.count(f"LayerNorm {name} / plain = ") == 2
    for lib in ["torch.matmul", "rnnfast"]:
        assert proc.stdout.count(f"SGEMM ({lib}, 1 thread(s)) GFLOP/s: 1024x1024x1024 ") == 1
    assert proc.stdout.count("SGEMM, the best of both: ") == 1
    for mode in ["inference", "training"]:  # every variant with a PyTorch peer
        for group in ["proj", "peephole", "zoneout", "ln-lstm", "ln-gru"]:
            assert proc.stdout.count(f"{mode} bound {group}: ") == 1, (mode, group)
