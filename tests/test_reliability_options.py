"""A recurrent cell's nonlinearity given as anything but 'tanh' or 'relu' (None, bytes, another
name, a number) is refused by every entry point: the functional op, the nn layer, the Keras-like
layer and the PyTorch drop-in. Each message names the argument, the expected values and the repr
of the value given (the functional op once printed str(None) as 'None', in quotes)."""
import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import nn
from rnnfast.models import layers as L

BAD = [None, b"tanh", "sigmoid", "Tanh", "", 0, ("tanh",)]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_rnn_forward_names_the_nonlinearity_given(rng, bad):
    x = rng.standard_normal((3, 2, 4))
    with pytest.raises(ValueError) as info:
        F.rnn_forward(x, rng.standard_normal((5, 4)), rng.standard_normal((5, 5)), nonlinearity=bad)
    assert str(info.value) == f"nonlinearity: expected 'tanh' or 'relu', got {bad!r}"


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_nn_rnn_names_the_nonlinearity_given(bad):
    with pytest.raises(ValueError) as info:
        nn.RNN(4, 5, nonlinearity=bad)
    assert str(info.value) == f"nonlinearity: expected 'tanh' or 'relu', got {bad!r}"


@pytest.mark.parametrize("bad", [None, "sigmoid"], ids=repr)
def test_simple_rnn_names_the_activation_given(bad):
    with pytest.raises(ValueError) as info:
        L.SimpleRNN(2, activation=bad, input_dim=3)
    assert str(info.value) == f"activation: the SimpleRNN kernel computes 'tanh' or 'relu', got {bad!r}"


@pytest.mark.parametrize("bad", [None, "sigmoid"], ids=repr)
def test_torch_rnn_names_the_nonlinearity_given(bad):
    pytest.importorskip("torch")
    from rnnfast import torch as rtorch

    with pytest.raises(ValueError) as info:
        rtorch.RNN(4, 5, nonlinearity=bad)
    assert str(info.value) == f"nonlinearity: expected 'tanh' or 'relu', got {bad!r}"


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_the_two_names_still_select_their_cell(rng, name):
    x = rng.standard_normal((3, 2, 4))
    w_ih, w_hh = rng.standard_normal((5, 4)), rng.standard_normal((5, 5))
    y = F.rnn_forward(x, w_ih, w_hh, nonlinearity=name)[0]
    pre = x[0] @ w_ih.T
    np.testing.assert_allclose(y[0], np.tanh(pre) if name == "tanh" else np.maximum(pre, 0),
                               rtol=1e-12, atol=1e-12)
