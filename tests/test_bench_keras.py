"""bench/epochs_vs_keras.py builds Keras twins that compute the examples' models (the same
outputs from the same weights, which it checks before timing), compiled with the same
optimiser settings, and its table is consistent."""
import numpy as np
import pytest

from bench_modules import bench_module
from keras_oracle import KERAS_WARNINGS, keras

pytestmark = KERAS_WARNINGS


@pytest.fixture(scope="module")
def bench():
    with bench_module("epochs_vs_keras") as module:
        yield module


@pytest.mark.parametrize("name", ["reuters_topics", "imdb_sentiment"])
def test_keras_twin_computes_the_example_model(bench, name):
    case = {"reuters_topics": bench.Reuters, "imdb_sentiment": bench.IMDB}[name](
        __import__(name), True, 0)
    kmodel = bench.keras_twin(case)  # raises if the outputs differ by more than 1e-4
    assert len(kmodel.layers) == len(case.model.layers)
    x = case.x[16:40]
    np.testing.assert_allclose(case.model.predict(x), keras.ops.convert_to_numpy(kmodel(x)),
                               atol=1e-5)
    opt = kmodel.optimizer
    assert float(opt.learning_rate) == pytest.approx(1e-3) and opt.epsilon == 1e-7
    assert opt.clipnorm == (1.0 if name == "reuters_topics" else None)


def test_table(bench):
    row = {"example": "imdb_sentiment", "samples": 10, "sample_shape": (100,), "batch": 5,
           "rnnfast_s": 0.5, "keras_s": 3.0, "rnnfast_loss": 0.7, "keras_loss": 0.69}
    line = bench.table([row]).splitlines()[-1]
    assert line == "| imdb_sentiment | 10 x (100) | 5 | 0.5 | 3 | 6.00 | 0.7000 | 0.6900 |"


def test_keras_layer_table(bench):
    rows = bench.keras_layer_table("imdb_sentiment", 2, quick=True)
    assert [r[0] for r in rows] == ["Embedding", "Dropout", "Conv1D", "MaxPooling1D", "LSTM",
                                    "Dense", "Activation"]
    assert all(f >= 0 and b >= 0 for _, f, b in rows)
    lines = bench.layer_lines(rows).splitlines()
    assert len(lines) == 2 + len(rows) + 1
    total = lines[-1].split("|")
    assert total[1].strip() == "sum"
    assert float(total[2]) == pytest.approx(sum(r[1] for r in rows), abs=2e-3)
    assert float(total[3]) == pytest.approx(sum(r[2] for r in rows), abs=2e-3)
