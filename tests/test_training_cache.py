"""What the training loop keeps between batches: every module's lists of its sub-modules and
parameters (``Module._tree``, made again whenever any module's registrations change) and of the
modules with penalties and constraints (``Module._modules_with``), the gradients the layers give
away (``Parameter.accumulate(..., owned=True)``), Keras' Adam's constants of a step (made once
per step and dtype, not per parameter); and what it no longer does per batch (the running means
in NumPy arrays, the logs nobody reads, the samples taken by fancy indexing, ``np.mean``).
Models train bitwise as with the lists made again at every call, every gradient copied, one Adam
kernel call per parameter (not one for all) and the loop's former per-batch code; no list goes stale when layers, parameters or sub-modules are
added, replaced or removed, when a module is copied, or when weights are frozen or the model
compiled again."""
import copy
import pickle

import numpy as np
import pytest

from rnnfast import losses, nn, optim
from rnnfast.models import Sequential, constraints, regularizers, training
from rnnfast.models.callbacks import Callback
from rnnfast.models.layers import (LSTM, Activation, Conv1D, Dense, Dropout, Embedding,
                                   MaxPooling1D)
from rnnfast.models.optimizers import Adam
from rnnfast.nn import module as module_mod
from rnnfast.nn.module import Module, Parameter


def imdb_like(seed=0, dtype="float32", rate=0.5):
    model = Sequential([
        Embedding(300, 24, seed=seed, dtype=dtype),
        Dropout(rate, seed=seed + 1),
        Conv1D(16, 5, padding="valid", activation="relu", seed=seed + 2, dtype=dtype,
               kernel_regularizer="l2", kernel_constraint="max_norm"),
        MaxPooling1D(pool_size=4),
        LSTM(12, seed=seed + 3, dtype=dtype, recurrent_regularizer="l1"),
        Dense(1, seed=seed + 4, dtype=dtype, bias_constraint="non_neg"),
        Activation("sigmoid"),
    ], seed=seed)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"],
                  clipnorm=1.0)
    return model


def char_like(seed=0, dtype="float32"):
    model = Sequential([Embedding(29, 8, seed=seed, dtype=dtype),
                        LSTM(16, seed=seed + 1, dtype=dtype),
                        Dense(29, activation="softmax", seed=seed + 2, dtype=dtype)], seed=seed)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=Adam(learning_rate=3e-3, clipnorm=5.0), metrics=["accuracy"])
    return model


def _data(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "imdb":
        return rng.integers(0, 300, (230, 37)), (rng.random(230) < 0.5).astype(np.float32)
    return rng.integers(0, 29, (203, 11)), rng.integers(0, 29, 203)


class _ArrayMeans:
    """The running means of the loss and metrics as the loop kept them before: NumPy float64
    arrays, each batch's pairs added as an array."""

    def __init__(self, names, multi):
        self.names = names
        self.multi = multi
        self.sums = np.zeros(len(names))
        self.counts = np.zeros(len(names))

    def add(self, loss_value, parts, n, metric_sums):
        pairs = [(loss_value * n, n)]
        if self.multi:
            pairs += [(v * n, n) for v in parts]
        pairs += list(metric_sums)
        self.sums += np.array([p[0] for p in pairs], dtype=np.float64)
        self.counts += np.array([p[1] for p in pairs], dtype=np.float64)

    def logs(self, prefix=""):
        if not self.counts[0]:
            return {}
        return {prefix + k: float(v / c) if c else 0.0
                for k, v, c in zip(self.names, self.sums, self.counts)}


def _walked_penalty(model):
    total = 0.0
    for _, module in model.named_modules():
        fn = getattr(module, "regularization_penalty", None)
        if callable(fn):
            total += fn()
    return total


def _walked_constraints(model):
    for _, module in model.named_modules():
        fn = getattr(module, "apply_constraints", None)
        if callable(fn):
            fn()


def _without_keeping(monkeypatch):
    """Every module's lists made again at every call; every gradient copied; Adam's
    constants made again for every parameter; the loop's former per-batch code (modules
    walked for penalties and constraints, means in arrays, fancy indexing, ``np.mean``)."""
    monkeypatch.setattr(regularizers, "penalty", _walked_penalty)
    monkeypatch.setattr(constraints, "apply", _walked_constraints)
    monkeypatch.setattr(training, "_Means", _ArrayMeans)
    monkeypatch.setattr(training, "_take",
                        lambda arrays, idx: [None if a is None else a[idx] for a in arrays])
    monkeypatch.setattr(losses, "_mean", lambda v: float(np.mean(v, dtype=np.float64)))
    tree, adam = Module._tree, Adam._adam_args

    def fresh(self):
        self.__dict__.pop("_tree_kept", None)
        return tree(self)

    def fresh_adam(self, *args):
        self.__dict__.pop("_step_constants", None)
        return adam(self, *args)

    def one_call_each(updates, rule):
        for w, g, m, v, v_max, c in updates:
            optim._adam_update(w, g, m, v, v_max, rule=rule,
                               **dict(zip(optim._ADAM_CONSTANTS, c)))

    accumulate = Parameter.accumulate
    monkeypatch.setattr(optim, "_adam_update_many", one_call_each)
    monkeypatch.setattr(Adam, "_adam_args", fresh_adam)
    monkeypatch.setattr(Module, "_tree", fresh)
    monkeypatch.setattr(Parameter, "accumulate",
                        lambda self, grad, owned=False: accumulate(self, grad))


class _BatchLogs(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(("begin", batch, dict(logs)))

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(("end", batch, dict(logs)))


@pytest.mark.parametrize("kind", ["imdb", "char"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("listened", [False, True])
def test_fit_bitwise_as_without_the_kept_lists(kind, dtype, listened):
    x, y = _data(kind)
    build = imdb_like if kind == "imdb" else char_like
    results = []
    for keep in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            if not keep:
                _without_keeping(mp)
            model = build(dtype=dtype)
            batches = _BatchLogs()
            history = model.fit(x, y, batch_size=50, epochs=2, verbose=0, validation_split=0.2,
                                callbacks=[batches] if listened else None)
            results.append((history["loss"], history["val_loss"], history.history,
                            batches.seen, model.evaluate(x, y, verbose=0),
                            model.predict(x[:40]), model.get_weights()))
    kept, fresh = results
    assert kept[:5] == fresh[:5]
    assert all(type(v) is float for logs in kept[2].values() for v in logs)
    assert len(kept[3]) == (2 * 2 * 4 if listened else 0)  # 2 epochs of 4 batches, 2 hooks
    assert all(type(v) is float for _, _, logs in kept[3] for v in logs.values())
    assert (kept[5] == fresh[5]).all()
    for a, b in zip(kept[6], fresh[6]):
        assert a.dtype == np.dtype(dtype)
        assert (a == b).all()


def functional_like():
    from rnnfast.models import Input, Model
    ids = Input(shape=(11,), dtype="int32")
    h = LSTM(16, seed=1)(Embedding(29, 8, seed=0)(ids))
    model = Model(ids, Dense(29, activation="softmax", seed=2)(Dropout(0.2, seed=3)(h)))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=Adam(clipnorm=1.0))
    return model


@pytest.mark.parametrize("kind", ["imdb", "char", "functional"])
def test_lists_not_made_again_within_fit(monkeypatch, kind):
    """After the first batch nothing registers anything: each batch's walks (modes,
    penalties, constraints, gradients, clipping) reuse the kept lists."""
    x, y = _data("imdb" if kind == "imdb" else "char")
    model = {"imdb": imdb_like, "char": char_like, "functional": functional_like}[kind]()
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    walks = []
    walk = Module._walk
    monkeypatch.setattr(Module, "_walk", lambda self: walks.append(self) or walk(self))
    token = module_mod._Structure.token
    model.fit(x, y, batch_size=50, epochs=2, verbose=0)
    assert module_mod._Structure.token is token
    assert walks == []


def _names(module):
    return [n for n, _ in module.named_modules()], [n for n, _ in module.named_parameters()]


def _walked(module):
    """The names of the modules and parameters, and the parameters, found by walking the
    registrations now (nothing kept)."""
    modules = list(module._walk())
    names, params, seen = [], [], set()
    for mod_name, m in modules:
        for name, p in m._parameters.items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                names.append(f"{mod_name}.{name}" if mod_name else name)
                params.append(p)
    return [n for n, _ in modules], names, params


class Leaf(Module):
    def __init__(self):
        super().__init__()
        self.w = Parameter(np.zeros(2))


class Branch(Module):
    def __init__(self):
        super().__init__()
        self.a = Leaf()
        self.b = Leaf()


CHANGES = {
    "attribute parameter": lambda t: setattr(t.a, "v", Parameter(np.ones(3))),
    "attribute module": lambda t: setattr(t.a, "sub", Leaf()),
    "parameter set to None": lambda t: setattr(t.a, "w", None),
    "module set to None": lambda t: setattr(t, "b", None),
    "register_parameter": lambda t: t.b.register_parameter("extra", Parameter(np.ones(1))),
    "dict item": lambda t: t._modules.__setitem__("c", Leaf()),
    "del item": lambda t: t._modules.__delitem__("a"),
    "pop": lambda t: t.a._parameters.pop("w"),
    "popitem": lambda t: t._modules.popitem(),
    "clear": lambda t: t.b._parameters.clear(),
    "update": lambda t: t._modules.update(d=Leaf()),
    "|=": lambda t: t._modules.__ior__({"e": Leaf()}),
    "setdefault": lambda t: t.a._parameters.setdefault("z", Parameter(np.ones(4))),
    "shared parameter": lambda t: setattr(t.b, "w", t.a.w),
    "replaced parameter": lambda t: setattr(t.a, "w", Parameter(np.ones(2))),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_registration_change_is_seen(change):
    outer = Module()
    outer.inner = Branch()  # the change is two levels below the module asked
    before = _names(outer)
    assert before == _walked(outer)[:2]
    CHANGES[change](outer.inner)
    assert _names(outer) == _walked(outer)[:2]
    assert _names(outer) != before or change == "replaced parameter"  # (another object)
    assert _names(outer.inner) == _walked(outer.inner)[:2]
    assert all(p is q for p, q in zip(outer.parameters(), _walked(outer)[2]))
    assert len(outer.parameters()) == len(_walked(outer)[2])


class Hooked(Module):
    def __init__(self, child=None):
        super().__init__()
        self.w = Parameter(np.zeros(2))
        if child is not None:
            self.child = child

    def hook(self):
        return self


def _walked_with(module, method):
    return [m for _, m in module.named_modules() if callable(getattr(m, method, None))]


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_modules_with_a_method_follow_registration_changes(change):
    """``_modules_with`` lists what a walk finds, in the walk's order, after any change."""
    outer = Hooked(Branch())
    outer.inner = outer.child
    outer.inner.a.h = Hooked()
    assert list(outer._modules_with("hook")) == _walked_with(outer, "hook") == \
        [outer, outer.inner.a.h]
    assert list(outer.inner._modules_with("hook")) == [outer.inner.a.h]
    CHANGES[change](outer.inner)
    outer.inner.h2 = Hooked(Hooked())  # (and one added after the change)
    assert list(outer._modules_with("hook")) == _walked_with(outer, "hook")
    assert list(outer.inner._modules_with("hook")) == _walked_with(outer.inner, "hook")
    assert outer._modules_with("missing") == ()


def test_modules_with_a_method_of_a_copy():
    outer = Hooked(Hooked())
    assert outer._modules_with("hook") == (outer, outer.child)
    other = copy.deepcopy(outer)
    assert other._modules_with("hook") == (other, other.child)
    assert outer._modules_with("hook") == (outer, outer.child)


def test_prefix_and_recurse_false():
    branch = Branch()
    branch.own = Parameter(np.ones(1))
    branch.alias = branch.own
    assert [n for n, _ in branch.named_modules("m")] == ["m", "m.a", "m.b"]
    assert [n for n, _ in branch.named_parameters("m")] == ["m.own", "m.a.w", "m.b.w"]
    assert [n for n, _ in branch.named_parameters("m", recurse=False)] == ["m.own"]
    assert branch.parameters(recurse=False) == [branch.own]


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_copies_list_their_own_modules(how):
    branch = Branch()
    branch.parameters()  # lists kept
    other = {"copy": copy.copy, "deepcopy": copy.deepcopy,
             "pickle": lambda m: pickle.loads(pickle.dumps(m))}[how](branch)
    modules = [m for _, m in other.named_modules()]
    assert modules[0] is other
    if how == "copy":  # the same registries: the same sub-modules
        assert modules[1:] == [branch.a, branch.b]
    else:
        assert modules[1] is other.a and modules[2] is other.b
        assert other.parameters() == [other.a.w, other.b.w]
        assert all(p is not q for p, q in zip(other.parameters(), branch.parameters()))
        other.c = Leaf()
        assert [n for n, _ in other.named_modules()] == ["", "a", "b", "c"]
        assert [n for n, _ in branch.named_modules()] == ["", "a", "b"]


def test_no_reference_cycle():
    """The kept lists hold the sub-modules, never the module itself: a model is freed by
    reference counting alone."""
    import gc
    import weakref
    gc.disable()
    try:
        model = imdb_like()
        x, y = _data("imdb")
        model.fit(x[:60], y[:60], batch_size=30, epochs=1, verbose=0)
        ref = weakref.ref(model)
        del model
        assert ref() is None
    finally:
        gc.enable()


def test_frozen_layer_between_fits_and_a_layer_added():
    x, y = _data("imdb")
    model = imdb_like()
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    lstm, conv = model.layers[4], model.layers[2]
    lstm.requires_grad_(False)
    frozen = [w.copy() for w in lstm.get_weights()]
    trained = [w.copy() for w in conv.get_weights()]
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert all((a == b).all() for a, b in zip(frozen, lstm.get_weights()))
    assert any((a != b).any() for a, b in zip(trained, conv.get_weights()))
    lstm.requires_grad_(True)
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert any((a != b).any() for a, b in zip(frozen, lstm.get_weights()))

    grown = char_like()
    xc, yc = _data("char")
    grown.fit(xc, yc, batch_size=50, epochs=1, verbose=0)
    extra = Dense(29, activation="softmax", seed=9)
    grown.add(extra)
    grown.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    assert any(p is extra.weight for p in grown.parameters())
    grown.fit(xc, yc, batch_size=50, epochs=1, verbose=0)
    before = extra.weight.data.copy()
    grown.fit(xc, yc, batch_size=50, epochs=1, verbose=0)
    assert (extra.weight.data != before).any()


def test_train_and_eval_reach_every_module():
    model = imdb_like()
    model.eval()
    assert all(not m.training for _, m in model.named_modules())
    model.layers[4].extra = nn.Dropout(0.1)  # a sub-module added after the lists were kept
    model.train()
    assert all(m.training for _, m in model.named_modules())
    assert model.layers[4].extra.training


def test_accumulate_takes_only_what_it_may():
    p = Parameter(np.zeros((2, 3), np.float32))
    g = np.ones((2, 3), np.float32)
    p.accumulate(g, owned=True)
    assert p.grad is g
    p.accumulate(np.full((2, 3), 2, np.float32), owned=True)  # added, not taken
    assert p.grad is g and (g == 3).all()
    for grad in (np.ones((2, 3), np.float64),            # another dtype
                 np.ones((4, 3), np.float32)[:2],         # a view
                 np.ones((3, 2), np.float32).T,           # a view (transposed)
                 np.ones((2, 3), np.float32)):            # not given away
        q = Parameter(np.zeros((2, 3), np.float32))
        readonly = np.ones((2, 3), np.float32)
        readonly.flags.writeable = False
        for given, owned in ((grad, grad.base is not None or grad.dtype != np.float32),
                             (readonly, True)):
            q.grad = None
            q.accumulate(given, owned=owned)
            assert q.grad is not given and q.grad.dtype == np.float32
            assert (q.grad == 1).all() and q.grad.flags.writeable
    frozen = Parameter(np.zeros(2), requires_grad=False)
    frozen.accumulate(np.ones(2), owned=True)
    assert frozen.grad is None
    with pytest.raises(ValueError, match="grad: expected shape"):
        p.accumulate(np.ones(3, np.float32), owned=True)


def test_layers_gradients_are_their_own_arrays():
    """Each parameter's gradient after a backward is its own array (none shared between
    two parameters), and a second backward adds to it."""
    x, y = _data("imdb")
    model = imdb_like(rate=0.0)  # (the same forward twice)
    model.fit(x[:50], y[:50], batch_size=50, epochs=1, verbose=0)
    model.train()
    out = model.forward(x[:20])
    model.zero_grad()
    model.backward(np.ones_like(out))
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    for i, a in enumerate(grads):
        for b in grads[i + 1:]:
            assert not np.shares_memory(a, b)
    first = [g.copy() for g in grads]
    model.forward(x[:20])
    model.backward(np.ones_like(out))
    for p, g in zip(model.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-5, atol=1e-6)


def test_adam_constants_per_step_and_dtype():
    """Keras' Adam over float32 and float64 parameters, a learning rate and betas changed
    between steps: bitwise the update with every constant made for each parameter."""
    runs = []
    for keep in (True, False):
        rng = np.random.default_rng(3)
        params = [Parameter(rng.standard_normal(s).astype(d)) for s, d in
                  (((3, 4), np.float32), ((5,), np.float64), ((2, 2), np.float32))]
        opt = Adam(learning_rate=0.01, clipnorm=0.5)
        opt.build(params)
        for step in range(6):
            if step == 3:
                opt.learning_rate, opt.beta_1 = 0.003, 0.8
            for p in params:
                p.grad = rng.standard_normal(p.shape).astype(p.dtype)
            if not keep:
                opt.__dict__.pop("_step_constants", None)
                for p in params:  # one parameter at a time, nothing kept between them
                    others = [q for q in params if q is not p]
                    saved = [q.grad for q in others]
                    for q in others:
                        q.grad = None
                    iterations = opt.iterations
                    opt.step()
                    opt.iterations = iterations
                    opt.__dict__.pop("_step_constants", None)
                    for q, g in zip(others, saved):
                        q.grad = g
                opt.iterations += 1
            else:
                opt.step()
        runs.append([p.data.copy() for p in params])
    for a, b in zip(*runs):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
