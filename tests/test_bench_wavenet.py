"""bench/wavenet_vs_torch.py runs end to end on a tiny budget: it checks the fast generator's
logits against PyTorch's naive loop before timing, and its table is consistent (the training
epochs against the twin are in test_bench_epochs.py)."""
import pathlib
import subprocess
import sys

import pytest

from subprocess_env import python_env

pytest.importorskip("torch")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "wavenet_vs_torch.py"


def test_wavenet_vs_torch_quick():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "2"],
                          capture_output=True, text=True, env=python_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "# WaveNet vs PyTorch: 2 threads" in out and "receptive field 257" in out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    fast = float(rows["rnnfast WaveNetGenerator (queues)"][0])
    naive = float(rows["PyTorch, receptive field recomputed per sample"][0])
    assert fast > 0 and naive > 0
    assert float(rows["rnnfast WaveNetGenerator (queues)"][1]) == pytest.approx(fast / naive,
                                                                               rel=0.06)
