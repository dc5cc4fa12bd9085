"""recurrent_dropout of the Keras-style SimpleRNN/LSTM/GRU against Keras 3 itself (torch
backend): same weights and the same masks (rnnfast's, given to Keras' cell in place of the ones
it would draw) give the same outputs and gradients (float32 within 1e-5 of the scale); at
inference nothing is dropped; Keras' own masks have the shapes, count and values rnnfast draws
(one (batch, units) mask per gate, 0 or 1 / (1 - rate), fixed over the steps of a call);
configs round-trip through save and load."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras
import rnnfast.functional.recurrent as FR
from rnnfast.models import Sequential, load_model, set_keras_weights
from rnnfast.models import layers as L

torch = pytest.importorskip("torch")
pytestmark = KERAS_WARNINGS
KINDS = [("SimpleRNN", {}), ("SimpleRNN", {"activation": "relu"}), ("LSTM", {}), ("GRU", {}),
         ("GRU", {"reset_after": False})]
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
RATE = 0.3


def _pair(kind, options, shape, rng, units=5, **kw):
    """A built Keras layer with random weights (biases too) and the same rnnfast layer."""
    k = getattr(keras.layers, kind)(units, recurrent_dropout=RATE, **options, **kw)
    k.build((None,) + shape)
    weights = [(rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in k.get_weights()]
    k.set_weights(weights)
    r = getattr(L, kind)(units, recurrent_dropout=RATE, seed=4, **options, **kw)
    set_keras_weights(r, k.get_weights())
    return k, r


def _spy(monkeypatch):
    """Record the masks rnnfast's functional layer draws."""
    drawn = []
    real = FR.recurrent_masks

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        drawn.append(out)
        return out

    monkeypatch.setattr(FR, "recurrent_masks", spy)
    return drawn


def _inject(cell, kind, m):
    """Make Keras' cell use rnnfast's masks m (G, B, units) (in rnnfast's gate order; Keras'
    GRU draws its masks in the order z, r, h, rnnfast's gates are r, z, n)."""
    t = [torch.tensor(np.asarray(a, np.float32)) for a in m]
    if kind == "SimpleRNN":
        masks = t[0]
    elif kind == "GRU":
        masks = [t[1], t[0], t[2]]
    else:
        masks = t
    cell.get_recurrent_dropout_mask = lambda step_input: masks


def _keras_grads(r):
    """rnnfast's parameter gradients in Keras' layout and order (the map from Keras' weights to
    rnnfast's parameters is a permutation, so its transpose is get_weights' map)."""
    params = list(r.rnn.named_parameters())
    saved = [p.data.copy() for _, p in params]
    for _, p in params:
        p.data[...] = p.grad
    out = r.get_weights()
    for (_, p), data in zip(params, saved):
        p.data[...] = data
    return out


@pytest.mark.parametrize("kind,options", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_training_forward_and_gradients_equal_keras_with_the_same_masks(
        rng, monkeypatch, kind, options, return_sequences):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    k, r = _pair(kind, options, (6, 3), rng, return_sequences=return_sequences)
    drawn = _spy(monkeypatch)
    r.train()
    y = r(x)
    assert len(drawn) == 1 and set(drawn[0]) == {"recurrent"}
    m = drawn[0]["recurrent"]
    assert m.shape == (GATES[kind], 4, 5)
    _inject(k.cell, kind, m)
    xt = torch.tensor(x, requires_grad=True)
    yt = k(xt, training=True)
    assert_close(y, yt.detach().numpy(), what=f"{kind} y")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (yt * torch.tensor(dy)).sum().backward()
    r.zero_grad()
    dx = r.backward(dy)
    assert_close(dx, xt.grad.numpy(), what=f"{kind} dx")
    for name, ours, theirs in zip(("kernel", "recurrent_kernel", "bias"), _keras_grads(r),
                                  [v.value.grad.numpy() for v in k.trainable_weights]):
        assert_close(ours, theirs, what=f"{kind} d{name}")
    # the masks matter: without them Keras gives another output
    k.cell.get_recurrent_dropout_mask = lambda step_input: None
    assert not np.allclose(y, k(x, training=False).detach().numpy(), atol=1e-4)


@pytest.mark.parametrize("kind,options", KINDS)
def test_inference_drops_nothing(rng, kind, options):
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    k, r = _pair(kind, options, (5, 4), rng, return_sequences=True)
    r.eval()
    assert_close(r(x), k(x, training=False).detach().numpy(), what=kind)
    plain = getattr(L, kind)(5, return_sequences=True, **options)
    set_keras_weights(plain, k.get_weights())
    np.testing.assert_array_equal(r(x), plain(x))


@pytest.mark.parametrize("kind,options", KINDS)
def test_keras_draws_one_fixed_mask_per_gate_of_our_shape_and_values(kind, options):
    """What the semantics rest on, read from Keras itself: the cell's recurrent masks are
    ``dropout(ones_like(h))`` (values 0 or 1 / (1 - rate)), ``dropout_mask_count`` of them (one
    per gate, none for SimpleRNN), each (batch, units), cached over the steps of a call."""
    k = getattr(keras.layers, kind)(64, recurrent_dropout=0.5, seed=1, **options)
    k.build((None, 3, 2))
    cell = k.cell
    if kind != "SimpleRNN":
        assert cell.implementation == 1  # Keras switches to per-gate products
    h = torch.zeros((128, 64))
    first = cell.get_recurrent_dropout_mask(h)
    assert cell.get_recurrent_dropout_mask(h) is first  # the same for every step
    masks = [first] if kind == "SimpleRNN" else list(first)
    assert len(masks) == GATES[kind]
    for a in masks:
        a = a.detach().numpy()
        assert a.shape == (128, 64)
        assert set(np.unique(a)) == {0.0, np.float32(2.0)}
    assert not np.array_equal(masks[0].numpy(), masks[-1].numpy()) or kind == "SimpleRNN"
    cell.reset_recurrent_dropout_mask()
    assert not np.array_equal(cell.get_recurrent_dropout_mask(h)[0].numpy()
                              if kind != "SimpleRNN" else
                              cell.get_recurrent_dropout_mask(h).numpy(), masks[0].numpy())


@pytest.mark.parametrize("kind,options", KINDS[::2])
def test_bidirectional_equals_keras_with_the_same_masks(rng, monkeypatch, kind, options):
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    klayer = getattr(keras.layers, kind)(4, recurrent_dropout=RATE, return_sequences=True,
                                         **options)
    k = keras.layers.Bidirectional(klayer)
    k.build((None, 5, 2))
    k.set_weights([(rng.standard_normal(w.shape) * 0.4).astype(np.float32)
                   for w in k.get_weights()])
    r = L.Bidirectional(getattr(L, kind)(4, recurrent_dropout=RATE, return_sequences=True,
                                         seed=2, **options))
    r.build(2)
    set_keras_weights(r, k.get_weights())
    drawn = _spy(monkeypatch)
    r.train()
    y = r(x)
    assert len(drawn) == 2  # one draw per direction, forward first
    _inject(k.forward_layer.cell, kind, drawn[0]["recurrent"])
    _inject(k.backward_layer.cell, kind, drawn[1]["recurrent"])
    assert_close(y, k(x, training=True).detach().numpy(), what=kind)


def test_masks_are_fresh_at_every_training_call_and_follow_the_seed(rng):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    a = L.LSTM(5, recurrent_dropout=0.4, return_sequences=True, seed=7)
    b = L.LSTM(5, recurrent_dropout=0.4, return_sequences=True, seed=7)
    for layer in (a, b):
        layer.build(3)
        layer.train()
    first = a(x)
    np.testing.assert_array_equal(first, b(x))  # same seed, same masks
    assert not np.array_equal(first, a(x))      # a new draw per call


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bad_rates_and_refused_combinations_name_the_argument(kind):
    cls = getattr(L, kind)
    with pytest.raises(ValueError, match=r"recurrent_dropout: expected a probability in \[0, 1\)"):
        cls(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        cls(3, recurrent_dropout=-0.1)
    if kind == "SimpleRNN":
        cls(3, dropout=0.2, recurrent_dropout=0.2)  # one input mask, as Keras
    else:
        with pytest.raises(ValueError, match=f"^{kind}: dropout=0.2 with recurrent_dropout=0.2 "
                                             "is not supported"):
            cls(3, dropout=0.2, recurrent_dropout=0.2)


def test_simple_rnn_with_both_dropouts_equals_keras(rng, monkeypatch):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    k, r = _pair("SimpleRNN", {}, (6, 3), rng, return_sequences=True, dropout=0.25)
    drawn = _spy(monkeypatch)
    r.train()
    y = r(x)
    drop = r._saved()[3]  # (batch, 1, features)
    _inject(k.cell, "SimpleRNN", drawn[0]["recurrent"])
    k.cell.get_dropout_mask = lambda step_input: torch.tensor(drop[:, 0])
    assert_close(y, k(x, training=True).detach().numpy())


def test_config_round_trip_and_training_in_fit(rng, tmp_path):
    x = rng.standard_normal((16, 5, 3)).astype(np.float32)
    t = rng.standard_normal((16, 2)).astype(np.float32)
    model = Sequential([L.Input((5, 3)),
                        L.Bidirectional(L.GRU(4, return_sequences=True, recurrent_dropout=0.2,
                                              reset_after=False)),
                        L.LSTM(3, recurrent_dropout=0.3), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, t, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    loaded = load_model(model.save(tmp_path / "m.keras"))
    assert loaded.get_config() == model.get_config()
    assert loaded.layers[1].recurrent_dropout == 0.3
    assert loaded.layers[0].layer.recurrent_dropout == 0.2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert model.layers[1].get_config()["recurrent_dropout"] == 0.3
