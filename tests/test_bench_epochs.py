"""bench/epochs_vs_torch.py runs end to end on a tiny budget: its PyTorch twins compute the
examples' models (it checks their outputs before training), train on the same batches to the
same losses, and the table is complete and consistent."""
import math
import pathlib
import subprocess
import sys

import pytest

from subprocess_env import python_env

pytest.importorskip("torch")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "epochs_vs_torch.py"
EXAMPLES = ["reuters_topics", "imdb_sentiment", "stock_forecast", "char_rnn"]


def test_epochs_vs_torch_quick():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "2"],
                          capture_output=True, text=True, env=python_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "2 threads (rnnfast 2, torch 2)" in out and "PyTorch 2.13" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| example")]
    assert [r[0].strip() for r in rows] == EXAMPLES, out
    for cells in rows:
        name = cells[0].strip()
        rn_s, torch_s, ratio, rn_loss, torch_loss = (float(c) for c in cells[3:8])
        rn_metric, torch_metric = float(cells[9]), float(cells[10])
        assert rn_s > 0 and torch_s > 0, out
        assert abs(ratio - torch_s / rn_s) <= 2e-3 * ratio + 0.01, out
        assert all(math.isfinite(v) and v > 0 for v in (rn_loss, torch_loss)), out
        assert 0 <= rn_metric <= 1 and 0 <= torch_metric <= 1, out
        if name != "imdb_sentiment":  # no dropout: same weights, same batches, same losses
            assert abs(rn_loss - torch_loss) <= 2e-3 * rn_loss, out
