"""bench/training_phases.py on a tiny LSTM: the training call checked against the reference (and
a wrong gradient refused), one row per thread count and phase, the FLOP counts of the table."""
import numpy as np
import pytest

from bench_modules import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("training_phases") as module:
        yield module


def test_table_has_every_phase_per_thread_count(bench, capsys):
    before = bench.rnnfast.get_num_threads()
    bench.main(["--steps", "5", "--batch", "17", "--input", "6", "--hidden", "9", "--rounds", "1",
                "--inner", "2", "--threads", "1", "2"])
    out = capsys.readouterr().out
    assert out.startswith("LSTM custom(T5,B17,I6,H9)")
    rows = [line for line in out.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [r.split(" | ")[1] for r in rows] == list(bench.PHASES) * 2
    for row in rows:
        values = [float(v) for v in row.rstrip(" |").split(" | ")[2:]]
        assert len(values) == 6 and values[0] > 0 and all(v >= 0 for v in values)
    assert bench.rnnfast.get_num_threads() == before  # the caller's thread count restored


def test_flop_counts(bench):
    fwd, bwd = bench.gflop(bench.SHAPES["medium"])
    assert fwd == pytest.approx(2 * 100 * 32 * 256 * 512 / 1e9)
    assert bwd == pytest.approx(2 * fwd)


def test_check_refuses_a_wrong_gradient(bench):
    shape = bench.Shape("tiny", 4, 3, 5, 6)
    args, dy = bench.case_arrays(shape)
    bench.check(args, dy)

    def backward(ctx, dy):
        grads = dict(bench.F.lstm_backward(ctx, dy))
        grads["w_hh"] = grads["w_hh"] + np.float32(1e-2)
        return grads
    with pytest.raises(AssertionError, match="gradient w_hh"):
        bench.check(args, dy, backward=backward)
