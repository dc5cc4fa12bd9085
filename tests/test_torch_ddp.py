"""rnnfast.torch under DistributedDataParallel: two gloo processes on halves of each batch end
with the weights of one process trained on the whole batches (examples/torch_ddp_lstm.py)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from subprocess_env import python_env

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "torch_ddp_lstm.py"
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
WORKER_TIMEOUT = 120  # seconds the example gives its workers
TEST_TIMEOUT = 240  # seconds before the test kills the example and all its processes

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available")


def run_example(*args):
    """Runs the example in its own process group, killed as a whole on timeout."""
    env = python_env()
    process = subprocess.Popen([sys.executable, str(EXAMPLE), *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{EXAMPLE.name} ran past {TEST_TIMEOUT} s")
    return process.returncode, stdout, stderr


def rel_diff(a, b):
    return (a.double() - b.double()).abs().max().item() / max(1.0, b.double().abs().max().item())


def test_ddp_training_equals_single_process_training(tmp_path):
    code, stdout, stderr = run_example("--quick", "--dtype", "float32", "float64",
                                       "--timeout", str(WORKER_TIMEOUT), "--out", str(tmp_path))
    assert code == 0, stdout + stderr
    for name, tol in TOLERANCE.items():
        init = torch.load(tmp_path / f"init_{name}.pt")
        single = torch.load(tmp_path / f"single_{name}.pt")
        ranks = [torch.load(tmp_path / f"ddp_rank{r}_{name}.pt") for r in range(2)]
        assert list(single) == list(init) == list(ranks[0]) == list(ranks[1])
        assert "lstm.weight_hh_l1_reverse" in single
        for key, want in single.items():
            assert want.dtype == getattr(torch, name)
            # The replicas stay identical: every rank applies the same averaged gradient.
            assert torch.equal(ranks[0][key], ranks[1][key]), key
            assert rel_diff(ranks[0][key], want) < tol, key
            # Training moved every weight far beyond the tolerance, so the comparison tells.
            assert rel_diff(want, init[key]) > 10 * tol, key
    assert "MISMATCH" not in stdout

