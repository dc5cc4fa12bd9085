"""The recurrent layers' Keras 3 arguments against Keras 3 itself (torch backend), same weights,
float32 within 1e-5 of the output's scale: go_backwards (with masks), stateful over several
batches and reset_states, return_state (also under Bidirectional), dropout (Keras' one input
mask per sequence), fully masked rows, Bidirectional's merge modes with backward (finite
differences in float64), backward_layer and input_shape; bad arguments name the layer."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras
from nn_cases import check_layer_gradients, rel_err
from rnnfast.models import Sequential, load_model, set_keras_weights
from rnnfast.models import layers as L

pytestmark = KERAS_WARNINGS
KINDS = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False})]


def randomise(layer, rng):
    weights = [(rng.standard_normal(w.shape) * 0.4).astype(np.float32)
               for w in layer.get_weights()]
    layer.set_weights(weights)
    return layer.get_weights()


def keras_layer(kind, options, shape, rng, **kw):
    """A built Keras layer with random weights, and the same rnnfast layer."""
    k = getattr(keras.layers, kind)(4, **options, **kw)
    k.build((None,) + shape)
    weights = randomise(k, rng)
    r = getattr(L, kind)(4, **options, **kw)
    set_keras_weights(r, weights)
    return k, r


def np_(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


@pytest.mark.parametrize("kind,options", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_go_backwards(rng, kind, options, return_sequences):
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    k, r = keras_layer(kind, options, (6, 5), rng, go_backwards=True,
                       return_sequences=return_sequences)
    assert_close(r(x), np_(k(x)), what=kind)


@pytest.mark.parametrize("kind,options", KINDS)
def test_go_backwards_with_a_mask_through_embedding(rng, kind, options):
    ids = rng.integers(1, 12, (4, 7))
    ids[1, 4:] = 0   # post-padded
    ids[2, :3] = 0   # pre-padded

    def build(m):
        return [m.Input((7,), dtype="int32"), m.Embedding(12, 5, mask_zero=True),
                getattr(m, kind)(4, go_backwards=True, **options), m.Dense(2)]

    k_model = keras.Sequential(build(keras.layers))
    randomise(k_model, rng)
    r_model = Sequential(build(L))
    set_keras_weights(r_model, k_model.get_weights())
    assert_close(r_model.predict(ids, verbose=0), k_model.predict(ids, verbose=0), what=kind)


@pytest.mark.parametrize("kind,options", KINDS)
def test_stateful_over_several_batches_and_reset_states(rng, kind, options):
    batches = [rng.standard_normal((3, 4, 5)).astype(np.float32) for _ in range(4)]
    k = getattr(keras.layers, kind)(4, stateful=True, return_sequences=True, **options)
    k_model = keras.Sequential([keras.Input(batch_shape=(3, 4, 5)), k])
    weights = randomise(k, rng)
    r = getattr(L, kind)(4, stateful=True, return_sequences=True, **options)
    r_model = Sequential([L.Input((4, 5)), r])
    set_keras_weights(r, weights)
    for i, x in enumerate(batches):
        if i == 2:
            k.reset_states()
            r.reset_states()
        assert_close(r_model.predict(x, verbose=0), np_(k_model(x)), what=f"batch {i}")
    states = [np_(s) for s in (k.states if isinstance(k.states, (list, tuple)) else [k.states])]
    assert_close(r.states[0][0], states[0], what="carried h")
    with pytest.raises(ValueError, match=f"{kind}: stateful=True carries the states of 3 "
                                         "sequences from batch to batch, got a batch of 2"):
        r(batches[0][:2])


@pytest.mark.parametrize("kind,options", KINDS)
def test_stateful_bidirectional_carries_both_directions(rng, kind, options):
    batches = [rng.standard_normal((2, 4, 3)).astype(np.float32) for _ in range(3)]
    k = keras.layers.Bidirectional(getattr(keras.layers, kind)(4, stateful=True, **options))
    k_model = keras.Sequential([keras.Input(batch_shape=(2, 4, 3)), k])
    randomise(k, rng)
    r = L.Bidirectional(getattr(L, kind)(4, stateful=True, **options))
    r_model = Sequential([L.Input((4, 3)), r])
    r.set_weights(k.get_weights())
    for i, x in enumerate(batches):
        assert_close(r_model.predict(x, verbose=0), np_(k_model(x)), what=f"batch {i}")


@pytest.mark.parametrize("kind,options", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_return_state(rng, kind, options, return_sequences):
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    k, r = keras_layer(kind, options, (6, 5), rng, return_state=True,
                       return_sequences=return_sequences)
    got, want = r(x), [np_(t) for t in k(x)]
    assert len(got) == len(want) == (3 if kind == "LSTM" else 2)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, what=f"output {i}")


@pytest.mark.parametrize("kind,options", KINDS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes_and_return_state(rng, kind, options, merge_mode):
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False
    for return_state in (False, True):
        k = keras.layers.Bidirectional(
            getattr(keras.layers, kind)(4, return_sequences=True, return_state=return_state,
                                        **options), merge_mode=merge_mode)
        k.build((None, 6, 5))
        weights = randomise(k, rng)
        r = L.Bidirectional(getattr(L, kind)(4, return_sequences=True,
                                             return_state=return_state, **options),
                            merge_mode=merge_mode)
        r.set_weights(weights)
        got = r(x)
        want = k(x)
        got = got if isinstance(got, list) else [got]
        want = [np_(t) for t in (want if isinstance(want, (list, tuple)) else [want])]
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, what=f"{merge_mode} output {i}")
    # with a padding mask: the valid steps (Keras repeats the last output on padded steps)
    got = r(x, mask=mask)
    want = [np_(t) for t in k(x, mask=mask)]
    got = got if isinstance(got, list) else [got]
    for i, (a, b) in enumerate(zip(got, want)):
        if a.ndim == 3:
            a, b = a[mask], b[mask]
        assert_close(a, b, what=f"{merge_mode} masked output {i}")


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_merge_mode_gradients(rng, merge_mode, return_sequences):
    layer = L.Bidirectional(L.LSTM(3, return_sequences=return_sequences, dtype=np.float64,
                                   seed=0), merge_mode=merge_mode)
    x = rng.standard_normal((2, 4, 3))
    layer(x)
    if merge_mode is None:
        dy = [rng.standard_normal((2, 4, 3) if return_sequences else (2, 3)) for _ in range(2)]

        def call(a):
            f, b = layer(a)
            return np.concatenate([f, b], axis=-1)
        y = call(x)
        layer.zero_grad()
        dx = layer.backward(dy)
        dcat = np.concatenate(dy, axis=-1)
        from nn_cases import numeric_grad
        loss = lambda: float(np.sum(call(x) * dcat))  # noqa: E731
        assert rel_err(dx, numeric_grad(loss, x)) < 1e-6
        for name, p in layer.named_parameters():
            assert rel_err(p.grad, numeric_grad(loss, p.data)) < 1e-6, name
        assert y.shape[-1] == 6
    else:
        check_layer_gradients(layer, x, rng)


def test_bidirectional_state_gradients(rng):
    layer = L.Bidirectional(L.GRU(3, return_state=True, dtype=np.float64, seed=0),
                            merge_mode="sum")
    x = rng.standard_normal((2, 4, 3))
    dy, dh_f, dh_b = (rng.standard_normal((2, 3)) for _ in range(3))

    def loss():
        y, h_f, h_b = layer(x)
        return float(np.sum(y * dy) + np.sum(h_f * dh_f) + np.sum(h_b * dh_b))

    layer(x)
    layer.zero_grad()
    dx = layer.backward(dy, dh_f, dh_b)
    from nn_cases import numeric_grad
    assert rel_err(dx, numeric_grad(loss, x)) < 1e-6
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numeric_grad(loss, p.data)) < 1e-6, name


def test_bidirectional_backward_layer_and_input_shape(rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    fwd, bwd = keras.layers.LSTM(4), keras.layers.LSTM(4, go_backwards=True)
    k = keras.layers.Bidirectional(fwd, backward_layer=bwd, merge_mode="ave")
    k.build((None, 5, 3))
    weights = randomise(k, rng)
    r = L.Bidirectional(L.LSTM(4), backward_layer=L.LSTM(4, go_backwards=True),
                        merge_mode="ave", input_shape=(5, 3))
    assert r.built
    r.set_weights(weights)
    assert_close(r(x), np_(k(x)))
    with pytest.raises(ValueError, match="Bidirectional: backward_layer: expected "
                                         "go_backwards=True"):
        L.Bidirectional(L.LSTM(4), backward_layer=L.LSTM(4))
    with pytest.raises(ValueError, match="Bidirectional: backward_layer: units=5 differs"):
        L.Bidirectional(L.LSTM(4), backward_layer=L.LSTM(5, go_backwards=True))
    with pytest.raises(ValueError, match="Bidirectional: backward_layer: expected an unbuilt "
                                         "LSTM"):
        L.Bidirectional(L.LSTM(4), backward_layer=L.GRU(4, go_backwards=True))
    model = Sequential([L.Bidirectional(L.GRU(2), input_shape=(5, 3)), L.Dense(1)])
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("kind,options", KINDS)
def test_fully_masked_rows_give_the_initial_state(rng, kind, options):
    ids = rng.integers(1, 9, (4, 5))
    ids[1] = 0
    ids[3, 2:] = 0
    for return_sequences in (False, True):
        def build(m):
            return [m.Input((5,), dtype="int32"), m.Embedding(9, 3, mask_zero=True),
                    getattr(m, kind)(4, return_sequences=return_sequences, **options)]

        k_model = keras.Sequential(build(keras.layers))
        randomise(k_model, rng)
        r_model = Sequential(build(L))
        set_keras_weights(r_model, k_model.get_weights())
        got, want = r_model.predict(ids, verbose=0), k_model.predict(ids, verbose=0)
        if return_sequences:
            mask = ids != 0
            assert np.all(got[1] == 0)
            got, want = got[mask], want[mask]
        else:
            assert np.all(got[1] == 0) and np.all(want[1] == 0)
        assert_close(got, want, what=kind)
    # the empty row takes no part in the gradients
    layer = getattr(L, kind)(3, dtype=np.float64, seed=0, **options)
    x = rng.standard_normal((3, 4, 2))
    mask = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], bool)
    dx = check_layer_gradients(layer, x, rng, call=lambda a: layer(a, mask=mask))
    assert np.all(dx[1] == 0)


@pytest.mark.parametrize("kind,options", KINDS)
def test_dropout_is_one_input_mask_per_sequence(rng, kind, options):
    x = rng.standard_normal((6, 5, 8)).astype(np.float32)
    k, r = keras_layer(kind, options, (5, 8), rng, return_sequences=True)
    rd = getattr(L, kind)(4, return_sequences=True, dropout=0.4, seed=3, **options)
    set_keras_weights(rd, r.get_weights())
    rd.train()
    y = rd(x)
    drop = rd._saved()[3]          # (batch, 1, features): the same for every step
    assert drop.shape == (6, 1, 8)
    assert set(np.unique(drop)) <= {0.0, np.float32(1 / 0.6)} and 0 < (drop == 0).mean() < 1
    assert_close(y, np_(k(x * drop)))   # Keras without dropout on the masked input
    rd.eval()
    assert_close(rd(x), np_(k(x)))      # inference: no dropout
    # its gradients: finite differences of the layer without dropout on the masked input
    layer = getattr(L, kind)(3, dropout=0.5, dtype=np.float64, seed=0, **options)
    xx = rng.standard_normal((2, 4, 3))
    y = layer(xx)
    mask = layer._saved()[3]
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    layer.dropout = 0.0

    def loss():
        return float(np.sum(layer(xx * mask) * dy))

    from nn_cases import numeric_grad
    assert rel_err(dx, numeric_grad(loss, xx)) < 1e-6
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numeric_grad(loss, p.data)) < 1e-6, name


def test_dropout_in_fit_trains_and_unroll_is_accepted(rng):
    x = rng.standard_normal((16, 5, 3)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = Sequential([L.Input((5, 3)), L.LSTM(4, dropout=0.3, unroll=True, seed=0),
                        L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bad_recurrent_arguments_name_the_layer(kind):
    cls = getattr(L, kind)
    with pytest.raises(ValueError, match="dropout: expected a probability in \\[0, 1\\)"):
        cls(3, dropout=1.0)
    with pytest.raises(ValueError, match="kernel_initializer: unknown initializer 'glorot'"):
        cls(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="recurrent_regularizer: unknown regularizer 'l3'"):
        cls(3, recurrent_regularizer="l3")
    with pytest.raises(ValueError, match="bias_constraint: unknown constraint 'max'"):
        cls(3, bias_constraint="max")
    with pytest.raises(TypeError, match=f"^{kind}: argument\\(s\\) time_major not supported"):
        cls(3, time_major=True)
    with pytest.raises(ValueError, match="Bidirectional: layer: go_backwards=True is not "
                                         "supported"):
        L.Bidirectional(cls(3, go_backwards=True))
    if kind != "LSTM":
        with pytest.raises(TypeError, match=f"^{kind}: argument\\(s\\) unit_forget_bias"):
            cls(3, unit_forget_bias=False)


def test_new_arguments_survive_save_and_load(rng, tmp_path):
    from rnnfast.models import constraints as C
    from rnnfast.models import initializers as I
    from rnnfast.models import regularizers as R
    model = Sequential([
        L.Input((5, 3)),
        L.Bidirectional(L.GRU(4, return_sequences=True, go_backwards=False, dropout=0.2,
                              kernel_initializer=I.RandomNormal(stddev=0.1, seed=1),
                              kernel_regularizer=R.L1L2(l1=0.01, l2=0.02),
                              recurrent_constraint=C.MaxNorm(1.5, axis=1)), merge_mode="sum"),
        L.LSTM(3, go_backwards=True, unit_forget_bias=False, activity_regularizer="l2",
               bias_initializer="ones"),
        L.Dense(2, kernel_constraint="non_neg", bias_regularizer="l1")])
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    loaded = load_model(model.save(tmp_path / "m.keras"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()
    gru = loaded.layers[0].layer
    assert gru.dropout == 0.2 and gru.regularizers["kernel"].l2 == 0.02
    assert gru.constraints["recurrent"].max_value == 1.5 and loaded.layers[0].merge_mode == "sum"
    lstm = loaded.layers[1]
    assert lstm.go_backwards and not lstm.unit_forget_bias
    assert lstm.activity_regularizer.l2 == 0.01
