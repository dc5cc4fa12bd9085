"""Attention ops: the NumPy reference against central finite differences, the functional ops
(package GEMM) against the reference (float64 to 1e-10, float32 to 1e-4 / 1e-3), and both
against a PyTorch implementation of the same math (outputs and gradients, float64, 1e-10)."""

import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R

OPS = ["dot", "additive"]


def make_case(rng, kind, B=2, Tq=3, Tv=4, D=5, Dv=3, key=True, scale=True, weight=True,
              value_mask=True, query_mask=True, causal=False, dropout=False):
    """Inputs and options; every query keeps at least one allowed key (key 0 is never masked)."""
    if not key:
        Dv = D
    c = {"query": rng.standard_normal((B, Tq, D)),
         "value": rng.standard_normal((B, Tv, Dv)),
         "key": rng.standard_normal((B, Tv, D)) if key else None}
    opts = {"causal": causal}
    if scale:
        opts["scale"] = 0.7
    if weight and kind == "additive":
        opts["weight"] = rng.standard_normal(D)
    if value_mask:
        vm = rng.random((B, Tv)) > 0.4
        vm[:, 0] = True
        opts["value_mask"] = vm
    if query_mask:
        qm = rng.random((B, Tq)) > 0.3
        opts["query_mask"] = qm
    if dropout:
        opts["dropout_mask"] = (rng.random((B, Tq, Tv)) > 0.25) / 0.75
    return c, opts


def call(mod, kind, c, opts, training=True):
    fn = getattr(mod, f"{kind}_attention_forward")
    return fn(c["query"], c["value"], c["key"], training=training, **opts)


def backward(mod, kind, ctx, dout, dweights):
    return getattr(mod, f"{kind}_attention_backward")(ctx, dout, dweights)


def loss_grads(mod, kind, c, opts, g_out, g_w):
    out, w, ctx = call(mod, kind, c, opts)
    return out, w, backward(mod, kind, ctx, g_out, g_w)


CONFIGS = [dict(), dict(key=False), dict(causal=True), dict(dropout=True),
           dict(scale=False, weight=False, value_mask=False, query_mask=False),
           dict(Tq=1, B=1), dict(Tv=1, causal=True), dict(Tq=6, Tv=6, causal=True, key=False)]


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "all")
def test_reference_matches_finite_differences(kind, cfg, rng):
    c, opts = make_case(rng, kind, **cfg)
    out, w, _ = call(R, kind, c, opts, training=False)
    g_out, g_w = rng.standard_normal(out.shape), rng.standard_normal(w.shape)
    _, _, grads = loss_grads(R, kind, c, opts, g_out, g_w)

    def loss(cc, oo):
        o, ww, _ = call(R, kind, cc, oo, training=False)
        return np.sum(o * g_out) + np.sum(ww * g_w)

    eps = 1e-6
    targets = [("query", c), ("value", c), ("key", c), ("scale", opts), ("weight", opts)]
    for name, holder in targets:
        if holder.get(name) is None:
            # dot attention has no "weight"; any argument given as None gets None
            assert (name == "weight" and kind == "dot" and name not in grads) or \
                grads[name] is None
            continue
        base = np.array(holder[name], dtype=np.float64)
        num = np.zeros(base.shape)
        for idx in np.ndindex(base.shape):
            for sign in (1, -1):
                pert = base.copy()
                pert[idx] += sign * eps
                cc, oo = dict(c), dict(opts)
                (cc if holder is c else oo)[name] = pert if pert.shape else float(pert)
                num[idx] += sign * loss(cc, oo) / (2 * eps)
        got = np.asarray(grads[name])
        assert got.shape == base.shape, name
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("cfg", CONFIGS + [dict(B=3, Tq=17, Tv=13, D=19, Dv=11),
                                           dict(B=5, Tq=33, Tv=31, D=40, Dv=24, causal=True)],
                         ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_functional_matches_reference(kind, cfg, dtype, rng):
    c, opts = make_case(rng, kind, **cfg)
    ref_out, ref_w, ref_ctx = call(R, kind, c, opts)
    g_out, g_w = rng.standard_normal(ref_out.shape), rng.standard_normal(ref_w.shape)
    ref = backward(R, kind, ref_ctx, g_out, g_w)
    cast = {k: None if v is None else v.astype(dtype) for k, v in c.items()}
    copts = {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
             for k, v in opts.items()}
    out, w, ctx = call(F, kind, cast, copts)
    assert out.dtype == dtype and w.dtype == dtype
    got = backward(F, kind, ctx, g_out.astype(dtype), g_w.astype(dtype))
    tol_out, tol_grad = (1e-10, 1e-10) if dtype == np.float64 else (1e-4, 1e-3)

    def close(a, b, tol, name):
        b = np.asarray(b)
        err = np.max(np.abs(np.asarray(a, np.float64) - b)) / max(1.0, np.max(np.abs(b)))
        assert err < tol, (name, err)
    close(out, ref_out, tol_out, "out")
    close(w, ref_w, tol_out, "weights")
    assert set(got) == set(ref)
    for name, value in ref.items():
        if value is None:
            assert got[name] is None, name
        else:
            assert np.asarray(got[name]).dtype == dtype
            close(got[name], value, tol_grad, name)


def torch_attention(torch, kind, q, v, k, scale=None, weight=None, value_mask=None,
                    query_mask=None, causal=False, dropout_mask=None):
    """The same math in PyTorch (autograd gives the oracle's gradients)."""
    key = v if k is None else k
    if kind == "dot":
        s = q @ key.transpose(1, 2)
        if scale is not None:
            s = s * scale
    else:
        pre = q[:, :, None, :] + key[:, None, :, :]
        t = torch.tanh(pre if scale is None else scale * pre)
        s = (t * weight).sum(-1) if weight is not None else t.sum(-1)
    B, Tq, Tv = s.shape
    allowed = torch.ones(B, Tq, Tv, dtype=torch.bool)
    if value_mask is not None:
        allowed = allowed & torch.as_tensor(value_mask)[:, None, :]
    if causal:
        allowed = allowed & torch.tril(torch.ones(Tq, Tv, dtype=torch.bool))
    w = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
    used = w if dropout_mask is None else w * torch.as_tensor(dropout_mask)
    out = used @ v
    if query_mask is not None:
        out = out * torch.as_tensor(query_mask)[:, :, None].to(out.dtype)
    return out, w


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_functional_matches_pytorch_float64(kind, cfg, rng):
    torch = pytest.importorskip("torch")
    c, opts = make_case(rng, kind, **cfg)
    out, w, ctx = call(F, kind, c, opts)
    g_out, g_w = rng.standard_normal(out.shape), rng.standard_normal(w.shape)
    got = backward(F, kind, ctx, g_out, g_w)
    tensors = {k: None if v is None else torch.tensor(v, requires_grad=True)
               for k, v in c.items()}
    topts = dict(opts)
    for name in ("scale", "weight"):
        if name in topts:
            topts[name] = torch.tensor(topts[name], dtype=torch.float64, requires_grad=True)
    t_out, t_w = torch_attention(torch, kind, tensors["query"], tensors["value"],
                                 tensors["key"], **topts)
    ((t_out * torch.tensor(g_out)).sum() + (t_w * torch.tensor(g_w)).sum()).backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(w, t_w.detach().numpy(), rtol=0, atol=1e-10)
    pairs = [(got["query"], tensors["query"]), (got["value"], tensors["value"])]
    if tensors["key"] is not None:
        pairs.append((got["key"], tensors["key"]))
    for name in ("scale", "weight"):
        if name in topts:
            pairs.append((got[name], topts[name]))
    for mine, theirs in pairs:
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", OPS)
def test_masks_and_fully_masked_queries(kind, rng):
    c, opts = make_case(rng, kind, B=2, Tq=3, Tv=4, query_mask=False, value_mask=False)
    vm = np.array([[True, True, False, False], [False, False, False, False]])
    qm = np.array([[True, False, True], [True, True, True]])
    out, w, ctx = call(F, kind, c, dict(opts, value_mask=vm, query_mask=qm))
    assert np.all(w[0, :, 2:] == 0) and np.allclose(w[0].sum(-1), 1, atol=1e-14)
    assert np.all(w[1] == 0) and np.all(out[1] == 0)          # no allowed key: zeros
    assert np.all(out[0, 1] == 0)                              # masked query
    # padded keys change nothing: the values there can be anything
    c2 = {k: None if v is None else v.copy() for k, v in c.items()}
    c2["value"][0, 2:] = 1e6
    if c2["key"] is not None:
        c2["key"][0, 2:] = -1e6
    out2, w2, _ = call(F, kind, c2, dict(opts, value_mask=vm, query_mask=qm))
    np.testing.assert_array_equal(out2[0], out[0])
    grads = backward(F, kind, ctx, np.ones_like(out), None)
    assert np.all(grads["query"][1] == 0)
    assert np.all(np.isfinite(grads["value"]))
    # causal: query i sees keys 0..i
    _, wc, _ = call(F, kind, dict(c), dict(opts, causal=True), training=False)
    assert np.all(np.triu(np.ones((3, 4)), 1)[None] * wc == 0)
    np.testing.assert_allclose(wc[:, 0, 0], 1.0)


def test_backward_with_none_gradients_gives_zeros(rng):
    c, opts = make_case(rng, "dot")
    _, _, ctx = call(F, "dot", c, opts)
    grads = F.dot_attention_backward(ctx)
    assert all(v is None or not np.any(v) for v in grads.values())


@pytest.mark.parametrize("kind", OPS)
def test_bad_input(kind, rng):
    fwd = getattr(F, f"{kind}_attention_forward")
    bwd = getattr(F, f"{kind}_attention_backward")
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    with pytest.raises(ValueError, match="query"):
        fwd(q[0], v)
    with pytest.raises(ValueError, match="value"):
        fwd(q, v[:1])
    with pytest.raises(ValueError, match="value"):
        fwd(q, v[..., :3])                      # the key's depth must be query's
    with pytest.raises(ValueError, match="key"):
        fwd(q, v, v[:, :4])
    with pytest.raises(TypeError, match="value"):
        fwd(q, v.astype(np.float32))
    with pytest.raises(TypeError, match="query"):
        fwd(q.astype(np.int64), v)
    with pytest.raises(ValueError, match="value_mask"):
        fwd(q, v, value_mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="value_mask"):
        fwd(q, v, value_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="query_mask"):
        fwd(q, v, query_mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="dropout_mask"):
        fwd(q, v, dropout_mask=np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="scale"):
        fwd(q, v, scale=np.ones(2))
    with pytest.raises(ValueError, match="training=True"):
        bwd(None)
    with pytest.raises(TypeError, match="ctx"):
        bwd(object())
    other = "additive" if kind == "dot" else "dot"
    _, _, ctx = getattr(F, f"{other}_attention_forward")(q, v, training=True)
    with pytest.raises(ValueError, match=f"{other}_attention_forward"):
        bwd(ctx)
    _, _, ctx = fwd(q, v, training=True)
    with pytest.raises(ValueError, match="dout"):
        bwd(ctx, np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="dweights"):
        bwd(ctx, None, np.ones((2, 3, 4)))
    if kind == "additive":
        with pytest.raises(ValueError, match="weight"):
            fwd(q, v, weight=np.ones(3))


def test_inputs_are_not_modified(rng):
    for kind in OPS:
        c, opts = make_case(rng, kind, key=True)
        saved = {k: v.copy() for k, v in c.items()}
        out, w, ctx = call(F, kind, c, opts)
        backward(F, kind, ctx, np.ones_like(out), np.ones_like(w))
        for k in c:
            np.testing.assert_array_equal(c[k], saved[k])
