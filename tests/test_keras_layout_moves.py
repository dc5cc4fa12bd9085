"""The Keras-style layers' home and layout: they live in rnnfast.models (rnnfast.nn imports
nothing of rnnfast.models, checked on every import of the package's sources), and model files
written before the recurrent layers had Keras' single bias still load (the two biases summed,
the optimiser state renumbered) and predict what they predicted."""
import ast
import pathlib

import numpy as np
import pytest

import rnnfast
from rnnfast import nn
from rnnfast.models import Sequential, load_model
from rnnfast.models import layers as L

DATA = pathlib.Path(__file__).parent / "data"
# package -> the packages it may import (functional <- nn <- models / generation / torch)
LOWER = {"functional": {"functional"}, "nn": {"functional", "nn"},
         "generation": {"functional", "nn"}, "torch": {"functional", "nn"}}


def _imports(path, package_root):
    """Every rnnfast subpackage/module a file imports (top level and inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                continue
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rnnfast" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(LOWER))
def test_lower_packages_never_import_upwards(package):
    root = pathlib.Path(rnnfast.__file__).parent
    modules = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    bad = []
    paths = sorted((root / package).rglob("*.py")) if (root / package).is_dir() else \
        [root / f"{package}.py"]
    assert paths
    for path in paths:
        for dep in _imports(path, root):
            if dep in modules and not dep.startswith("_") and dep not in LOWER[package] | \
                    {package}:
                bad.append(f"{path.relative_to(root)} imports rnnfast.{dep}")
    assert not bad, bad


def test_keras_classes_live_in_models_and_nn_keeps_pytorch_names():
    for cls in (L.Dense, L.Conv1D, L.MaxPooling1D, L.GlobalMaxPooling1D,
                L.GlobalAveragePooling1D, L.Embedding, L.LSTM, L.Bidirectional):
        assert cls.__module__ == "rnnfast.models.layers"
    from rnnfast.nn import conv, linear
    for module in (conv, linear):
        assert not {"Dense", "Conv1D", "MaxPooling1D", "GlobalMaxPooling1D"} & set(vars(module))
    assert not hasattr(nn.Linear(2, 3), "get_weights")
    from rnnfast.nn.serialization import registered_name
    assert registered_name(L.Dense) == "layers.Dense"  # the names saved files use
    assert registered_name(L.Conv1D) == "layers.Conv1D"


@pytest.mark.parametrize("stem,iterations", [("two_bias_adam", 4), ("two_bias_optim", 2)])
def test_a_file_with_pytorchs_two_recurrent_biases_loads_and_predicts_the_same(tmp_path, stem,
                                                                               iterations):
    """Files written by the previous release (tests/data, made by its code): a Keras Adam
    (``two_bias_adam``) and rnnfast.optim's Adam (``compile(optimizer="adam")``: parameter
    groups and state by parameter index)."""
    expected = np.load(DATA / f"{stem.replace('_adam', '')}_expected.npz")
    model = load_model(DATA / f"{stem.replace('_optim', '_optim_adam')}.keras")
    names = [n for n, _ in model.named_parameters()]
    assert not any("bias_hh" in n for n in names if "gru_1" not in n), names
    assert "gru_1.rnn.bias_hh_l0" in names  # GRU(reset_after=True): Keras' two biases
    got = model.predict(expected["x"], verbose=0)
    np.testing.assert_allclose(got, expected["predict"], rtol=1e-5, atol=1e-6)
    # the Adam state came along (renumbered past the dropped biases) and training goes on
    if stem == "two_bias_adam":
        assert model.optimizer.iterations == iterations
    else:
        steps = {model.optimizer.state[id(p)]["step"] for p in model.parameters()}
        assert steps == {iterations}, steps
    history = model.fit(expected["x"], expected["y"], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    again = load_model(model.save(tmp_path / "new.keras"))
    np.testing.assert_array_equal(again.predict(expected["x"], verbose=0),
                                  model.predict(expected["x"], verbose=0))


def test_a_two_bias_state_dict_loads_summed(rng):
    layer = L.LSTM(3, input_dim=2, seed=0)
    plain = nn.LSTM(2, 3, batch_first=True, seed=1)
    state = {f"rnn.{k}": v for k, v in plain.state_dict().items()}
    layer.load_state_dict(state)
    np.testing.assert_array_equal(layer.rnn.bias_ih_l0.data,
                                  plain.bias_ih_l0.data + plain.bias_hh_l0.data)
    x = rng.standard_normal((2, 5, 2)).astype(np.float32)
    _, (h, _) = plain(x)
    np.testing.assert_allclose(layer(x), h[0], rtol=1e-6, atol=1e-6)
