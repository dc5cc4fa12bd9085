"""precision="bfloat16" through the layers: RecurrentStack, rnnfast.nn (RNN/LSTM/GRU/Conv1d,
``Module.set_precision``), the Keras-style layers' dtype policies (``dtype="mixed_bfloat16"``,
``rnnfast.models.mixed_precision.set_global_policy``), and a seed model trained in bfloat16.

The yardstick of the numerics is PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)``
with the same weights and inputs: against float64, the RMS error of every output and gradient
of ours is at most twice torch's (as in test_bf16_ops.py).
"""
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnfast.functional as F
from rnnfast import nn
from rnnfast.functional.stack import RecurrentStack
from rnnfast.models import Sequential, load_model, mixed_precision, optimizers
from rnnfast.models.layers import GRU, LSTM, Bidirectional, Conv1D, Dense, Embedding, SimpleRNN

try:
    import torch
except ImportError:
    torch = None


def rms_err(got, want):
    d = np.asarray(got, np.float64) - np.asarray(want, np.float64)
    return float(np.sqrt(np.mean(d * d)))


@pytest.fixture(autouse=True)
def reset_policy():
    yield
    mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------------ RecurrentStack


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stack_bf16_is_the_functional_bf16_layer_by_layer(cell):
    rng = np.random.default_rng(0)
    stack = RecurrentStack(cell, 5, 7, num_layers=2, precision="bfloat16")
    weights = {n: rng.uniform(-0.4, 0.4, s).astype(np.float32) for n, s in stack.shapes.items()}
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    y, h_n, c_n, ctx = stack.forward(weights, x, training=True)
    f = getattr(F, cell + "_forward")
    layer_input, states = x, []
    for k, names in enumerate(stack.names):
        out = f(layer_input, *(weights[n] for n in names), precision="bfloat16")
        layer_input = out[0]
        states.append(out[1])
    np.testing.assert_array_equal(y, layer_input)
    np.testing.assert_array_equal(h_n, np.stack(states))
    # and it is not the float32 result
    stack32 = RecurrentStack(cell, 5, 7, num_layers=2)
    assert not np.array_equal(stack32.forward(weights, x)[0], y)
    # the backward follows the forward's precision, and the attribute can change
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, _, _, grads = stack.backward(ctx, dy)
    stack.precision = "float32"
    y32, _, _, ctx32 = stack.forward(weights, x, training=True)
    np.testing.assert_array_equal(y32, stack32.forward(weights, x)[0])
    assert not np.array_equal(stack.backward(ctx32, dy)[0], dx)


def test_stack_precision_is_checked():
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16', got 'f"):
        RecurrentStack("lstm", 3, 4, precision="float16")
    with pytest.raises(TypeError, match="precision: expected 'float32' or 'bfloat16', got int"):
        RecurrentStack("lstm", 3, 4, precision=16)
    stack = RecurrentStack("lstm", 3, 4, precision="bfloat16")
    weights = {n: np.zeros(s) for n, s in stack.shapes.items()}  # float64: bf16 refuses
    with pytest.raises(TypeError, match="precision 'bfloat16': expected float32 arrays"):
        stack.forward(weights, np.zeros((2, 1, 3)))


# ------------------------------------------------------------------ rnnfast.nn


def torch_modules(cell, ours):
    """(float32 torch module for autocast, float64 torch module as reference) with ours'
    weights."""
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    kw = dict(num_layers=ours.num_layers, bidirectional=ours.bidirectional)
    state = {k: torch.from_numpy(v.copy()) for k, v in ours.weight_arrays().items()}
    m32, m64 = cls(ours.input_size, ours.hidden_size, **kw), \
        cls(ours.input_size, ours.hidden_size, **kw, dtype=torch.float64)
    m32.load_state_dict(state)
    m64.load_state_dict({k: v.double() for k, v in state.items()})
    return m32, m64


def torch_run(module, x, dy, autocast):
    xt = torch.from_numpy(x).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = module(xt)[0]
    (y.to(xt.dtype) * torch.from_numpy(dy).to(xt.dtype)).sum().backward()
    grads = {n: p.grad.numpy() for n, p in module.named_parameters()}
    return y.detach().to(xt.dtype).numpy(), xt.grad.numpy(), grads


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seed", [0, 1])
def test_nn_layers_bf16_error_at_most_twice_torch_autocast(cell, seed):
    if torch is None:
        pytest.skip("torch is not installed: no autocast yardstick")
    rng = np.random.default_rng(seed)
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    ours = cls(24, 40, num_layers=2, bidirectional=True, precision="bfloat16", seed=seed)
    assert ours.precision == "bfloat16" and "precision='bfloat16'" in repr(ours)
    m32, m64 = torch_modules(cell, ours)
    x = rng.standard_normal((9, 8, 24)).astype(np.float32)
    dy = rng.standard_normal((9, 8, 80)).astype(np.float32)
    y, _ = ours(x)
    dx, _ = ours.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    ref_y, ref_dx, ref_g = torch_run(m64, x.astype(np.float64), dy.astype(np.float64), False)
    t_y, t_dx, t_g = torch_run(m32, x, dy, True)
    assert rms_err(y, ref_y) <= 2 * rms_err(t_y, ref_y)
    assert rms_err(dx, ref_dx) <= 2 * rms_err(t_dx, ref_dx)
    for name, p in ours.named_parameters():
        assert p.grad.dtype == np.float32
        assert rms_err(p.grad, ref_g[name]) <= 2 * rms_err(t_g[name], ref_g[name]), name
    # float32 precision is far more accurate: bf16 really ran
    ours.precision = "float32"
    assert rms_err(ours(x)[0], ref_y) < rms_err(y, ref_y) / 10


def test_nn_precision_needs_float32_and_is_checked():
    with pytest.raises(ValueError, match="precision: 'bfloat16' needs a float32 layer, got "
                                         "dtype=float64"):
        nn.LSTM(3, 4, dtype=np.float64, precision="bfloat16")
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16'"):
        nn.GRU(3, 4, precision="half")
    with pytest.raises(ValueError, match="needs a float32 layer"):
        nn.Conv1d(3, 4, 2, dtype=np.float64, precision="bfloat16")
    layer = nn.RNN(3, 4)
    with pytest.raises(ValueError, match="precision: expected"):
        layer.precision = "float16"
    assert layer.precision == "float32" and "precision" not in repr(layer)


def test_conv1d_bf16_is_the_functional_bf16_conv():
    rng = np.random.default_rng(3)
    conv = nn.Conv1d(5, 6, 3, padding="same", precision="bfloat16", seed=1)
    x = rng.standard_normal((2, 5, 11)).astype(np.float32)
    y = conv(x)
    want, _ = F.conv1d_forward(x, conv.weight.data, conv.bias.data, padding="same",
                               channels_last=False, precision="bfloat16")
    np.testing.assert_array_equal(y, want)
    assert not np.array_equal(y, nn.Conv1d(5, 6, 3, padding="same", seed=1)(x))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(dy)
    _, ctx = F.conv1d_forward(x, conv.weight.data, conv.bias.data, padding="same",
                              channels_last=False, training=True, precision="bfloat16")
    np.testing.assert_array_equal(dx, F.conv1d_backward(ctx, dy)["x"])
    assert conv.get_config()["precision"] == "bfloat16"
    assert nn.Conv1d.from_config(conv.get_config()).precision == "bfloat16"


class Pair(nn.Module):
    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second


def test_set_precision_sets_every_layer_of_a_model():
    model = Pair(nn.Conv1d(3, 4, 2, channels_last=True), nn.LSTM(4, 5, batch_first=True))
    assert model.set_precision("bfloat16") is model
    assert model.first.precision == model.second.precision == "bfloat16"
    model.set_precision("float32")
    assert model.first.precision == model.second.precision == "float32"
    mixed = Pair(nn.LSTM(4, 5), nn.GRU(5, 5, dtype=np.float64))
    with pytest.raises(ValueError, match="needs a float32 layer"):
        mixed.set_precision("bfloat16")
    assert mixed.first.precision == "float32"  # nothing was changed


# ------------------------------------------------------------------ Keras-style layers


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_keras_layer_mixed_bfloat16_dtype(cls):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    mixed = cls(8, dtype="mixed_bfloat16", return_sequences=True, seed=2)
    plain = cls(8, return_sequences=True, seed=2)
    y, y32 = mixed(x), plain(x)
    assert mixed.dtype == np.float32 and mixed.precision == "bfloat16"
    assert mixed.rnn.precision == "bfloat16" and plain.rnn.precision == "float32"
    assert y.dtype == np.float32 and not np.array_equal(y, y32)
    np.testing.assert_allclose(y, y32, atol=0.05)
    assert mixed.get_weights()[0].dtype == np.float32
    assert mixed.get_config()["dtype"] == "mixed_bfloat16"
    assert plain.get_config()["dtype"] == "float32"
    again = cls.from_config(mixed.get_config())
    assert again.precision == "bfloat16"
    assert cls(8, dtype=mixed_precision.DTypePolicy("mixed_bfloat16")).precision == "bfloat16"


def test_global_policy_applies_to_layers_made_afterwards():
    before = LSTM(4)
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    policy = mixed_precision.global_policy()
    assert (policy.name, policy.variable_dtype, policy.compute_dtype) == \
        ("mixed_bfloat16", "float32", "bfloat16")
    after, conv, own = LSTM(4), Conv1D(3, 2), LSTM(4, dtype="float32")
    bidi = Bidirectional(GRU(3), input_shape=(5, 2))
    assert before.precision == "float32" and own.precision == "float32"
    assert after.precision == conv.precision == "bfloat16"
    assert bidi.layer.rnn.precision == "bfloat16" and bidi.layer.rnn.bidirectional
    mixed_precision.set_global_policy(None)
    assert mixed_precision.global_policy() == mixed_precision.Policy("float32")


def test_policies_are_checked():
    with pytest.raises(ValueError, match="policy: expected one of .*'mixed_float16'.*no float16"):
        mixed_precision.set_global_policy("mixed_float16")
    with pytest.raises(TypeError, match="policy: expected one of"):
        mixed_precision.set_global_policy(16)
    with pytest.raises(TypeError, match="dtype: expected float32, float64 or a policy name"):
        LSTM(4, dtype="bfloat16")
    assert mixed_precision.global_policy().name == "float32"
    assert LSTM(4, dtype=np.float64).get_config()["dtype"] == "float64"


def test_keras_conv1d_mixed_bfloat16():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    conv = Conv1D(4, 3, dtype="mixed_bfloat16", seed=1)
    y = conv(x)
    want, _ = F.conv1d_forward(x, conv.weight.data, conv.bias.data, channels_last=True,
                               precision="bfloat16")
    np.testing.assert_array_equal(y, want)
    assert conv.get_config()["dtype"] == "mixed_bfloat16"
    assert Conv1D.from_config(conv.get_config()).precision == "bfloat16"


def test_sequential_saves_and_loads_its_policy(tmp_path):
    rng = np.random.default_rng(5)
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = Sequential([Conv1D(4, 3, input_shape=(10, 3)), LSTM(6), Dense(2)], seed=0)
    mixed_precision.set_global_policy("float32")
    x = rng.standard_normal((4, 10, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.layers[0].precision == loaded.layers[1].precision == "bfloat16"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    model.set_precision("float32")
    assert not np.array_equal(model.predict(x, verbose=0), want)


# ------------------------------------------------------------------ a seed model


def reuters_accuracy(policy, seed, data):
    """Test accuracy of the Reuters model (small) trained under a dtype policy."""
    (x_train, y_train), (x_test, y_test), categories = data
    mixed_precision.set_global_policy(policy)
    model = Sequential([Embedding(1000, 32, seed=seed), LSTM(32, seed=seed + 1),
                        Dense(categories, activation="softmax", seed=seed + 2)], seed=seed)
    mixed_precision.set_global_policy("float32")
    assert model.layers[1].rnn.precision == ("bfloat16" if policy == "mixed_bfloat16"
                                             else "float32")
    model.compile(loss="categorical_crossentropy", optimizer=optimizers.Adam(learning_rate=0.01),
                  metrics=["accuracy"], clipnorm=1.0)
    model.fit(x_train, y_train, epochs=5, batch_size=50, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def test_seed_model_trained_in_bfloat16_reaches_float32_accuracy():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import reuters_topics
    finally:
        sys.path.pop(0)
    (x_train, y_train), (x_test, y_test), categories, _ = reuters_topics.load_data(
        samples=1500, seed=0)
    data = ((x_train, y_train), (x_test, y_test), categories)
    # One seed's accuracy moves by up to ~0.1 with the last bits of any kernel (a change of
    # summation order gives another training trajectory): compare the means of 8 seeds each,
    # within 0.04 or three standard errors of their difference, whichever is larger.
    f32 = [reuters_accuracy("float32", seed, data) for seed in range(8)]
    bf16 = [reuters_accuracy("mixed_bfloat16", seed, data) for seed in range(8)]
    # chance is 1/46; 300 test articles: one seed's accuracy has a sampling noise of ~0.015
    assert np.mean(f32) > 0.75 and np.mean(bf16) > 0.75, (f32, bf16)
    se = np.sqrt(np.var(f32, ddof=1) / len(f32) + np.var(bf16, ddof=1) / len(bf16))
    assert abs(np.mean(bf16) - np.mean(f32)) <= max(0.04, 3 * se), (f32, bf16)
