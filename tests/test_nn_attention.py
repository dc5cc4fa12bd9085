"""Keras' Attention and AdditiveAttention layers: the forward against Keras 3 itself (torch
backend, run in a subprocess), the gradients against PyTorch's autograd of the same
math (float64, 1e-10), dropout, state and bad input."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from rnnfast.models import layers
from subprocess_env import PACKAGE_PARENT, python_env
from test_attention import torch_attention

KERAS_SCRIPT = r"""
import sys
import numpy as np
import keras
cases = np.load(sys.argv[1], allow_pickle=True)["cases"]
results = []
for case in cases:
    cls = getattr(keras.layers, case["layer"])
    layer = cls(dtype="float64", **case["config"])
    inputs = [case["query"], case["value"]] + ([case["key"]] if case["key"] is not None else [])
    mask = None
    if case["query_mask"] is not None or case["value_mask"] is not None:
        mask = [case["query_mask"], case["value_mask"]]
    layer(inputs, mask=mask)                       # build
    if case["weights"]:
        layer.set_weights(case["weights"])
    out, scores = layer(inputs, mask=mask, return_attention_scores=True,
                        use_causal_mask=case["causal"])
    results.append((np.asarray(out.detach().cpu()), np.asarray(scores.detach().cpu())))
np.savez(sys.argv[2], *[a for pair in results for a in pair])
"""


def keras_outputs(cases, tmp_path):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    src, dst = tmp_path / "cases.npz", tmp_path / "out.npz"
    np.savez(src, cases=np.array(cases, dtype=object))
    proc = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(src), str(dst)],
                          capture_output=True, text=True, timeout=300, cwd=PACKAGE_PARENT,
                          env=python_env(KERAS_BACKEND="torch"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(dst)
    return [(data[f"arr_{2 * i}"], data[f"arr_{2 * i + 1}"]) for i in range(len(cases))]


def make_layer(name, config, weights, D):
    layer = getattr(layers, name)(dtype=np.float64, **config)
    if name == "AdditiveAttention":
        layer.build(D)
    params = [p for _, p in layer.named_parameters()]
    for p, w in zip(params, weights):
        p.data[...] = w
    return layer


LAYER_CONFIGS = [
    ("Attention", {}),
    ("Attention", {"use_scale": True}),
    ("Attention", {"score_mode": "concat"}),
    ("Attention", {"score_mode": "concat", "use_scale": True}),
    ("AdditiveAttention", {}),
    ("AdditiveAttention", {"use_scale": False}),
]


def layer_weights(rng, name, config, D):
    """Random values for the layer's parameters, in Keras' get_weights() order."""
    if name == "AdditiveAttention":
        return [rng.standard_normal(D)] if config.get("use_scale", True) else []
    weights = []
    if config.get("use_scale"):
        weights.append(np.array(rng.uniform(0.5, 1.5)))
    if config.get("score_mode") == "concat":
        weights.append(np.array(rng.uniform(0.5, 1.5)))
    return weights


def test_forward_matches_keras(rng, tmp_path):
    cases = []
    B, Tq, Tv, D = 3, 4, 5, 6
    for name, config in LAYER_CONFIGS:
        for with_key, masks, causal in [(False, False, False), (True, True, False),
                                        (False, True, True), (True, False, True)]:
            vm = rng.random((B, Tv)) > 0.4
            vm[:, 0] = True                        # Keras needs an allowed key in every row
            qm = rng.random((B, Tq)) > 0.3
            cases.append({
                "layer": name, "config": config, "causal": causal,
                "query": rng.standard_normal((B, Tq, D)),
                "value": rng.standard_normal((B, Tv, D)),
                "key": rng.standard_normal((B, Tv, D)) if with_key else None,
                "query_mask": qm if masks else None, "value_mask": vm if masks else None,
                "weights": layer_weights(rng, name, config, D)})
    want = keras_outputs(cases, tmp_path)
    for case, (k_out, k_scores) in zip(cases, want):
        layer = make_layer(case["layer"], case["config"], case["weights"], D)
        inputs = [case["query"], case["value"]] + ([case["key"]] if case["key"] is not None
                                                   else [])
        mask = None if case["query_mask"] is None else [case["query_mask"], case["value_mask"]]
        out, scores = layer(inputs, mask=mask, return_attention_scores=True,
                            use_causal_mask=case["causal"])
        label = (case["layer"], case["config"], case["causal"], mask is not None)
        # Keras 3 on torch rounds matmul results to float32 even for float64 layers (its type
        # promotion maps float64 to float32 outside TensorFlow): hence 2e-6, not 1e-12
        np.testing.assert_allclose(out, k_out, rtol=0, atol=2e-6, err_msg=str(label))
        np.testing.assert_allclose(scores, k_scores, rtol=0, atol=2e-6, err_msg=str(label))


@pytest.mark.parametrize("name,config", LAYER_CONFIGS, ids=str)
@pytest.mark.parametrize("with_key", [False, True])
def test_gradients_match_pytorch(name, config, with_key, rng):
    torch = pytest.importorskip("torch")
    B, Tq, Tv, D = 2, 3, 4, 5
    q, v = rng.standard_normal((B, Tq, D)), rng.standard_normal((B, Tv, D))
    k = rng.standard_normal((B, Tv, D)) if with_key else None
    vm = rng.random((B, Tv)) > 0.4
    vm[:, 0] = True
    qm = rng.random((B, Tq)) > 0.3
    weights = layer_weights(rng, name, config, D)
    layer = make_layer(name, config, weights, D)
    inputs = [q, v] + ([k] if with_key else [])
    out, scores = layer(inputs, mask=[qm, vm], return_attention_scores=True,
                        use_causal_mask=True)
    g_out, g_s = rng.standard_normal(out.shape), rng.standard_normal(scores.shape)
    grads = layer.backward(g_out, g_s)
    assert len(grads) == len(inputs)

    tq, tv = torch.tensor(q, requires_grad=True), torch.tensor(v, requires_grad=True)
    tk = torch.tensor(k, requires_grad=True) if with_key else None
    tw = [torch.tensor(w, requires_grad=True) for w in weights]
    kw = {}
    if name == "AdditiveAttention":
        kind = "additive"
        if tw:
            kw["weight"] = tw[0]
    elif config.get("score_mode") == "concat":
        kind = "additive"
        if config.get("use_scale"):
            kw["scale"] = tw[0]
        kw["weight"] = tw[-1] * torch.ones(D, dtype=torch.float64)
    else:
        kind = "dot"
        if tw:
            kw["scale"] = tw[0]
    t_out, t_s = torch_attention(torch, kind, tq, tv, tk, value_mask=vm, query_mask=qm,
                                 causal=True, **kw)
    ((t_out * torch.tensor(g_out)).sum() + (t_s * torch.tensor(g_s)).sum()).backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), atol=1e-12, rtol=0)
    for mine, theirs in zip(grads, [tq, tv] + ([tk] if with_key else [])):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), atol=1e-10, rtol=0)
    for p, t in zip([p for _, p in layer.named_parameters()], tw):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), atol=1e-10, rtol=0)


def test_dropout_acts_in_training_mode_only(rng):
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 6, 4))
    layer = layers.Attention(dropout=0.5, seed=1, dtype=np.float64)
    out_eval = layer.eval()([q, v])
    layer.train()
    out, scores = layer([q, v], return_attention_scores=True)
    # the returned scores are before dropout (as Keras): the same as in eval mode
    _, scores_eval = layer.eval()([q, v], return_attention_scores=True)
    np.testing.assert_allclose(scores, scores_eval, atol=1e-15)
    assert not np.allclose(out, out_eval)
    layer.train()
    out_t = layer([q, v], training=False)         # Keras' training argument overrides the mode
    np.testing.assert_allclose(out_t, out_eval, atol=1e-15)
    # a dropped weight is zero times 1 / (1 - 0.5): the output is the kept weights, doubled
    layer2 = layers.Attention(dropout=0.5, seed=7, dtype=np.float64)
    out2, s2 = layer2([q, v], return_attention_scores=True)
    keep = np.random.default_rng(7).random((2, 3, 6)) >= 0.5
    np.testing.assert_allclose(out2, np.einsum("bij,bjd->bid", s2 * keep * 2.0, v), atol=1e-12)
    dq, dv = layer2.backward(np.ones_like(out2))
    assert dq.shape == q.shape and dv.shape == v.shape


def test_state_dict_and_parameters():
    att = layers.AdditiveAttention(seed=0)
    assert att.parameters() == []
    att([np.ones((1, 2, 8), np.float32), np.ones((1, 3, 8), np.float32)])
    assert att.scale.shape == (8,) and np.all(np.abs(att.scale.data) <= np.sqrt(3 / 8))
    fresh = layers.AdditiveAttention()
    fresh.load_state_dict(att.state_dict())
    np.testing.assert_array_equal(fresh.scale.data, att.scale.data)
    dot = layers.Attention(use_scale=True, score_mode="concat")
    assert sorted(dot.state_dict()) == ["concat_score_weight", "scale"]
    assert layers.Attention().parameters() == []


def test_bad_input(rng):
    att = layers.Attention()
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="inputs"):
        att(q)
    with pytest.raises(ValueError, match="inputs"):
        att([q])
    with pytest.raises(ValueError, match="mask"):
        att([q, q], mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="general")
    with pytest.raises(ValueError, match="dropout"):
        layers.Attention(dropout=1.5)
    with pytest.raises(TypeError, match="query"):
        att([np.ones((2, 3, 4), np.int64), q])
    with pytest.raises(ValueError, match="value_mask"):
        att([q, q], mask=[None, np.ones((2, 4), bool)])
    with pytest.raises(RuntimeError, match="backward"):
        layers.Attention().eval().backward(np.ones((2, 3, 4)))
