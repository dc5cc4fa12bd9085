"""Embedding: lookup, gradients (duplicates, padding_idx) against PyTorch and finite
differences, Keras' mask_zero and the lengths it gives a recurrent layer."""
import numpy as np
import pytest

from nn_cases import check_layer_gradients, rel_err
from rnnfast import nn


def test_lookup_and_gradient_with_repeated_ids(rng):
    emb = nn.Embedding(7, 3, dtype=np.float64, seed=0)
    ids = np.array([[1, 2, 1, 6], [0, 1, 6, 6]])
    np.testing.assert_array_equal(emb(ids), emb.weight.data[ids])
    check_layer_gradients(emb, ids, rng, wrt_x=False)
    assert emb.backward(rng.standard_normal((2, 4, 3))) is None


def test_matches_torch_with_padding_idx(rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.Embedding(9, 4, padding_idx=2)
    emb = nn.Embedding(9, 4, padding_idx=2)
    assert np.all(emb.weight.data[2] == 0)
    emb.load_state_dict(ref.state_dict())
    ids = rng.integers(0, 9, size=(5, 7))
    ids[0, :3] = 2
    out = ref(torch.from_numpy(ids))
    dy = rng.standard_normal(out.shape).astype(np.float32)
    (out * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_array_equal(emb(ids), out.detach().numpy())
    emb.backward(dy)
    assert np.all(emb.weight.grad[2] == 0)
    assert rel_err(emb.weight.grad, ref.weight.grad.numpy()) < 1e-6


def test_negative_padding_idx_counts_from_the_end():
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4


def test_mask_zero_gives_lengths_for_a_recurrent_layer(rng):
    emb = nn.Embedding(20, 4, mask_zero=True, dtype=np.float64)
    lstm = nn.LSTM(4, 3, batch_first=True, dtype=np.float64)
    ids = np.array([[5, 3, 9, 1], [7, 2, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    out, (h, c) = lstm(emb(ids), lengths=emb.lengths)
    np.testing.assert_array_equal(emb.mask, ids != 0)
    np.testing.assert_array_equal(emb.lengths, [4, 2, 1, 1])
    assert emb.lengths.dtype == np.int64
    _, (h1, _) = lstm(emb(ids[1:2, :2]))
    np.testing.assert_allclose(h[0, 1], h1[0, 0], rtol=1e-12)
    emb(np.array([[0, 4, 5]]))
    with pytest.raises(ValueError, match="row 0 has padding .* before a token"):
        emb.lengths
    emb(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="needs a 2-D"):
        emb.lengths
    plain = nn.Embedding(20, 4)
    plain(ids)
    assert plain.mask is None and plain.lengths is None


def test_mask_is_set_in_eval_mode_too():
    emb = nn.Embedding(5, 2, mask_zero=True).eval()
    emb(np.array([[1, 2, 0]]))
    np.testing.assert_array_equal(emb.lengths, [2])


def test_from_pretrained_is_frozen_by_default(rng):
    table = rng.standard_normal((6, 3))
    emb = nn.Embedding.from_pretrained(table)
    assert emb.weight.dtype == np.float64 and not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(np.array([5, 0])), table[[5, 0]])
    emb.backward(np.ones((2, 3)))
    assert emb.weight.grad is None
    trainable = nn.Embedding.from_pretrained(table.astype(np.float32), freeze=False)
    trainable(np.array([1]))
    trainable.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(trainable.weight.grad[1], 1)


def test_bad_arguments():
    emb = nn.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"x: token ids must be in 0..4 .*got 5"):
        emb(np.array([1, 5]))
    with pytest.raises(ValueError, match=r"got -1"):
        emb(np.array([-1, 2]))
    with pytest.raises(TypeError, match="x: expected an integer array"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="num_embeddings"):
        nn.Embedding(0, 2)
    emb(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 2, 2\)"):
        emb.backward(np.ones((1, 2, 3)))
