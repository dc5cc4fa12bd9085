"""Seq2Seq (bidirectional LSTM encoder, LSTM decoder with dot or additive attention): outputs
and every parameter gradient against a PyTorch implementation of the same math (float64 to
1e-10) and against finite differences; step-by-step decoding against the teacher-forced
forward; beam search (batched hypotheses) against exhaustive search; padding; bad input."""
import itertools
import pathlib
import sys

import numpy as np
import pytest

from rnnfast import generation, nn


def torch_twin(torch, model):
    """The same network in PyTorch with the model's weights (the benchmark's twin)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    try:
        from epochs_vs_torch import TorchSeq2Seq
    finally:
        sys.path.pop(0)
    return TorchSeq2Seq(model)


def batch(rng, B=3, S=6, T=5, src_vocab=17, tgt_vocab=19):
    """Post-padded sources of lengths S, S-2, ... (>= 1) and target inputs (start token 1)."""
    src = np.zeros((B, S), np.int64)
    for b in range(B):
        n = max(S - 2 * b, 1)
        src[b, :n] = rng.integers(1, src_vocab, n)
    tgt = rng.integers(1, tgt_vocab, (B, T))
    tgt[:, 0] = 1
    return src, tgt


def model_of(attention, dtype=np.float64, L=1, seed=0, **kw):
    args = dict(embedding_dim=5, hidden_size=7, num_layers=L, attention=attention)
    if attention == "additive":
        args["attention_dim"] = 6
    args.update(kw)
    return nn.Seq2Seq(17, 19, dtype=dtype, seed=seed, **args)


@pytest.mark.parametrize("attention", ["dot", "additive"])
@pytest.mark.parametrize("L", [1, 2])
def test_forward_and_backward_match_pytorch(attention, L, rng):
    torch = pytest.importorskip("torch")
    model = model_of(attention, L=L)
    twin = torch_twin(torch, model)
    src, tgt = batch(rng)
    logits = model(src, tgt)
    dlogits = rng.standard_normal(logits.shape)
    assert model.backward(dlogits) is None
    t_logits, t_weights = twin(torch.tensor(src), torch.tensor(tgt))
    (t_logits * torch.tensor(dlogits)).sum().backward()
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(model.attention_weights, t_weights.detach().numpy(), atol=1e-10,
                               rtol=0)
    grads = dict(twin.named_parameters())
    names = [name for name, _ in model.named_parameters()]
    assert sorted(names) == sorted(grads)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), atol=1e-10, rtol=0,
                                   err_msg=name)
    # padded source positions get weight exactly 0
    lengths = (src != 0).sum(1)
    for b, n in enumerate(lengths):
        assert np.all(model.attention_weights[b, :, n:] == 0)
        np.testing.assert_allclose(model.attention_weights[b].sum(-1), 1, rtol=0, atol=1e-12)


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_gradients_match_finite_differences(attention, rng):
    model = model_of(attention, L=2, embedding_dim=3, hidden_size=4)
    src, tgt = batch(rng, B=2, S=4, T=3)
    weights = rng.standard_normal(model(src, tgt).shape)

    def loss():
        return float(np.sum(model(src, tgt) * weights))
    model.zero_grad()
    loss()
    model.backward(weights)
    eps = 1e-6
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        picks = rng.choice(flat.size, min(4, flat.size), replace=False)
        if name.endswith("embedding.weight"):   # rows that are used (row 0 is padding)
            used = np.unique(src if name.startswith("src") else tgt)
            picks = [int(used[-1]) * p.shape[1] + j for j in range(p.shape[1])]
        for i in picks:
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - p.grad.reshape(-1)[i]) < 1e-7 * max(1, abs(numeric)), \
                (name, i, numeric, p.grad.reshape(-1)[i])


@pytest.mark.parametrize("attention", ["dot", "additive"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_decoding_equals_the_teacher_forced_forward(attention, dtype, rng):
    model = model_of(attention, dtype=dtype, L=2)
    src, tgt = batch(rng, B=3, S=6, T=5)
    model.eval()
    logits = model(src, tgt)
    expected = generation._log_softmax(logits)
    dec = generation.Seq2SeqDecoder(model, src)
    state = dec.initial_state(3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for t in range(tgt.shape[1]):
        log_probs, state = dec.step(tgt[:, t], state)
        assert log_probs.shape == (3, 19) and log_probs.dtype == np.float64
        np.testing.assert_allclose(log_probs, expected[:, t], atol=tol, rtol=0)
        np.testing.assert_allclose(dec.weights, model.attention_weights[:, t], atol=tol, rtol=0)
    # one source as k rows (beam search's batch), reordered
    one = generation.Seq2SeqDecoder(model, src[1])
    state = one.initial_state(4)
    lp, state = one.step(np.full(4, tgt[1, 0]), state)
    np.testing.assert_allclose(lp, np.repeat(expected[1:2, 0], 4, 0), atol=tol, rtol=0)
    state = one.reorder(state, [3, 0])
    lp, state = one.step(np.array([tgt[1, 1]] * 2), state)
    np.testing.assert_allclose(lp, np.repeat(expected[1:2, 1], 2, 0), atol=tol, rtol=0)


def test_trailing_padding_changes_nothing(rng):
    model = model_of("additive", L=1)
    src, tgt = batch(rng)
    wide = np.concatenate([src, np.zeros((3, 4), np.int64)], axis=1)
    np.testing.assert_allclose(model(wide, tgt), model(src, tgt), atol=1e-13, rtol=0)


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_beam_search_with_batched_hypotheses_is_exhaustive_when_wide(attention, rng):
    model = nn.Seq2Seq(9, 4, embedding_dim=4, hidden_size=5, attention=attention,
                       dtype=np.float64, seed=3)
    for p in model.parameters():
        p.data *= 3                    # peaked, distinct distributions
    src = np.array([2, 5, 7, 1])
    dec = generation.Seq2SeqDecoder(model, src)
    # 3 tokens after the start token 1 over a vocabulary of 4: width 16 keeps every prefix
    best = generation.beam_search(dec, [1], 3, beam_width=16, return_all=True)
    seqs = np.array(list(itertools.product(range(4), repeat=3)))
    tgt = np.concatenate([np.ones((len(seqs), 1), np.int64), seqs[:, :2]], axis=1)
    model.eval()
    lp = generation._log_softmax(model(np.repeat(src[None], len(seqs), 0), tgt))
    scores = np.take_along_axis(lp, seqs[..., None], axis=-1)[..., 0].sum(1)
    order = np.argsort(-scores, kind="stable")
    assert best[0][0] == list(seqs[order[0]])
    np.testing.assert_allclose(best[0][1], scores[order[0]], rtol=0, atol=1e-10)
    np.testing.assert_allclose([s for _, s in best], scores[order[:16]], rtol=0, atol=1e-10)
    # width 1 is greedy; a wider beam finds a sequence at least as likely
    greedy = generation.greedy(dec, [1], 3)
    assert generation.beam_search(dec, [1], 3, beam_width=1) == greedy
    assert scores[order[0]] >= scores[np.flatnonzero((seqs == greedy).all(1))[0]]


def test_end_token_and_length_normalisation(rng):
    model = model_of("dot", L=1)
    dec = generation.Seq2SeqDecoder(model, np.array([3, 4, 5]))
    out = generation.beam_search(dec, [1], 12, beam_width=5, end_token=2, length_penalty=1.0,
                                 return_all=True)
    for ids, _ in out:
        assert 2 not in ids[:-1] and len(ids) <= 12
    ranked = [s / max(len(ids), 1) for ids, s in out]
    assert ranked == sorted(ranked, reverse=True)


def test_bad_input():
    model = model_of("dot")
    src, tgt = np.array([[1, 2, 0]]), np.array([[1, 2]])
    with pytest.raises(ValueError, match="attention: expected 'dot' or 'additive'"):
        nn.Seq2Seq(5, 5, attention="general")
    with pytest.raises(ValueError, match="attention_dim: only for attention='additive'"):
        nn.Seq2Seq(5, 5, attention="dot", attention_dim=3)
    with pytest.raises(ValueError, match=r"tgt: expected the batch of src \(1\), got 2"):
        model(src, np.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"src: token ids must be in 0..16, got 17"):
        model(np.array([[17]]), tgt)
    with pytest.raises(TypeError, match="tgt: expected an integer array"):
        model(src, tgt.astype(float))
    with pytest.raises(ValueError, match=r"src: expected a 2-D array"):
        model(np.array([1, 2]), tgt)
    with pytest.raises(ValueError, match=r"dlogits: expected shape \(1, 2, 19\)"):
        model(src, tgt)
        model.backward(np.ones((1, 3, 19)))
    dec = generation.Seq2SeqDecoder(model, np.array([[1, 2], [3, 0]]))
    with pytest.raises(ValueError, match="batch: expected 2"):
        dec.initial_state(3)
    with pytest.raises(ValueError, match="tokens: expected a 1-D integer array of 2 ids"):
        dec.step(np.array([1]), dec.initial_state(2))
    with pytest.raises(TypeError, match="model: expected a Seq2Seq"):
        generation.Seq2SeqDecoder(object(), src)


@pytest.mark.parametrize("attention", ["dot", "additive"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_and_load_round_trip(attention, dtype, rng, tmp_path):
    """The config (a registered layer spec, checked on load) and the weights file rebuild the
    model: the same parameters bit for bit, the same logits and the same beam search."""
    from rnnfast.models import saving
    from rnnfast.nn.serialization import deserialize, serialize

    model = model_of(attention, dtype=dtype, L=2)
    src, tgt = batch(rng)
    model.train()
    model(src, tgt)                                    # a training step changes the weights
    model.backward(rng.standard_normal((3, 5, 19)))
    for p in model.parameters():
        p.data -= 0.1 * p.grad.astype(dtype)
    spec = serialize(model)
    assert spec["class_name"] == "nn.Seq2Seq" and spec["config"]["dtype"] == np.dtype(dtype).name
    path = saving.save_weights(model, tmp_path / "seq2seq.npz")
    loaded = deserialize(spec)
    assert not np.array_equal(loaded.output.weight.data, model.output.weight.data)
    saving.load_weights(loaded, path)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert set(ours) == set(theirs)
    for k in ours:
        assert theirs[k].dtype == ours[k].dtype and np.array_equal(theirs[k], ours[k]), k
    model.eval()
    loaded.eval()
    np.testing.assert_array_equal(loaded(src, tgt), model(src, tgt))
    beams = [generation.beam_search(generation.Seq2SeqDecoder(m, src[0]), [1], 6,
                                    beam_width=3, end_token=2) for m in (model, loaded)]
    assert beams[0] == beams[1]
    # a spec of another shape does not take these weights
    other = deserialize({"class_name": "nn.Seq2Seq",
                         "config": dict(spec["config"], hidden_size=8)})
    with pytest.raises(ValueError, match="shape"):
        saving.load_weights(other, path)
