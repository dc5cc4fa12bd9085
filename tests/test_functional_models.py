"""The functional API (rnnfast.models.Input / Model and the merge layers): gradients against
finite differences (float64, shared layers, return_state / initial_state, attention, merges,
several inputs and outputs), the engine shared with Sequential (a chain Model trains exactly as
the Sequential of the same layers, masks included), compile / fit / evaluate per output,
saving and resuming, summary, and the errors of malformed graphs and data."""
import numpy as np
import pytest

from nn_cases import FD_TOL, numeric_grad, rel_err
from rnnfast import nn
from rnnfast.models import Input, KerasTensor, Model, Sequential, load_model
from rnnfast.models import layers as L
from rnnfast.models import merging

F64 = np.float64


def small_graph(seed=0):
    """Two inputs, a shared Dense, an LSTM returning its states into a GRU-free second LSTM
    started from them, attention, merges and two outputs; float64."""
    a = Input(shape=(4, 3), dtype="float64", name="a")
    b = Input(shape=(5, 3), dtype="float64", name="b")
    proj = L.Dense(3, activation="tanh", dtype=F64, seed=seed, name="proj")  # shared
    enc, h, c = L.LSTM(4, return_sequences=True, return_state=True, dtype=F64, seed=seed + 1,
                       name="enc")(proj(a))
    dec = L.LSTM(4, return_sequences=True, dtype=F64, seed=seed + 2, name="dec")(
        proj(b), initial_state=[h, c])
    ctx = L.Attention(use_scale=True, dtype=F64, name="att")([dec, enc])
    joined = merging.Concatenate(name="cat")([dec, ctx])
    summed = merging.Add(name="add")([dec, merging.Multiply(name="mul")([ctx, dec])])
    out1 = L.Dense(2, dtype=F64, seed=seed + 3, name="out1")(joined)
    pooled = L.GlobalAveragePooling1D(name="pool")(summed)
    out2 = L.Dense(3, activation="softmax", dtype=F64, seed=seed + 4, name="out2")(
        merging.Dot(axes=1, normalize=True, name="dot")([pooled, L.Dense(
            4, dtype=F64, seed=seed + 5, name="hproj")(h)]))
    return Model([a, b], [out1, out2])


def test_gradients_match_finite_differences(rng):
    model = small_graph()
    model.get_layer("att").scale.data[...] = 0.7
    xa = rng.standard_normal((2, 4, 3))
    xb = rng.standard_normal((2, 5, 3))
    r1 = rng.standard_normal((2, 5, 2))
    r2 = rng.standard_normal((2, 3))
    model.train()

    def loss():
        o1, o2 = model.forward([xa, xb])
        return float(np.sum(o1 * r1) + np.sum(o2 * r2))

    o1, o2 = model.forward([xa, xb])
    assert o1.shape == (2, 5, 2) and o2.shape == (2, 3)
    model.zero_grad()
    da, db = model.backward([r1, r2])
    assert rel_err(da, numeric_grad(loss, xa)) < FD_TOL
    assert rel_err(db, numeric_grad(loss, xb)) < FD_TOL
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}
    assert "proj.weight" in analytic and "att.scale" in analytic
    for name, p in model.named_parameters():
        assert rel_err(analytic[name], numeric_grad(loss, p.data)) < FD_TOL, name


def test_a_shared_layer_gets_the_sum_of_its_calls_gradients(rng):
    x = Input(shape=(3,), dtype="float64")
    dense = L.Dense(3, dtype=F64, seed=0)
    model = Model(x, dense(dense(x)))
    assert len(model.layers) == 1 and len(model._nodes) == 2
    xs = rng.standard_normal((4, 3))
    model.train()
    model.forward(xs)
    model.zero_grad()
    dy = rng.standard_normal((4, 3))
    dx = model.backward(dy)
    w = dense.weight.data
    h = xs @ w.T + dense.bias.data
    np.testing.assert_allclose(dense.weight.grad, dy.T @ h + (dy @ w).T @ xs, rtol=1e-12)
    np.testing.assert_allclose(dx, dy @ w @ w, rtol=1e-12)


def test_only_the_states_of_an_encoder_can_be_used(rng):
    x = Input(shape=(6, 2), dtype="float64")
    _, h = L.GRU(3, return_state=True, dtype=F64, seed=0)(x)
    model = Model(x, L.Dense(1, dtype=F64, seed=1)(h))
    xs = rng.standard_normal((3, 6, 2))
    r = rng.standard_normal((3, 1))
    model.train()
    model.forward(xs)
    model.zero_grad()
    dx = model.backward(r)

    def loss():
        return float(np.sum(model.forward(xs) * r))
    assert rel_err(dx, numeric_grad(loss, xs)) < FD_TOL


@pytest.mark.parametrize("name, kwargs", [("Add", {}), ("Subtract", {}), ("Multiply", {}),
                                          ("Average", {}), ("Maximum", {}), ("Minimum", {}),
                                          ("Concatenate", {"axis": 1}),
                                          ("Dot", {"axes": 2}), ("Dot", {"axes": [1, 1]}),
                                          ("Dot", {"axes": -1, "normalize": True})])
def test_merge_layer_gradients_match_finite_differences(rng, name, kwargs):
    layer = getattr(merging, name)(**kwargs)
    arrays = [rng.standard_normal((2, 3, 4)) for _ in range(2)]
    layer.train()
    y = layer.forward(arrays)
    r = rng.standard_normal(y.shape)
    grads = layer.backward(r)
    for arr, g in zip(arrays, grads):
        assert rel_err(g, numeric_grad(lambda: float(np.sum(layer.forward(arrays) * r)),
                                       arr)) < FD_TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes, axes", [(((5, 7), (5, 7)), 1), (((5, 3, 7), (5, 7)), [2, 1]),
                                          (((5, 7), (5, 7, 2)), [1, 1]),
                                          (((1, 17, 33), (1, 19, 33)), 2),
                                          (((4, 9, 1), (4, 9, 6)), 1)])
def test_dot_matches_numpy_in_both_dtypes(rng, dtype, shapes, axes):
    """Dot runs on the package's GEMM: values and gradients against NumPy's einsum, 2- and
    3-axis inputs, a batch of 1, sizes off the SIMD width."""
    a, b = (rng.standard_normal(s).astype(dtype) for s in shapes)
    layer = merging.Dot(axes=axes)
    layer.train()
    y = layer.forward([a, b])
    ax = [axes, axes] if isinstance(axes, int) else axes
    a3 = np.moveaxis(a, ax[0], -1).astype(np.float64)
    b3 = np.moveaxis(b, ax[1], 1).astype(np.float64)
    a3 = a3 if a3.ndim == 3 else a3[:, None, :]
    b3 = b3 if b3.ndim == 3 else b3[:, :, None]
    want = np.einsum("bik,bkj->bij", a3, b3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype
    np.testing.assert_allclose(y.reshape(want.shape), want, rtol=tol, atol=tol * 10)
    dy = rng.standard_normal(y.shape).astype(dtype)
    da, db = layer.backward(dy)
    d3 = dy.astype(np.float64).reshape(want.shape)
    da3, db3 = np.einsum("bij,bkj->bik", d3, b3), np.einsum("bik,bij->bkj", a3, d3)
    da_want = np.moveaxis(da3 if a.ndim == 3 else da3[:, 0, :], -1, ax[0])
    db_want = np.moveaxis(db3 if b.ndim == 3 else db3[:, :, 0], 1, ax[1])
    assert da.dtype == db.dtype == dtype
    np.testing.assert_allclose(da, da_want, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(db, db_want, rtol=tol, atol=tol * 10)


def test_merge_layers_check_their_inputs():
    a, b = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="Add takes inputs of the same shape"):
        merging.Add().forward([a, b])
    with pytest.raises(ValueError, match="Subtract takes exactly 2 inputs, got 3"):
        merging.Subtract().forward([a, a, a])
    with pytest.raises(ValueError, match="Add takes at least 2 inputs, got 1"):
        merging.Add().forward([a])
    with pytest.raises(TypeError, match="takes a list of arrays"):
        merging.Add().forward(a)
    with pytest.raises(ValueError, match="match on every other axis"):
        merging.Concatenate(axis=-1).forward([np.ones((2, 3, 1)), np.ones((2, 4, 1))])
    with pytest.raises(ValueError, match="axis: 0 is not a non-batch axis"):
        merging.Concatenate(axis=0).forward([a, a])
    with pytest.raises(ValueError, match="needs equal sizes"):
        merging.Dot(axes=1).forward([a, b])
    with pytest.raises(TypeError, match="of one dtype"):
        merging.Add().forward([a, a.astype(np.float64)])


# the engine shared with Sequential ----------------------------------------------------------
def chain(seed):
    return [L.Embedding(30, 5, mask_zero=True, seed=seed),
            L.LSTM(6, return_sequences=True, seed=seed + 1),
            L.Dense(4, activation="softmax", seed=seed + 2)]


def test_a_chain_model_trains_exactly_as_the_sequential_of_its_layers(rng):
    x = rng.integers(1, 30, (20, 7))
    x[::3, 5:] = 0  # padded rows: the mask reaches the output
    y = rng.integers(0, 4, (20, 7))
    seq = Sequential(chain(0), seed=9)
    layers = chain(0)
    tokens = Input(shape=(None,), dtype="int64")
    out = tokens
    for layer in layers:
        out = layer(out)
    model = Model(tokens, out, seed=9)
    for m in (seq, model):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hs = seq.fit(x, y, batch_size=6, epochs=2, verbose=0, validation_split=0.25)
    hm = model.fit(x, y, batch_size=6, epochs=2, verbose=0, validation_split=0.25)
    assert hs.history == hm.history
    np.testing.assert_array_equal(seq.predict(x), model.predict(x))
    assert model.output_masks[0] is not None
    assert seq.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def two_heads(seed=0):
    x = Input(shape=(6,), name="features")
    h = L.Dense(8, activation="relu", seed=seed, name="trunk")(x)
    value = L.Dense(1, seed=seed + 1, name="value")(h)
    label = L.Dense(3, activation="softmax", seed=seed + 2, name="label")(h)
    return Model(x, [value, label], seed=seed)


def head_data(rng, n=32):
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, {"value": x[:, :1] * 2, "label": (x[:, 1] > 0).astype(int) + (x[:, 2] > 1)}


def test_losses_metrics_and_weights_per_output(rng):
    x, y = head_data(rng)
    model = two_heads()
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"],
                  metrics={"label": ["accuracy"]}, loss_weights=[0.5, 1.0])
    history = model.fit(x, [y["value"], y["label"]], epochs=3, batch_size=8, verbose=0)
    assert list(history.history) == ["loss", "value_loss", "label_loss", "label_accuracy"]
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["loss"], 0.5 * logs["value_loss"] + logs["label_loss"])
    values = model.evaluate(x, y, verbose=0)
    assert values == list(logs.values())
    # an output without a loss is not trained and needs no targets
    model.compile(optimizer="sgd", loss={"label": "sparse_categorical_crossentropy"})
    before = model.get_layer("value").weight.data.copy()
    model.fit(x, y["label"], epochs=1, verbose=0)
    np.testing.assert_array_equal(model.get_layer("value").weight.data, before)


def test_sample_weights_per_output(rng):
    x, y = head_data(rng, 16)
    model = two_heads()
    model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"])
    w = np.zeros(16)
    w[:8] = 1
    weighted = model.evaluate(x, y, sample_weight={"value": w}, return_dict=True, verbose=0)
    plain = model.evaluate(x[:8], {k: v[:8] for k, v in y.items()}, return_dict=True, verbose=0)
    np.testing.assert_allclose(weighted["value_loss"] * 2, plain["value_loss"], rtol=1e-6)
    np.testing.assert_allclose(weighted["label_loss"],
                               model.evaluate(x, y, return_dict=True, verbose=0)["label_loss"])


def test_save_load_and_resume_a_two_output_model(rng, tmp_path):
    x, y = head_data(rng)
    model = two_heads()
    model.compile(optimizer="adam", loss={"value": "mse",
                                          "label": "sparse_categorical_crossentropy"},
                  metrics=[[], ["accuracy"]], loss_weights={"value": 0.3})
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "two_heads.keras"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, Model) and loaded.output_names == ["value", "label"]
    assert [h.weight for h in loaded._heads] == [0.3, 1.0]
    for a, b in zip(loaded.predict(x), model.predict(x)):
        np.testing.assert_array_equal(a, b)
    h1 = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    h2 = loaded.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert h1.history == h2.history
    assert Model.load(path).get_config() == model.get_config()


def test_dicts_by_input_name_and_dense_on_3d_inputs(rng):
    a = Input(shape=(5, 2), name="left")
    b = Input(shape=(5, 2), name="right")
    td = L.TimeDistributed(L.Dense(3, seed=0))(a)
    d3 = L.Dense(3, seed=1)(b)
    model = Model({"left": a, "right": b}, merging.Average()([td, d3]))
    assert model.output_shape == (None, 5, 3)
    xa, xb = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 5, 2))
    by_list = model.predict([xa, xb])
    np.testing.assert_array_equal(model.predict({"right": xb, "left": xa}), by_list)
    assert by_list.dtype == np.float32


def test_attention_options_and_causal_mask(rng):
    q = Input(shape=(4, 3))
    v = Input(shape=(6, 3))
    out, scores = L.Attention()([q, v], return_attention_scores=True)
    causal = L.Attention()([q, q], use_causal_mask=True)
    model = Model([q, v], [out, scores, causal])
    assert model.output_shape == [(None, 4, 3), (None, 4, 6), (None, 4, 3)]
    xq, xv = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 6, 3))
    o, s, c = model.predict([xq, xv])
    np.testing.assert_allclose(s.sum(-1), 1, rtol=1e-6)
    direct = L.Attention()
    np.testing.assert_allclose(c, direct.forward([xq.astype(np.float32)] * 2,
                                                 use_causal_mask=True), rtol=1e-6)


def test_summary_lists_calls_and_counts_a_shared_layer_once():
    model = small_graph()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "a (InputLayer)" in text
    assert text.count(" proj (Dense)") == 2
    assert "enc[0][1]" in text and "proj[1][0]" in text
    assert f"Total params: {model.count_params():,}" in text


def test_keras_input_starts_a_sequential():
    model = Sequential([Input(shape=(4,)), L.Dense(2)])
    assert model.built and model.output_shape == (None, 2)


# errors -------------------------------------------------------------------------------------
def test_graph_errors_are_clear():
    a = Input(shape=(3,), name="a")
    b = Input(shape=(3,), name="b")
    out = merging.Add()([a, L.Dense(3)(b)])
    with pytest.raises(ValueError, match="depend on the Input .*name=b.*not among the "
                                         "model's inputs"):
        Model(a, out)
    with pytest.raises(ValueError, match="inputs\\[0\\]: expected an Input tensor"):
        Model(L.Dense(3)(a), out)
    with pytest.raises(TypeError, match="outputs\\[0\\]: expected a symbolic tensor"):
        Model(a, [np.zeros(3)])
    with pytest.raises(ValueError, match="the same Input is given twice"):
        Model([a, a], a)
    with pytest.raises(TypeError, match="takes a list of tensors"):
        merging.Add()(a)
    with pytest.raises(TypeError, match="takes one tensor, not a list"):
        L.Dense(2)([a, b])
    with pytest.raises(TypeError, match="initial_state is an argument of SimpleRNN"):
        L.Dense(2)(a, initial_state=[b])
    with pytest.raises(TypeError, match="argument\\(s\\) masks not supported"):
        L.Dense(2)(a, masks=b)
    with pytest.raises(ValueError, match="mask: the input of shape \\(2, 3\\) has no time "
                                         "axis"):
        L.Dense(2)(a, mask=b)
    with pytest.raises(ValueError, match="'bad' \\(Concatenate\\) called on inputs of shape "
                                         ".*match on every other axis"):
        merging.Concatenate(axis=1, name="bad")([Input(shape=(2, 4)), Input(shape=(3, 5))])
    with pytest.raises(ValueError, match="the name 'a' is used by two layers"):
        Model([a, b], L.Dense(2, name="a")(b))
    with pytest.raises(TypeError, match="has no values"):
        np.asarray(a)
    x = Input(shape=(5, 2))
    with pytest.raises(ValueError, match="initial_state: LSTM takes a list of 2 arrays"):
        L.LSTM(3)(x, initial_state=[Input(shape=(3,))])
    with pytest.raises(ValueError, match="initial_state\\[0\\]: expected shape \\(batch, units\\)"):
        L.GRU(3)(x, initial_state=[Input(shape=(4,))])


def test_data_errors_are_clear(rng):
    model = two_heads()
    model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"])
    x, y = head_data(rng, 8)
    with pytest.raises(ValueError, match="y: the model has 2 outputs \\['value', 'label'\\]"):
        model.fit(x, y["value"], verbose=0)
    with pytest.raises(ValueError, match="y: unknown output name\\(s\\) \\['other'\\]"):
        model.fit(x, dict(y, other=y["value"]), verbose=0)
    with pytest.raises(ValueError, match="y\\['label'\\]: class labels must be in 0..2"):
        model.fit(x, dict(y, label=y["label"] + 5), verbose=0)
    with pytest.raises(ValueError, match="x: expected shape \\(None, 6\\), got \\(8, 5\\)"):
        model.predict(x[:, :5])
    with pytest.raises(ValueError, match="loss: expected 2 losses"):
        model.compile(loss=["mse"])
    with pytest.raises(ValueError, match="loss_weights\\['value'\\]: expected a finite number"):
        model.compile(loss="mse", loss_weights={"value": -1})
    p, q = Input(shape=(2,), name="p"), Input(shape=(2,), name="q")
    two = Model([p, q], merging.Add()([p, q]))
    with pytest.raises(ValueError, match="x: the model has 2 inputs \\['p', 'q'\\]"):
        two.predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x: the model's inputs are \\['p', 'q'\\]; missing"):
        two.predict({"p": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="different numbers of samples \\[3, 4\\]"):
        two.predict([np.zeros((3, 2)), np.zeros((4, 2))])


def test_symbolic_tensors_describe_themselves():
    t = Input(shape=(None, 4), dtype="int32", name="tokens")
    assert isinstance(t, KerasTensor) and t.shape == (None, None, 4) and t.ndim == 3
    assert "name=tokens" in repr(t)
    assert isinstance(L.Dense(2), nn.Module)


def test_one_input_in_both_places_for_both_models(tmp_path):
    """Keras has one Input (keras.Input is keras.layers.Input): so does rnnfast, and a
    Sequential started with it builds, predicts and saves as with a functional Model."""
    import rnnfast.models as models
    from rnnfast.models import layers

    assert layers.Input is models.Input
    seq = models.Sequential([layers.Input(shape=(5, 3)), layers.LSTM(4)])
    assert seq.input_spec.shape == (5, 3)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    path = tmp_path / "seq.keras"
    seq.save(path)
    np.testing.assert_array_equal(models.load_model(path).predict(x, verbose=0),
                                  seq.predict(x, verbose=0))
    with pytest.raises(AttributeError, match="has no attribute 'Inputs'"):
        layers.Inputs
