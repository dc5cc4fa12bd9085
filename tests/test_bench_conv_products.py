"""bench/conv_cpu_time.py products: a row per product of a convolution's training pass, each
with its M, N, K and GFLOP/s consistent with the timed milliseconds (a tiny shape here)."""
import pytest

from bench_modules import bench_module

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bench():
    with bench_module("conv_cpu_time") as module:
        yield module


def table(capsys):
    """The Markdown table the bench printed: each row's cells after the first, stripped, by the
    first (the header row left out)."""
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in lines[1:]}


def test_products_table(bench, capsys):
    B, T, ci, co, K = 3, 12, 7, 5, 3
    runs = bench.products(2, shape=("tiny", B, T, ci, co, K))
    rows = table(capsys)
    lo = T - K + 1
    expected = {"forward": (B * lo, co, K * ci), "dw per sequence (before)": (K * ci, co, B * lo),
                "dw one product (kernel)": (K * ci, co, B * lo),
                "dx per sequence (before)": (B * T, ci, K * co),
                "dx one product (kernel)": (B * T, ci, K * co),
                "dx scatter form, product": (B * lo, K * ci, co)}
    assert set(rows) == set(expected) == set(runs)
    for name, (M, N, Kd) in expected.items():
        row = rows[name]
        assert (int(row[0]), int(row[1]), int(row[2])) == (M, N, Kd)
        assert len(runs[name][0]) == len(runs[name][1]) == 2
        ours, theirs = float(row[3]), float(row[5])
        assert ours == pytest.approx(min(runs[name][0]), abs=1e-3)
        assert theirs == pytest.approx(min(runs[name][1]), abs=1e-3)
        if min(runs[name][0]) > 0:  # GFLOP/s printed from the same minimum
            assert float(row[4]) == pytest.approx(2 * M * N * Kd / 1e6 / min(runs[name][0]),
                                                  abs=0.051)


def test_pooled_table(bench, capsys):
    """``pooled``: the dense and the one-call backward through the pool, checked to agree, each
    timed (positive CPU milliseconds, a row each)."""
    runs = bench.pooled(1)
    rows = {name: float(cells[0]) for name, cells in table(capsys).items()}
    assert set(rows) == set(runs) == {"dense", "pooled"}
    for name, ms in runs.items():
        assert ms >= 0 and rows[name] == pytest.approx(ms, abs=0.006)


def test_algorithms_table(bench, capsys):
    """``algorithms``: the direct and the Winograd forward, checked to agree, a row each with
    the minimum wall and CPU milliseconds of the rounds."""
    runs = bench.algorithms(1)
    rows = {name: [float(c) for c in cells[:2]] for name, cells in table(capsys).items()}
    assert set(rows) == set(runs) == {"direct", "winograd"}
    for name, (wall, cpu) in runs.items():
        assert wall > 0 and cpu >= 0
        assert rows[name] == [pytest.approx(wall, abs=0.0006), pytest.approx(cpu, abs=0.0006)]


def test_pooled_forward_table(bench, capsys):
    """``pooled-forward``: the two calls and the one, checked bitwise, each timed (a row each
    with the minima returned)."""
    runs = bench.pooled_forward(2)
    rows = {name: [float(v) for v in cells[:2]] for name, cells in table(capsys).items()}
    assert set(rows) == set(runs) == {"two calls", "one call"}
    for name, (wall, cpu) in runs.items():
        assert wall > 0 and cpu >= 0
        assert rows[name] == pytest.approx([wall, cpu], abs=0.0006)


def test_functional_table(bench, capsys):
    """``functional``: the IMDB model as a functional Model, its backward through the pool in
    one call and in two (checked to agree first), a row each; the model is the example's."""
    runs = bench.functional(1, samples=200)
    rows = {name: float(cells[0]) for name, cells in table(capsys).items()}
    assert set(rows) == set(runs) == {"one call (winners only)", "two calls (dense)"}
    for name, s in runs.items():
        assert s > 0 and rows[name] == pytest.approx(s, abs=0.0006)
    import imdb_sentiment
    model, seq = bench.functional_imdb(), imdb_sentiment.build_model()
    assert [type(m).__name__ for m in model.layers] == [type(m).__name__ for m in seq.layers]
    assert [p.shape for p in model.parameters()] == [p.shape for p in seq.parameters()]


def test_embedding_table(bench, capsys):
    """``embedding``: the IMDB model's Embedding -> Dropout in one pass each way and as two
    layers (the same losses checked first), a row each with its page faults per round."""
    runs = bench.embedding(2, samples=200)
    rows = table(capsys)
    assert set(rows) == set(runs) == {"one pass each way", "two layers"}
    for name, s in runs.items():
        assert s > 0 and float(rows[name][0]) == pytest.approx(s, abs=0.0006)
        assert len(rows[name][1].split()) == 2 and all(f.isdigit() for f in rows[name][1].split())
