"""Keras' optimisers and learning-rate schedules of rnnfast.models.optimizers against Keras 3
itself: the same model and weights, trained by the same optimiser (and schedule) on the same
batches, end with the same weights (float32, within 1e-5 relative); the schedules give Keras'
values step by step; bad arguments raise errors naming the optimiser and the argument."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast import nn, optim
from rnnfast.models import Sequential, load_model, set_keras_weights
from rnnfast.models import layers as L
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS

SCHEDULES = {
    "exp": ("ExponentialDecay", dict(initial_learning_rate=2e-2, decay_steps=3, decay_rate=0.5)),
    "exp_stair": ("ExponentialDecay", dict(initial_learning_rate=2e-2, decay_steps=2,
                                           decay_rate=0.7, staircase=True)),
    "cos": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=5, alpha=0.1)),
    "cos_warm": ("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=4,
                                     warmup_target=0.1, warmup_steps=3)),
    "piecewise": ("PiecewiseConstantDecay", dict(boundaries=[2, 5], values=[1e-2, 5e-3, 1e-3])),
}

CASES = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(learning_rate=0.1, weight_decay=0.05)),
    ("SGD", dict(learning_rate="cos_warm", momentum=0.9)),
    ("SGD", dict(learning_rate="cos")),
    ("Adam", dict()),
    ("Adam", dict(learning_rate=1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True)),
    ("Adam", dict(learning_rate=1e-2, clipnorm=0.05)),
    ("Adam", dict(learning_rate=1e-2, clipvalue=0.01)),
    ("Adam", dict(learning_rate=1e-2, global_clipnorm=0.05)),
    ("Adam", dict(learning_rate=1e-2, weight_decay=0.1)),
    ("Adam", dict(learning_rate="exp")),
    ("AdamW", dict(learning_rate=1e-2)),
    ("AdamW", dict(learning_rate="exp_stair", weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(learning_rate=1e-2)),
    ("RMSprop", dict(learning_rate=1e-2, rho=0.8, momentum=0.5, centered=True, epsilon=1e-5)),
    ("RMSprop", dict(learning_rate="piecewise", global_clipnorm=0.1)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-4,
                     clipnorm=0.2)),
    ("Adamax", dict(learning_rate=1e-2)),
    ("Adamax", dict(learning_rate="exp", beta_1=0.8, beta_2=0.95, epsilon=1e-4,
                    weight_decay=0.05)),
    ("Nadam", dict(learning_rate=1e-2)),
    ("Nadam", dict(learning_rate="cos_warm", beta_1=0.7, beta_2=0.95, epsilon=1e-5,
                   clipnorm=0.05)),
    ("Lion", dict(learning_rate=1e-3)),
    ("Lion", dict(learning_rate="piecewise", beta_1=0.5, beta_2=0.9, weight_decay=0.1,
                  clipvalue=0.02)),
]


def build_pair(module, cls, kwargs):
    kwargs = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, str):
        name, args = SCHEDULES[lr]
        kwargs["learning_rate"] = getattr(module.optimizers.schedules if module is keras
                                          else O.schedules, name)(**args)
    return getattr(module.optimizers, cls)(**kwargs)


def models(rng, loss):
    kmodel = keras.Sequential([keras.Input((6,)), keras.layers.Dense(7, activation="tanh"),
                               keras.layers.Dense(3, activation="softmax" if loss != "mse"
                                                  else None)])
    weights = randomise(kmodel, rng)
    model = Sequential([L.Input((6,)), L.Dense(7, activation="tanh"),
                        L.Dense(3, activation="softmax" if loss != "mse" else None)])
    set_keras_weights(model, weights)
    return kmodel, model


class _Namespace:
    optimizers = O


@pytest.mark.parametrize("loss", ["mse", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_training_matches_keras(rng, cls, kwargs, loss):
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.standard_normal((40, 3)).astype(np.float32) if loss == "mse" else \
        rng.integers(0, 3, 40)
    kmodel, model = models(rng, loss)
    kmodel.compile(optimizer=build_pair(keras, cls, kwargs), loss=loss)
    model.compile(optimizer=build_pair(_Namespace, cls, kwargs), loss=loss)
    kh = kmodel.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert model.optimizer.iterations == int(kmodel.optimizer.iterations) == 10
    assert_close(h["loss"], kh.history["loss"], what="losses")
    got = [model.layers[0].weight.data.T, model.layers[0].bias.data,
           model.layers[1].weight.data.T, model.layers[1].bias.data]
    start = kmodel.get_weights()
    for i, (g, k) in enumerate(zip(got, kmodel.get_weights())):
        assert_close(g, k, what=f"weight {i}")
    assert model.optimizer.learning_rate == pytest.approx(
        float(kmodel.optimizer.learning_rate), rel=1e-6)
    assert any(np.abs(s).max() > 0 for s in start)


@pytest.mark.parametrize("key", sorted(SCHEDULES))
def test_schedules_match_keras(key):
    name, args = SCHEDULES[key]
    ours = getattr(O.schedules, name)(**args)
    theirs = getattr(keras.optimizers.schedules, name)(**args)
    for step in range(12):
        assert ours(step) == pytest.approx(float(theirs(step)), rel=1e-6), step
    assert type(ours).from_config(ours.get_config())(7) == ours(7)


def test_keras_optimizers_are_built_without_parameters_and_bound_by_compile(rng):
    opt = O.Adam(learning_rate=1e-3)
    assert opt.params is None and opt.iterations == 0
    with pytest.raises(RuntimeError, match="Adam: not bound to parameters yet"):
        opt.step()
    model = Sequential([L.Dense(2)])
    model.compile(optimizer=opt, loss="mse")
    assert model.optimizer is None  # the model is not built yet
    model.fit(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), verbose=0)
    assert model.optimizer is opt and opt.params is not None and opt.iterations == 1
    other = Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match="already updated other parameters"):
        other.compile(optimizer=opt, loss="mse")
    with pytest.raises(TypeError, match="give an instance, e.g. Adam\\(learning_rate=...\\)"):
        model.compile(optimizer=O.Adam, loss="mse")


def test_learning_rate_can_be_read_and_set_but_not_over_a_schedule():
    opt = O.SGD(learning_rate=0.1)
    opt.learning_rate = 0.02
    assert opt.learning_rate == 0.02
    sched = O.SGD(learning_rate=O.ExponentialDecay(0.1, 10, 0.5))
    sched.iterations = 10
    assert sched.learning_rate == pytest.approx(0.05)
    with pytest.raises(TypeError, match="learning_rate: this SGD's learning rate is a schedule"):
        sched.learning_rate = 0.3
    assert O.Adam(learning_rate=lambda: 0.25).learning_rate == 0.25


def test_unsupported_and_bad_arguments_name_the_optimizer_and_argument():
    with pytest.raises(ValueError, match="Adam: use_ema=True is not supported"):
        O.Adam(use_ema=True)
    with pytest.raises(ValueError, match="SGD: gradient_accumulation_steps=4 is not supported"):
        O.SGD(gradient_accumulation_steps=4)
    with pytest.raises(ValueError, match="RMSprop: loss_scale_factor=128.0 is not supported"):
        O.RMSprop(loss_scale_factor=128.0)
    O.Adam(use_ema=False, loss_scale_factor=None)  # Keras' defaults are accepted
    with pytest.raises(TypeError, match="Adagrad: unexpected argument 'lr'"):
        O.Adagrad(lr=0.1)
    with pytest.raises(ValueError, match="Adam: clipnorm, clipvalue, global_clipnorm: give at "
                                         "most one"):
        O.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="clipnorm: expected a positive number"):
        O.Adam(clipnorm=0)
    with pytest.raises(ValueError, match="SGD: momentum: expected a number in \\[0, 1.0\\]"):
        O.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="Adam: beta_2"):
        O.Adam(beta_2=2.0)
    with pytest.raises(ValueError, match="Lion: beta_1: expected a number in \\(0, 1\\]"):
        O.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="Nadam: beta_2: expected a number in \\[0, 1.0\\]"):
        O.Nadam(beta_2=1.5)
    with pytest.raises(ValueError, match="Adamax: use_ema=True is not supported"):
        O.Adamax(use_ema=True)
    with pytest.raises(TypeError, match="learning_rate: expected a number"):
        O.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match="AdamW: weight_decay: expected a number, got None"):
        O.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="decay_steps: expected a number > 0"):
        O.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="expected one value more than boundaries"):
        O.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="boundaries: expected strictly increasing"):
        O.PiecewiseConstantDecay([3, 2], [0.1, 0.2, 0.3])
    model = Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match="the optimizer clips the gradients already"):
        model.compile(optimizer=O.Adam(clipnorm=1.0), loss="mse", clipvalue=0.5)


def test_names_still_give_rnnfast_optim_with_keras_defaults():
    model = Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    assert isinstance(model.optimizer, optim.Adam)
    assert not isinstance(model.optimizer, O.Optimizer)


@pytest.mark.parametrize("opt", [
    lambda: O.Adam(learning_rate=O.CosineDecay(1e-2, 20, warmup_target=0.05, warmup_steps=2),
                   amsgrad=True, clipnorm=1.0),
    lambda: O.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: O.RMSprop(learning_rate=O.PiecewiseConstantDecay([3], [1e-2, 1e-3]),
                      centered=True, momentum=0.2),
    lambda: O.Adagrad(initial_accumulator_value=0.3),
    lambda: O.AdamW(learning_rate=O.ExponentialDecay(1e-2, 4, 0.5, staircase=True)),
    lambda: O.Adamax(learning_rate=1e-2, beta_2=0.9),
    lambda: O.Nadam(learning_rate=O.ExponentialDecay(1e-2, 4, 0.5), beta_1=0.8),
    lambda: O.Lion(learning_rate=1e-3, beta_1=0.8, weight_decay=0.01)])
def test_saved_and_loaded_training_continues_identically(rng, tmp_path, opt):
    x, y = rng.standard_normal((24, 5)), rng.standard_normal((24, 2))
    model = Sequential([L.Input((5,)), L.Dense(4, activation="tanh", seed=1), L.Dense(2, seed=2)],
                       seed=3)
    model.compile(optimizer=opt(), loss="mse")
    model.fit(x, y, batch_size=5, epochs=2, verbose=0)
    loaded = load_model(model.save(tmp_path / "m"))
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 10
    h1 = model.fit(x, y, batch_size=5, epochs=2, verbose=0)
    h2 = loaded.fit(x, y, batch_size=5, epochs=2, verbose=0)
    assert h1["loss"] == h2["loss"]
    for w1, w2 in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_float64_parameters_train_in_float64(rng):
    layer = nn.Linear(3, 2, dtype=np.float64, seed=0)
    opt = O.Adam(learning_rate=0.1).build(layer.parameters())
    before = layer.weight.data.copy()
    layer.weight.grad = rng.standard_normal((2, 3))
    opt.step()
    assert layer.weight.data.dtype == np.float64
    # the first Adam step moves each weight by about lr * sign(grad)
    np.testing.assert_allclose(before - layer.weight.data, 0.1 * np.sign(layer.weight.grad),
                               rtol=1e-3)


def test_nadam_momentum_product_is_keras_after_many_steps_and_a_load(rng, tmp_path):
    """Nadam keeps the product of its momentum schedule (Keras' ``_u_product``) across steps;
    after a load it is recomputed from the step count: 25 steps, saved at 12, match Keras."""
    x = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.standard_normal((50, 3)).astype(np.float32)
    kmodel, model = models(rng, "mse")
    kmodel.compile(optimizer=keras.optimizers.Nadam(learning_rate=5e-3), loss="mse")
    model.compile(optimizer=O.Nadam(learning_rate=5e-3), loss="mse")
    kmodel.fit(x[:24], y[:24], batch_size=2, epochs=1, shuffle=False, verbose=0)
    model.fit(x[:24], y[:24], batch_size=2, epochs=1, shuffle=False, verbose=0)
    model = load_model(model.save(tmp_path / "nadam"))
    assert model.optimizer.iterations == 12
    kmodel.fit(x[24:], y[24:], batch_size=2, epochs=1, shuffle=False, verbose=0)
    model.fit(x[24:], y[24:], batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == int(kmodel.optimizer.iterations) == 25
    assert model.optimizer._product(np.dtype(np.float32)) == pytest.approx(
        float(kmodel.optimizer._u_product.numpy()), rel=1e-6)
    got = [model.layers[0].weight.data.T, model.layers[0].bias.data,
           model.layers[1].weight.data.T, model.layers[1].bias.data]
    for i, (g, k) in enumerate(zip(got, kmodel.get_weights())):
        assert_close(g, k, what=f"weight {i}")
