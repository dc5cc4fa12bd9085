"""The Module/Parameter base: registration, names, modes, gradients, state_dict loading."""
import numpy as np
import pytest

from rnnfast import nn


class Stack(nn.Module):
    """Two layers sharing nothing, plus a shared parameter registered twice."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, seed=0)
        self.rnn = nn.GRU(4, 3, batch_first=True, seed=0)
        self.head = nn.TimeDistributed(nn.Linear(3, 2, seed=0))
        self.scale = nn.Parameter(np.ones(2, np.float32))
        self.alias = self.scale


def test_parameter_basics():
    p = nn.Parameter(np.zeros((2, 3)))
    assert p.shape == (2, 3) and p.dtype == np.float64 and p.grad is None and p.ndim == 2
    p.accumulate(np.ones((2, 3)))
    p.accumulate(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(p.grad, 2 * np.ones((2, 3)))
    assert p.grad.dtype == np.float64
    with pytest.raises(ValueError, match=r"grad: expected shape \(2, 3\)"):
        p.accumulate(np.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Parameter(np.zeros(3, np.int64))
    frozen = nn.Parameter(np.zeros(2, np.float32), requires_grad=False)
    frozen.accumulate(np.ones(2))
    assert frozen.grad is None


def test_named_parameters_nested_and_deduplicated():
    m = Stack()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "emb.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                     "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.layer.weight", "head.layer.bias"]
    assert len(m.parameters()) == len(names)
    assert [n for n, _ in m.named_modules()] == ["", "emb", "rnn", "head", "head.layer"]
    assert list(m.state_dict()) == names
    assert m.alias is m.scale


def test_attribute_rules():
    lin = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="weight: expected a Parameter or None"):
        lin.weight = np.zeros((3, 2))
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lin.nothing


def test_train_eval_recurse_and_return_self():
    m = Stack()
    assert m.eval() is m
    assert not any(mod.training for _, mod in m.named_modules())
    assert m.train() is m
    assert all(mod.training for _, mod in m.named_modules())


def test_requires_grad_freezes_parameters(rng):
    lin = nn.Linear(3, 2)
    lin.requires_grad_(False)
    lin(rng.standard_normal((4, 3)))
    lin.backward(rng.standard_normal((4, 2)))
    assert lin.weight.grad is None and lin.bias.grad is None


def test_load_state_dict_checks_keys_and_shapes_before_changing_anything():
    m = Stack()
    before = m.state_dict()
    good = Stack().state_dict()
    bad = dict(good)
    del bad["rnn.bias_hh_l0"]
    bad["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys: \['rnn.bias_hh_l0'\].*unexpected keys: "
                                         r"\['extra'\]"):
        m.load_state_dict(bad)
    wrong = dict(good)
    wrong["emb.weight"] = np.zeros((10, 5))
    with pytest.raises(ValueError, match=r"state_dict\['emb.weight'\]: expected shape \(10, 4\), "
                                         r"got \(10, 5\)"):
        m.load_state_dict(wrong)
    wrong["emb.weight"] = np.array([["a"] * 4] * 10)
    with pytest.raises(TypeError, match=r"state_dict\['emb.weight'\]: expected a real numeric"):
        m.load_state_dict(wrong)
    with pytest.raises(TypeError, match="state_dict: expected a mapping"):
        m.load_state_dict([1, 2])
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_casts_and_reports():
    m = Stack()
    partial = {"head.layer.bias": [1, 2], "other": np.zeros(3)}
    result = m.load_state_dict(partial, strict=False)
    assert result.unexpected_keys == ["other"]
    assert "emb.weight" in result.missing_keys and "head.layer.bias" not in result.missing_keys
    assert m.head.layer.bias.dtype == np.float32
    np.testing.assert_array_equal(m.head.layer.bias.data, [1, 2])


def test_load_state_dict_takes_torch_tensors_even_with_requires_grad():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Linear(3, 2)
    lin = nn.Linear(3, 2)
    lin.load_state_dict(dict(ref.named_parameters()))
    np.testing.assert_array_equal(lin.weight.data, ref.weight.detach().numpy())


def test_repr_shows_the_tree():
    text = repr(Stack())
    assert text.startswith("Stack(\n  (emb): Embedding(10, 4)\n"
                           "  (rnn): GRU(4, 3, batch_first=True)")
    assert "(layer): Linear(in_features=3, out_features=2, bias=True)" in text


def test_base_module_forward_is_not_defined():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)
