"""bench/epochs_vs_torch.py runs end to end on a tiny budget: its PyTorch twins compute the
examples' models (it checks their outputs before training), train on the same batches to the
same losses, and the tables (epochs; WaveNet generation) are complete and consistent."""
import math
import pathlib
import subprocess
import sys

import pytest

from subprocess_env import python_env

pytest.importorskip("torch")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "epochs_vs_torch.py"
EXAMPLES = ["reuters_topics", "imdb_sentiment", "stock_forecast", "char_rnn", "translate",
            "wavenet"]


def test_epochs_vs_torch_quick():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "2"],
                          capture_output=True, text=True, env=python_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "2 threads (rnnfast 2, torch 2)" in out and "PyTorch 2.13" in out
    epochs, generation = out.split("| example ")[1].split("| method ")
    rows = [line.split("|")[1:-1] for line in epochs.splitlines()[2:] if line.startswith("| ")]
    assert [r[0].strip() for r in rows] == EXAMPLES, out
    speeds = {line.split("|")[1].strip(): [float(c) for c in line.split("|")[2:-1]]
              for line in generation.splitlines()[2:] if line.startswith("| ")}
    fast, speedup = speeds["rnnfast WaveNetGenerator (queues)"]
    naive, one = speeds["PyTorch, receptive field recomputed per sample"]
    assert fast > 0 and naive > 0 and one == 1.0, out
    # each figure is printed to one decimal: the speed-up must lie within what the printed
    # rates allow (a slow naive loop prints as e.g. 0.7, a 7% rounding on its own)
    lo = (fast - 0.05) / (naive + 0.05) - 0.05
    hi = (fast + 0.05) / max(naive - 0.05, 1e-9) + 0.05
    assert lo <= speedup <= hi, out
    assert "receptive field 257" in out and "logits checked" in out, out
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


def test_twin_training_agrees_with_rnnfast_in_float64():
    """The bench's PyTorch twin of the Reuters model and rnnfast's Sequential, both float64,
    from the same weights over the same batches (Adam, an active clipnorm, softmax
    cross-entropy): the same losses and weights to rounding after 12 steps, so the table
    compares like with like."""
    import copy

    import numpy as np

    from rnnfast.models import Sequential
    from rnnfast.models.layers import LSTM, Dense, Embedding

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import epochs_vs_torch as bench
        import reuters_topics
    finally:
        sys.path.remove(str(SCRIPT.parent))
    (x, y), _, categories, _ = reuters_topics.load_data(samples=200, seed=1)
    rn = Sequential([Embedding(1000, 16, seed=0, dtype=np.float64),
                     LSTM(12, seed=1, dtype=np.float64),
                     Dense(categories, activation="softmax", seed=2, dtype=np.float64)], seed=0)
    rn.compile(loss="categorical_crossentropy", optimizer="adam", clipnorm=0.01)
    rn.build((None,) + x.shape[1:], x.dtype)
    twin = bench.LastStepClassifier(1000, 16, 12, categories).double()
    bench.copy_weights(rn, twin)
    opt = bench.torch_optimizer(rn, twin)
    case = bench.Reuters.__new__(bench.Reuters)
    case.batch_size = 40
    xt, yt = case.tensors(x, y)
    for _ in range(3):
        order = copy.deepcopy(rn.rng).permutation(len(x))
        ours = rn.fit(x, y, batch_size=40, epochs=1, verbose=0)["loss"][0]
        _, theirs, _ = bench.torch_epoch(case, twin, opt, xt, yt, 0.01, order)
        assert abs(ours - theirs) < 1e-12
    state = twin.state_dict()
    assert np.abs(rn.layers[1].rnn.weight_hh_l0.data - state["lstm.weight_hh_l0"].numpy()).max() \
        < 1e-12
    assert np.abs(rn.layers[2].weight.data - state["dense.weight"].numpy()).max() < 1e-12
