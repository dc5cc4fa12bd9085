"""save / load: one .npz without pickles, bit-for-bit predictions, weights, optimiser state and
continued training; every savable layer's configuration round-trips."""
import json
import warnings

import numpy as np
import pytest

from rnnfast import losses, nn, optim
from rnnfast.models import Sequential, load_model
from rnnfast.models import layers as L
from rnnfast.models.saving import CONFIG_KEY
from rnnfast.nn.serialization import deserialize, serialize


def text_model(seed):
    return Sequential([L.Embedding(30, 6, mask_zero=True, seed=seed),
                       L.Dropout(0.3, seed=seed + 1),
                       L.Bidirectional(L.LSTM(5, return_sequences=True, seed=seed + 2)),
                       L.GRU(4, seed=seed + 3), L.Dense(3, activation="softmax", seed=seed + 4)],
                      seed=seed + 5)


def data(rng, n=40):
    x = rng.integers(1, 30, (n, 9))
    for i in range(n):
        x[i, rng.integers(3, 10):] = 0  # post-padded
    return x, rng.integers(0, 3, n)


def test_round_trip_is_bit_for_bit(rng, tmp_path):
    x, y = data(rng)
    model = text_model(0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"], clipnorm=1.0)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = model.save(tmp_path / "model.keras")
    assert path == str(tmp_path / "model.keras")  # exactly where asked, any suffix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    with np.load(path, allow_pickle=False) as data_file:  # no pickled objects inside
        document = json.loads(str(data_file[CONFIG_KEY]))
        assert "weights/embedding.weight" in data_file.files
        assert any(k.startswith("optimizer/") for k in data_file.files)
    assert [layer["class_name"] for layer in document["config"]["layers"]] == \
        ["layers.Embedding", "nn.Dropout", "layers.Bidirectional", "layers.GRU", "layers.Dense"]
    loaded = load_model(path)
    assert loaded.layer_names == model.layer_names
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), loaded.named_parameters()):
        assert n1 == n2 and p1.dtype == p2.dtype
        np.testing.assert_array_equal(p1.data, p2.data)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.clip == model.clip and [m for m, _ in loaded.metrics] == ["accuracy"]
    state, saved = loaded.optimizer.state, model.optimizer.state
    for p1, p2 in zip(model.parameters(), loaded.parameters()):
        assert state[id(p2)]["step"] == saved[id(p1)]["step"]
        np.testing.assert_array_equal(state[id(p2)]["exp_avg_sq"], saved[id(p1)]["exp_avg_sq"])
    # training on from here (shuffling, dropout and Adam's moments included) stays identical
    h1 = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    h2 = loaded.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert h1["loss"] == h2["loss"]
    for w1, w2 in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_uncompiled_and_input_models(rng, tmp_path):
    model = Sequential([L.Input((12, 3)), L.Conv1D(4, 3, padding="causal", seed=0),
                        L.MaxPooling1D(2), L.SimpleRNN(3, activation="relu", seed=1),
                        nn.LayerNorm(3), L.Dense(2, seed=2)])
    loaded = load_model(model.save(tmp_path / "m.npz"))
    assert loaded.loss is None and loaded.input_spec.shape == (12, 3)
    x = rng.standard_normal((5, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    loaded.summary(print_fn=lambda line: None)


def test_save_and_load_weights(rng, tmp_path):
    x, _ = data(rng)
    a, b = text_model(0), text_model(10)
    a.build((None, 9))
    b.build((None, 9))
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


LAYERS = [
    nn.Linear(3, 2, bias=False, dtype=np.float64),
    nn.Linear(2, 5),
    nn.ReLU(),
    nn.Tanh(),
    nn.Sigmoid(),
    nn.LastStep(batch_first=True, bidirectional=True),
    L.Conv1D(4, 3, input_shape=(10, 2), dilation_rate=2, padding="causal"),
    L.GlobalMaxPooling1D(data_format="channels_first"),
    L.LSTM(3, input_dim=5, return_state=True),
    L.SimpleRNN(2, input_shape=(None, 4), dtype=np.float64),
    nn.TimeDistributed(L.Dense(3, input_dim=2)),
    L.Dense(4, activation="tanh", use_bias=False),
    nn.Embedding(5, 2, padding_idx=0),
    nn.Dropout(0.25),
    nn.Flatten(1, 2),
    nn.LayerNorm(4, eps=1e-3, elementwise_affine=False),
    nn.Softmax(dim=1),
    nn.TimeDistributed(L.Dense(3, activation="softmax")),
    nn.Conv1d(4, 6, 3, stride=2, padding=(1, 2), groups=2, channels_last=True),
    L.Conv1D(5, 2, padding="same", data_format="channels_first", activation="relu"),
    nn.MaxPool1d(3, stride=1, padding="same"),
    L.MaxPooling1D(3, padding="same"),
    L.AveragePooling1D(3, strides=2, padding="same", data_format="channels_first"),
    L.GlobalAveragePooling1D(keepdims=True),
    L.Embedding(9, 2, mask_zero=True, input_length=4),
    L.GRU(3, reset_after=False, return_sequences=True),
    L.Bidirectional(L.SimpleRNN(2, activation="relu")),
    L.Activation("linear"),
    L.Activation("softmax"),
    L.LayerNormalization(axis=[-2, -1], epsilon=1e-2, center=False),
    L.Masking(-1.0),
    nn.WaveNet(2, 7, 3, 4, 5, dilations=[1, 2, 4, 1], kernel_size=3, dtype=np.float64),
    nn.Seq2Seq(11, 13, 4, 5, num_layers=2, attention="additive", attention_dim=3),
    nn.Seq2Seq(11, 13, 4, 5),
    L.Add(), L.Subtract(), L.Multiply(), L.Average(), L.Maximum(), L.Minimum(),
    L.Concatenate(axis=1), L.Dot(axes=[1, 2], normalize=True),
    L.Attention(use_scale=True, score_mode="concat", dropout=0.1),
    L.AdditiveAttention(use_scale=False),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_layer_configs_round_trip(layer):
    config = serialize(layer)
    assert config["config"] == layer.get_config()
    again = deserialize(json.loads(json.dumps(config)))
    assert type(again) is type(layer)
    assert serialize(again) == config
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_every_registered_layer_is_covered():
    from rnnfast.nn import serialization
    assert {serialization.registered_name(layer) for layer in LAYERS} == \
        set(serialization._CLASSES)


def test_sequential_config_round_trip():
    model = Sequential([L.Input((7,), dtype="int64"), L.Embedding(9, 3), L.GRU(4),
                        L.Dense(2, activation="sigmoid")], name="m1")
    config = json.loads(json.dumps(model.get_config()))
    again = Sequential.from_config(config)
    assert again.get_config() == config and again.built and again.name == "m1"
    assert again.input_shape == (None, 7) and again.input_dtype == np.int64
    lazy = Sequential([L.Dense(3), nn.ReLU()])
    assert Sequential.from_config(lazy.get_config()).get_config() == lazy.get_config()
    with pytest.raises(TypeError, match="Softmax.* has no Keras name"):
        L.Dense(3, activation=nn.Softmax(dim=0)).get_config()


def test_saving_errors(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="cannot save a .*Custom"):
        Sequential([Custom()]).save(tmp_path / "x")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="is not a model saved by rnnfast"):
        load_model(tmp_path / "plain.npz")
    model = Sequential([L.Input((2,)), L.Dense(1)])
    model.compile(loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.1),
                  metrics=[lambda t, p: np.abs(t - p)])
    with pytest.warns(UserWarning, match="metrics given as functions are not saved"):
        loaded = load_model(model.save(tmp_path / "f"))
    assert isinstance(loaded.optimizer, optim.SGD)
    assert loaded.optimizer.param_groups[0]["lr"] == 0.1
    assert isinstance(loaded.loss, losses.MeanSquaredError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(loss=losses.BinaryCrossentropy(from_logits=True), optimizer="sgd")
        assert load_model(model.save(tmp_path / "g")).loss.from_logits


def test_model_modules_import_one_way():
    """No import cycle among rnnfast.models' modules, counting imports inside functions too
    (only a module ``__getattr__`` re-exporting names is not a dependency); saving imports no
    model class (models register with it)."""
    import ast
    import pathlib

    import rnnfast.models
    folder = pathlib.Path(rnnfast.models.__file__).parent
    names = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph = {}
    for name in names:
        tree = ast.parse((folder / f"{name}.py").read_text())
        deps = set()
        reexports = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and
                     f.name == "__getattr__" for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in reexports:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "rnnfast.models":
                deps |= {a.name for a in node.names if a.name in names}
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("rnnfast.models."):
                deps.add(node.module.split(".")[2])
        graph[name] = deps
    assert "sequential" not in graph["saving"] and "checkpointing" not in graph["callbacks"]

    def visit(name, path):
        assert name not in path, f"import cycle: {' -> '.join(path + [name])}"
        for dep in graph[name]:
            visit(dep, path + [name])

    for name in graph:
        visit(name, [])
