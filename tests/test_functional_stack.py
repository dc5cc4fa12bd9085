"""rnnfast.functional.stack: the one recurrent stack (names, shapes, layers x directions,
dropout masks, backward) against a hand-written composition of the single-layer kernels, torch.nn's
parameter names, and central finite differences."""
import pickle
import warnings

import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast.functional.stack import CELLS, RecurrentStack, cell_options, param_name

T, B, I, H = 4, 3, 5, 6
OPTIONS = {"rnn": {"nonlinearity": "relu"}, "lstm": {}, "gru": {"reset_after": False},
           "layer_norm_lstm": {"eps": 1e-3}, "layer_norm_gru": {}}
TORCH_CELLS = ["rnn", "lstm", "gru"]  # the cells torch.nn has


def make(cell, rng, num_layers=2, bidirectional=True, bias=True, dtype=np.float64, **kw):
    stack = RecurrentStack(cell, I, H, num_layers, bias=bias, bidirectional=bidirectional,
                           **OPTIONS[cell], **kw)
    weights = {n: (rng.standard_normal(s) * 0.4).astype(dtype) for n, s in stack.shapes.items()}
    return stack, weights


def by_hand(stack, weights, x, h0, c0, lengths, masks):
    """The stack written out with rnnfast.functional's single-layer calls."""
    D, out, hs, cs = stack.num_directions, x, [], []
    kernel = getattr(F, stack.cell.name + "_forward")
    for layer in range(stack.num_layers):
        if layer and masks is not None:
            out = out * masks[layer - 1]
        ys = []
        for d in range(D):
            k = layer * D + d
            w = [weights.get(param_name(p, layer, d)) for p in ("weight_ih", "weight_hh",
                                                                  "bias_ih", "bias_hh")]
            extra = {p.key: weights[param_name(p.prefix, layer, d)]  # peepholes, w_hr, LN gains
                     for p in stack.params
                     if p.prefix not in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            state = (h0[k], c0[k]) if stack.has_cell_state else (h0[k],)
            res = kernel(out, *w, *state, lengths=lengths, reverse=d == 1, **extra,
                         **stack.kernel_options)
            ys.append(res[0])
            hs.append(res[1])
            if stack.has_cell_state:
                cs.append(res[2])
        out = np.concatenate(ys, axis=-1)
    return out, np.stack(hs), (np.stack(cs) if cs else None)


@pytest.mark.parametrize("cell", TORCH_CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_names_and_shapes_are_torch_nn_s(cell, bias):
    torch = pytest.importorskip("torch")
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    theirs = module(I, H, num_layers=3, bias=bias, bidirectional=True)
    stack = RecurrentStack(cell, I, H, 3, bias=bias, bidirectional=True)
    assert {n: tuple(p.shape) for n, p in theirs.named_parameters()} == stack.shapes
    assert list(stack.shapes) == [n for n, _ in theirs.named_parameters()]
    assert [n for names in stack.names for n in names] == list(stack.shapes)
    assert stack.state_shape(B) == (6, B, H) and stack.output_size == 2 * H


# The cells, and the LSTM's variants: cell options
VARIANTS = {**{cell: (cell, {}) for cell in CELLS}, "lstm_peephole": ("lstm", {"peephole": True}),
            "lstm_proj": ("lstm", {"proj_size": 2}),
            "lstm_proj_peephole": ("lstm", {"proj_size": 3, "peephole": True})}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_and_backward_match_the_single_layer_calls(rng, variant):
    cell, kw = VARIANTS[variant]
    stack, weights = make(cell, rng, dropout=0.3, **kw)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal(stack.state_shape(B))
    c0 = rng.standard_normal(stack.cell_state_shape(B)) if stack.has_cell_state else None
    lengths = np.array([4, 1, 3])
    masks = stack.dropout_masks((T, B, stack.output_size), np.float64, np.random.default_rng(3))
    y, h_n, c_n, ctx = stack.forward(weights, x, h0, c0, lengths=lengths, training=True,
                                     masks=masks)
    want = by_hand(stack, weights, x, h0, c0, lengths, masks)
    np.testing.assert_allclose(y, want[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, want[1], rtol=0, atol=1e-12)
    if stack.has_cell_state:
        np.testing.assert_allclose(c_n, want[2], rtol=0, atol=1e-12)
    else:
        assert c_n is None
    # The gradients of sum(y * dy) + sum(h_n * dh) against central finite differences.
    dy, dh = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
    dx, dh0, dc0, grads = stack.backward(ctx, dy, dh)

    def loss(**change):
        args = {"weights": weights, "x": x, "h0": h0, "c0": c0, **change}
        out = by_hand(stack, args["weights"], args["x"], args["h0"], args["c0"], lengths, masks)
        return (out[0] * dy).sum() + (out[1] * dh).sum()

    def numeric(value, **place):
        (name, arr), = place.items()
        idx = tuple(rng.integers(0, n) for n in arr.shape)
        plus, minus = arr.copy(), arr.copy()
        plus[idx] += 1e-6
        minus[idx] -= 1e-6
        if name in weights:
            return idx, (loss(weights=dict(weights, **{name: plus}))
                         - loss(weights=dict(weights, **{name: minus}))) / 2e-6
        return idx, (loss(**{name: plus}) - loss(**{name: minus})) / 2e-6

    checks = [("x", x, dx), ("h0", h0, dh0)] + [(n, weights[n], grads[n]) for n in weights]
    if stack.has_cell_state:
        checks.append(("c0", c0, dc0))
    for name, value, grad in checks:
        assert grad.shape == value.shape, name
        for _ in range(3):
            idx, want_g = numeric(value, **{name: value})
            assert abs(grad[idx] - want_g) < 1e-6 * max(1.0, abs(want_g)), (name, idx)


def test_no_state_gives_no_state_gradient_and_one_layer_states_are_views(rng):
    stack, weights = make("lstm", rng, num_layers=1, bidirectional=False, bias=False)
    x = rng.standard_normal((T, B, I))
    y, h_n, c_n, ctx = stack.forward(weights, x, training=True)
    assert h_n.shape == c_n.shape == (1, B, H) and h_n.base is not None
    dx, dh0, dc0, grads = stack.backward(ctx, np.ones_like(y))
    assert dh0 is None and dc0 is None and dx.shape == x.shape
    assert sorted(grads) == ["weight_hh_l0", "weight_ih_l0"]
    assert stack.forward(weights, x)[3] is None  # inference keeps nothing


def test_reverse_runs_every_layer_backwards(rng):
    stack, weights = make("gru", rng, num_layers=2, bidirectional=False, reverse=True)
    x = rng.standard_normal((T, B, I))
    y, h_n, _, _ = stack.forward(weights, x, batch_first=False)
    want, layer_in = [], x
    for layer in range(2):
        w = [weights[param_name(p, layer)] for p in ("weight_ih", "weight_hh", "bias_ih",
                                                     "bias_hh")]
        layer_in, h, _ = F.gru_forward(layer_in, *w, reverse=True, reset_after=False)
        want.append(h)
    np.testing.assert_array_equal(y, layer_in)
    np.testing.assert_array_equal(h_n, np.stack(want))


def test_dropout_masks():
    stack = RecurrentStack("rnn", I, H, 3, dropout=0.25)
    masks = stack.dropout_masks((T, B, H), np.float32, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for mask in masks:
        want = (rng.random((T, B, H)) >= 0.25).astype(np.float32) / np.float32(0.75)
        np.testing.assert_array_equal(mask, want)
    assert len(masks) == 2 and masks[0].dtype == np.float32
    gen = np.random.default_rng(1)
    zeros = RecurrentStack("rnn", I, H, 2, dropout=1.0).dropout_masks((T, B, H), np.float64, gen)
    assert not zeros[0].any()
    assert gen.random() == np.random.default_rng(1).random()  # p = 1 draws nothing
    assert RecurrentStack("rnn", I, H, 2).dropout_masks((T, B, H), np.float64, gen) is None


def test_bad_arguments_raise_clearly(rng):
    with pytest.raises(ValueError, match="cell: expected one of"):
        RecurrentStack("elman", I, H)
    with pytest.raises(TypeError, match="reset_after: not an option of the lstm cell"):
        RecurrentStack("lstm", I, H, reset_after=False)
    with pytest.raises(ValueError, match="nonlinearity: expected 'tanh' or 'relu'"):
        cell_options("rnn", nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size: expected an int >= 1, got 0"):
        RecurrentStack("gru", I, 0)
    with pytest.raises(TypeError, match="num_layers: expected an int"):
        RecurrentStack("gru", I, H, 2.0)
    with pytest.raises(ValueError, match="reverse: only for one direction"):
        RecurrentStack("gru", I, H, bidirectional=True, reverse=True)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        RecurrentStack("rnn", I, H, 1, dropout=0.5)
    stack, weights = make("rnn", rng, num_layers=2, bidirectional=False)
    x = rng.standard_normal((T, B, I))
    with pytest.raises(ValueError, match="masks: expected 1 masks"):
        stack.forward(weights, x, masks=[None, None])
    with pytest.raises(ValueError, match=r"masks\[0\]: expected the output's shape"):
        stack.forward(weights, x, masks=[np.ones((T, B, 2 * H))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RecurrentStack("rnn", I, H, 2, dropout=0.5)


def test_a_stack_pickles(rng):
    stack, weights = make("gru", rng)
    twin = pickle.loads(pickle.dumps(stack))
    x = rng.standard_normal((T, B, I))
    assert twin.names == stack.names and twin.options == stack.options
    np.testing.assert_array_equal(twin.forward(weights, x)[0], stack.forward(weights, x)[0])


@pytest.mark.parametrize("bias", [True, False])
def test_peephole_parameters_follow_the_plain_ones(bias):
    stack = RecurrentStack("lstm", I, H, 2, bias=bias, bidirectional=True, peephole=True)
    plain = RecurrentStack("lstm", I, H, 2, bias=bias, bidirectional=True)
    for names, plain_names in zip(stack.names, plain.names):
        assert names[:-1] == plain_names and names[-1].startswith("weight_peephole_l")
        assert stack.shapes[names[-1]] == (3, H)
    assert stack.kernel_options == {"zoneout": 0.0, "recurrent_dropout": 0.0}
    assert stack.options == {"proj_size": 0, "peephole": True, "zoneout": 0.0,
                             "recurrent_dropout": 0.0}


def test_projection_parameters_and_sizes_are_torch_nn_s():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LSTM(I, H, num_layers=3, bidirectional=True, proj_size=2)
    stack = RecurrentStack("lstm", I, H, 3, bidirectional=True, proj_size=2)
    assert {n: tuple(p.shape) for n, p in theirs.named_parameters()} == stack.shapes
    assert list(stack.shapes) == [n for n, _ in theirs.named_parameters()]
    assert stack.state_shape(B) == (6, B, 2) and stack.cell_state_shape(B) == (6, B, H)
    assert stack.output_size == 4


@pytest.mark.parametrize("cell", ["lstm", "gru", "layer_norm_lstm"])
def test_kernel_arguments_follow_a_precision_changed_after_a_forward(cell, monkeypatch):
    """The kernel calls' arguments are worked out once per precision: a precision set after a
    forward reaches the next kernel call, and one the cell does not have still raises."""
    rng = np.random.default_rng(0)
    stack, weights = make(cell, rng, num_layers=2, bidirectional=True, dtype=np.float32)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    seen, original = [], getattr(F, stack.cell.name + "_forward")

    def spy(*args, **kwargs):
        seen.append(kwargs.get("precision"))
        return original(*args, **kwargs)

    monkeypatch.setattr(F, stack.cell.name + "_forward", spy)
    first = stack.forward(weights, x)[0]
    if cell == "layer_norm_lstm":  # float32 only: no precision keyword, bfloat16 refused
        assert seen == [None] * 4
        stack.precision = "bfloat16"
        with pytest.raises(ValueError, match="computes in float32 only"):
            stack.forward(weights, x)
        return
    stack.precision = "bfloat16"
    second = stack.forward(weights, x)[0]
    stack.precision = "float32"
    third = stack.forward(weights, x)[0]
    assert seen == ["float32"] * 4 + ["bfloat16"] * 4 + ["float32"] * 4
    assert np.array_equal(first, third) and not np.array_equal(first, second)
