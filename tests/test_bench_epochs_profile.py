"""bench/epochs_profile.py's per-layer table (--layers): a row per layer's forward and backward,
the optimiser and the rest, from one timed epoch; the layers' methods are restored afterwards."""
import pytest

from bench_modules import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("epochs_profile") as module:
        yield module


def test_layer_table_times_every_layer(bench):
    epoch, what, model = bench.make_epoch("imdb_sentiment", quick=True)
    assert what == "160 x (100,), batch 100"  # the training part of 200 samples
    table = bench.layer_table(epoch, model).splitlines()
    assert table[0] == "2 batches, one epoch, every part timed"
    names = [row.split(" | ")[0].lstrip("| ") for row in table[3:]]
    want = [f"{i} {type(layer).__name__}.{m}" for i, layer in enumerate(model.layers)
            for m in bench.LAYER_METHODS if hasattr(layer, m)]
    assert names == want + ["optimizer step", "rest (loss, metrics, fit)", "epoch"]
    cpu_of = {row.split(" | ")[0].lstrip("| "): float(row.split(" | ")[2]) for row in table[3:]}
    # the Embedding runs the Dropout after it, the Conv1D the MaxPooling1D after it, in one call
    for fused in ("0 Embedding.forward_dropped", "0 Embedding.backward_dropped",
                  "2 Conv1D.forward_pooled", "2 Conv1D.backward_through_pool"):
        assert cpu_of[fused] > 0, fused
    for alone in ("0 Embedding.backward", "1 Dropout.backward", "2 Conv1D.backward",
                  "3 MaxPooling1D.backward"):  # (the first fit's build runs the plain forwards)
        assert cpu_of[alone] == 0, alone
    for row in table[3:]:
        wall, cpu = (float(v) for v in row.split(" | ")[1:3])
        assert wall >= 0 and cpu >= 0 or row.startswith("| rest")
    # the wrappers are gone: the layers' own methods again, and the model still trains
    for layer in model.layers:
        assert not set(bench.LAYER_METHODS) & set(vars(layer))
    assert "step" not in vars(model.optimizer)
    epoch()


def test_conv_pool_ab_alternates_and_restores(bench):
    epoch, _, model = bench.make_epoch("imdb_sentiment", quick=True)
    rows = bench.conv_pool_ab(epoch, model, 1).splitlines()[2:]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == ["fused (winners only)",
                                                              "separate (dense)"]
    for row in rows:
        assert all(float(v) > 0 for v in row.rstrip(" |").split(" | ")[1:3])
    assert model._fuse_conv_pool is True


def test_conv_pool_forward_ab_alternates_and_restores(bench, monkeypatch):
    epoch, _, model = bench.make_epoch("imdb_sentiment", quick=True)
    flags = []
    real = type(model)._forward_pooled
    monkeypatch.setattr(type(model), "_forward_pooled", lambda self, *a: (
        flags.append(self._fuse_conv_pool_forward) or real(self, *a)))
    rows = bench.conv_pool_ab(epoch, model, 1, forward=True).splitlines()[2:]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [
        "fused forward (conv1d_max_pool1d_forward)", "separate forward (two calls)"]
    for row in rows:
        assert all(float(v) > 0 for v in row.rstrip(" |").split(" | ")[1:3])
    assert flags and set(flags) == {True}  # only the fused epoch takes the one call
    assert model._fuse_conv_pool_forward is True


def test_translate_has_no_model(bench):
    _, what, model = bench.make_epoch("translate", quick=True)
    assert model is None and what == "135 pairs, batch 64"  # the training part of 150
