"""Keras 3 itself (on its torch backend) as the oracle of rnnfast.models: the test modules that
import this one are skipped where keras (the [test] extra) or torch is not installed."""
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported, in this process only
pytest.importorskip("torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # keras was imported earlier with another backend
    pytest.skip("keras runs on another backend than torch in this process",
                allow_module_level=True)

RTOL = 1e-5  # float32, relative
# Keras' variables warn under NumPy 2 when converted with np.array (their __array__ takes no
# copy keyword): the test modules ignore that warning of Keras' own code.
KERAS_WARNINGS = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def randomise(model, rng, scale=0.3):
    """Give every weight of a Keras model (biases included: Keras starts them at zero, which
    would hide a wrong bias mapping) random values; returns ``get_weights()``."""
    weights = [(rng.standard_normal(w.shape) * scale).astype(np.float32)
               for w in model.get_weights()]
    model.set_weights(weights)
    return model.get_weights()


def scaled_error(got, want):
    """``max |got - want| / max |want|``: the error relative to the array's scale (an
    element-wise relative error would blow up on the elements that happen to be near zero)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.abs(want).max() if want.size else 0.0
    return float(np.abs(got - want).max() / scale) if scale else float(np.abs(got).max(initial=0))


def assert_close(got, want, rtol=RTOL, what=""):
    err = scaled_error(got, want)
    assert err <= rtol, f"{what}: max |difference| / max |Keras| = {err:.2e} > {rtol:.0e}"
