"""Optimisers, clipping and schedules against torch.optim / torch.nn.utils step for step."""
import numpy as np
import pytest

from rnnfast import nn
from rnnfast import optim

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 2, 3)]

CONFIGS = [  # (rnnfast class, torch class, keyword arguments)
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5)),
]


def make_params(rng, dtype):
    data = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(d) for d in data]
    ref = [torch.nn.Parameter(torch.from_numpy(d.copy())) for d in data]
    return ours, ref


def set_grads(rng, ours, ref, dtype, skip=None):
    for i, (p, q) in enumerate(zip(ours, ref)):
        if i == skip:
            p.grad, q.grad = None, None
            continue
        g = rng.standard_normal(p.shape).astype(dtype)
        p.grad = g.copy()
        q.grad = torch.from_numpy(g.copy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{c[0]}{i}" for i, c in enumerate(CONFIGS)])
def test_steps_match_torch(rng, name, kwargs, dtype):
    ours, ref = make_params(rng, dtype)
    opt = getattr(optim, name)(ours, **kwargs)
    topt = getattr(torch.optim, name)(ref, **kwargs)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for step in range(6):
        set_grads(rng, ours, ref, dtype, skip=1 if step == 2 else None)
        opt.step()
        topt.step()
        for p, q in zip(ours, ref):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=tol, atol=tol)


def test_parameter_groups_match_torch(rng):
    ours, ref = make_params(rng, np.float64)
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5, "momentum": 0.9}],
                    lr=0.1)
    topt = torch.optim.SGD([{"params": ref[:1]}, {"params": ref[1:], "lr": 0.5,
                                                  "momentum": 0.9}], lr=0.1)
    for _ in range(3):
        set_grads(rng, ours, ref, np.float64)
        opt.step()
        topt.step()
    for p, q in zip(ours, ref):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12)


def test_zero_grad_and_a_model(rng):
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.parameters(), lr=0.1)
    x = rng.standard_normal((8, 3))
    before = lin.weight.data.copy()
    lin(x)
    lin.backward(rng.standard_normal((8, 2)))
    opt.step()
    assert np.all(lin.weight.data != before)
    opt.zero_grad()
    assert lin.weight.grad is None


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(rng, norm_type, max_norm):
    ours, ref = make_params(rng, np.float64)
    set_grads(rng, ours, ref, np.float64, skip=2)
    total = optim.clip_grad_norm_(ours, max_norm, norm_type)
    want = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    assert abs(total - want.item()) < 1e-12
    for p, q in zip(ours, ref):
        if q.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_torch(rng):
    ours, ref = make_params(rng, np.float32)
    set_grads(rng, ours, ref, np.float32)
    optim.clip_grad_value_(ours, 0.3)
    torch.nn.utils.clip_grad_value_(ref, 0.3)
    for p, q in zip(ours, ref):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())


def test_clip_grad_norm_non_finite(rng):
    p = nn.Parameter(np.ones(3))
    p.grad = np.array([1.0, np.inf, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("make", [
    lambda o, m: m.StepLR(o, step_size=3, gamma=0.5),
    lambda o, m: m.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
    lambda o, m: m.CosineAnnealingLR(o, T_max=4),
], ids=["step", "cosine_eta_min", "cosine"])
def test_schedules_match_torch(rng, make):
    ours, ref = make_params(rng, np.float64)
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.3}], lr=0.1)
    topt = torch.optim.SGD([{"params": ref[:1]}, {"params": ref[1:], "lr": 0.3}], lr=0.1)
    sched, tsched = make(opt, optim), make(topt, torch.optim.lr_scheduler)
    for epoch in range(12):
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12,
                                   atol=1e-15)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        set_grads(rng, ours, ref, np.float64)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()


def test_bad_arguments(rng):
    params = [nn.Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="lr: expected a number >= 0"):
        optim.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="nesterov: needs momentum"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas"):
        optim.Adam(params, betas=0.9)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.RMSprop([])
    with pytest.raises(TypeError, match="params: expected an iterable"):
        optim.Adam(params[0])
    with pytest.raises(TypeError, match="Parameter objects"):
        optim.Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="unknown option"):
        optim.SGD([{"params": params, "betas": (0.9, 0.9)}], lr=0.1)
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": params}, {"params": params}], lr=0.1)
    with pytest.raises(TypeError, match="optimizer"):
        optim.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="T_max"):
        optim.CosineAnnealingLR(optim.SGD(params), T_max=0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm_(params, 1.0, norm_type=0)
