"""Generation: single recurrent steps against whole-sequence forwards; greedy, sampling and
beam search on a hand-built Markov model with known answers and on a random LSTM model
against brute-force enumeration."""
import itertools

import numpy as np
import pytest

from rnnfast import generation as G
from rnnfast import nn
from rnnfast.models import Sequential
from rnnfast.models import layers as L


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("make", [
    lambda: nn.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0),
    lambda: nn.GRU(3, 4, reset_after=False, dtype=np.float64, seed=0),
    lambda: nn.RNN(3, 4, nonlinearity="relu", bias=False, dtype=np.float64, seed=0),
], ids=["lstm2", "gru", "rnn"])
def test_steps_match_the_sequence_forward(rng, make):
    layer = make().eval()
    x = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((layer.num_layers, 2, 4))
    state0 = (h0, rng.standard_normal(h0.shape)) if isinstance(layer, nn.LSTM) else h0
    want_y, want_state = layer(x, state0)
    stepper = G.RecurrentStep(layer)
    state = state0
    for t in range(6):
        y, state = stepper(x[t], state)
        np.testing.assert_allclose(y, want_y[t], rtol=0, atol=1e-12)
    for got, want in zip(as_tuple(state), as_tuple(want_state)):
        assert got.shape == want.shape == (layer.num_layers, 2, 4)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_keras_layer_steps_and_zero_state(rng):
    lstm = L.LSTM(5, input_dim=3, seed=0)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    want = lstm(x)
    state = None
    for t in range(4):
        y, state = G.step(lstm, x[:, t], state)
    np.testing.assert_allclose(y, want, atol=1e-5)
    assert state[0].shape == (2, 5) and state[0].dtype == np.float32
    h0 = G.RecurrentStep(lstm).initial_state(2)
    y0, _ = G.step(lstm, x[:, 0], h0)
    np.testing.assert_array_equal(y0, G.step(lstm, x[:, 0])[0])


def markov_model(P):
    """Embedding (identity) -> SimpleRNN(relu, w_ih = I, w_hh = 0) -> Dense(log P) softmax:
    the next-token distribution after token i is row i of P."""
    V = len(P)
    model = Sequential([L.Embedding(V, V), L.SimpleRNN(V, activation="relu"),
                        L.Dense(V, activation="softmax")])
    model.build((None, 1))
    emb, rnn, dense = model.layers
    emb.weight.data[...] = np.eye(V)
    rnn.rnn.weight_ih_l0.data[...] = np.eye(V)
    rnn.rnn.weight_hh_l0.data[...] = 0
    rnn.rnn.bias_ih_l0.data[...] = 0  # Keras' single bias
    dense.weight.data[...] = np.log(np.asarray(P)).T
    dense.bias.data[...] = 0
    return model


START, A, B, END = range(4)
P = np.array([[1e-6, 0.5, 0.4, 0.1 - 1e-6],      # after START: A is likelier than B ...
              [1e-6, 0.34, 0.33, 0.33 - 1e-6],   # ... but nothing is likely after A,
              [1e-6, 0.05, 0.05, 0.9 - 1e-6],    # while B is almost surely followed by END
              [0.25, 0.25, 0.25, 0.25]])


def test_hand_built_model_gives_its_transition_rows():
    lm = G.LanguageModel(markov_model(P))
    log_probs, _ = lm.step(np.array([START, A, B]), lm.initial_state(3))
    np.testing.assert_allclose(np.exp(log_probs), P[:3], atol=1e-6)


def test_greedy_and_beam_search_on_the_hand_built_model():
    model = markov_model(P)
    assert G.greedy(model, [START], 2) == [A, A]  # 0.5 * 0.34 = 0.17
    best = G.beam_search(model, [START], 2, beam_width=2)
    assert best == [B, END]  # 0.4 * 0.9 = 0.36, the known best sequence
    beams = G.beam_search(model, [START], 2, beam_width=2, return_all=True)
    assert beams[0][0] == [B, END] and beams[0][1] == pytest.approx(np.log(0.36), abs=1e-5)
    assert beams[1][0] == [A, A] and beams[1][1] == pytest.approx(np.log(0.17), abs=1e-5)
    # with end_token, finished beams stop growing and keep their score
    stopped = G.beam_search(model, [START], 5, beam_width=3, end_token=END, return_all=True)
    assert stopped[0] == ([B, END], pytest.approx(np.log(0.36), abs=1e-5))
    assert G.greedy(model, [START, B], 5, end_token=END) == [END]


def test_sampling_follows_the_distribution_and_the_seed():
    model = markov_model(P)
    lm = G.LanguageModel(model)
    draws = [G.sample(lm, [START], 1, seed=s)[0] for s in range(1500)]
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, P[START], atol=0.04)
    assert G.sample(lm, [START], 6, seed=7) == G.sample(lm, [START], 6, seed=7)
    assert G.sample(lm, [START], 3, temperature=0) == G.greedy(lm, [START], 3)
    assert G.sample(lm, [START], 3, temperature=1e-4, seed=1) == [A, A, A]
    cold = [G.sample(lm, [START], 1, temperature=0.1, seed=s)[0] for s in range(300)]
    assert np.mean(np.array(cold) == A) > 0.8  # p(A) = 0.90 at this temperature, 0.5 at 1
    assert set(G.sample(lm, [START], 1, top_k=1, seed=s)[0] for s in range(20)) == {A}


def brute_force_best(model, prompt, steps, vocab):
    """The most likely continuation by enumeration, scored with whole-sequence forwards."""
    best, best_score = None, -np.inf
    for seq in itertools.product(range(vocab), repeat=steps):
        score = 0.0
        for t in range(steps):
            context = np.array([list(prompt) + list(seq[:t])])
            score += np.log(model.predict(context)[0, seq[t]])
        if score > best_score:
            best, best_score = list(seq), score
    return best, best_score


def test_exhaustive_beam_search_finds_the_best_sequence_of_an_lstm_model():
    V, steps = 3, 3
    model = Sequential([L.Embedding(V, 4, seed=0), L.LSTM(6, seed=1),
                        L.Dense(V, activation="softmax", seed=2)])
    for p in model.parameters():
        p.data *= 4  # sharper, history-dependent distributions
    prompt = [1, 0]
    want, want_score = brute_force_best(model, prompt, steps, V)
    beams = G.beam_search(model, prompt, steps, beam_width=V ** steps, return_all=True)
    assert len(beams) == V ** steps
    assert beams[0][0] == want and beams[0][1] == pytest.approx(want_score, abs=1e-4)


def test_window_language_model_matches_the_notes_loop():
    model = Sequential([L.Embedding(5, 3, seed=0), L.LSTM(4, seed=1),
                        L.Dense(5, activation="softmax", seed=2)])
    lm = G.WindowLanguageModel(model, window=4)
    generated = G.greedy(lm, [2, 3], 3)
    words = [2, 3]  # the study notes: pad the history, predict, take the arg-max, repeat
    from rnnfast.utils import pad_sequences
    for _ in range(3):
        words.append(int(np.argmax(model.predict(pad_sequences([words], maxlen=4)))))
    assert generated == words[2:]
    onehot = Sequential([L.LSTM(4, input_dim=5, seed=0), L.Dense(5, activation="softmax")])
    assert len(G.beam_search(G.WindowLanguageModel(onehot, 3, one_hot=True, vocab_size=5),
                             [1], 2, beam_width=2)) == 2


def test_bad_arguments():
    model = markov_model(P)
    with pytest.raises(ValueError, match="prompt: expected a non-empty list"):
        G.greedy(model, [], 3)
    with pytest.raises(ValueError, match="beam_width: expected an int >= 1"):
        G.beam_search(model, [0], 3, beam_width=0)
    with pytest.raises(ValueError, match="temperature: expected a number >= 0"):
        G.sample(model, [0], 3, temperature=-1)
    with pytest.raises(ValueError, match="tokens: ids must be in 0..3"):
        G.greedy(model, [7], 1)
    with pytest.raises(ValueError, match="bidirectional layer cannot run step by step"):
        G.RecurrentStep(nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, input_size\)"):
        G.step(nn.LSTM(2, 3), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"state\[1\]: expected shape \(1, 2, 3\)"):
        G.step(nn.LSTM(2, 3), np.zeros((2, 2)), (np.zeros((1, 2, 3)), np.zeros((2, 3))))
    conv = Sequential([L.Embedding(4, 2), L.Conv1D(2, 1), L.LSTM(2)])
    with pytest.raises(ValueError, match="layer 'conv1d' .* cannot run one step at a time"):
        G.LanguageModel(conv)
    with pytest.raises(TypeError, match="lm: expected a Sequential or an object with step"):
        G.greedy(object(), [0], 1)
