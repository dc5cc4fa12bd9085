"""Sequential.fit / evaluate with Keras' sample weights, and the padding mask of a many-to-many
model applied to its loss and metrics: values against NumPy computed from ``predict``, padded
targets that cannot change training, and clear errors for weights of the wrong shape."""
import functools

import numpy as np
import pytest

from rnnfast import losses, optim
from rnnfast.models import Sequential
from rnnfast.models import layers as L
from rnnfast.utils import pad_sequences


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sparse_ce(y, probs):
    p = np.clip(np.take_along_axis(probs, y[..., None], axis=-1)[..., 0], 1e-7, 1 - 1e-7)
    return -np.log(p)


def tagger(seed=0, mask_zero=True, classes=4):
    """Embedding -> LSTM(return_sequences) -> per-step softmax: a padded many-to-many model."""
    model = Sequential([L.Embedding(20, 8, mask_zero=mask_zero, seed=seed),
                        L.LSTM(8, return_sequences=True, seed=seed + 1),
                        L.TimeDistributed(L.Dense(classes, activation="softmax", seed=seed + 2))],
                       seed=seed)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=functools.partial(optim.SGD, lr=0.5), metrics=["accuracy"])
    return model


def padded_batch(rng, n=12, steps=7, padding="post"):
    lengths = rng.integers(1, steps + 1, n)
    seqs = [rng.integers(1, 20, k).tolist() for k in lengths]
    x = pad_sequences(seqs, maxlen=steps, padding=padding)
    y = rng.integers(0, 4, (n, steps))
    return x, y, x != 0


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_the_padding_mask_restricts_loss_and_metrics_to_real_steps(rng, padding):
    x, y, real = padded_batch(rng, padding=padding)
    model = tagger()
    probs = model.predict(x)
    loss, acc = model.evaluate(x, y, batch_size=5, verbose=0)
    l = sparse_ce(y, probs.astype(np.float64))
    # batches of 5, 5, 2: each batch's masked mean, weighted by its samples (Keras' tracker)
    want, hits = 0.0, (probs.argmax(-1) == y)
    for sl in (slice(0, 5), slice(5, 10), slice(10, 12)):
        want += (l[sl] * real[sl]).sum() / real[sl].sum() * (sl.stop - sl.start)
    assert abs(loss - want / len(x)) < 1e-6
    assert abs(acc - hits[real].mean()) < 1e-12
    w = rng.uniform(0.5, 2, len(x))
    loss_w, acc_w = model.evaluate(x, y, batch_size=len(x), sample_weight=w, verbose=0)
    assert abs(loss_w - (l * w[:, None] * real).sum() / real.sum()) < 1e-6
    ww = w[:, None] * real
    assert abs(acc_w - (hits * ww).sum() / ww.sum()) < 1e-12


def test_padded_targets_do_not_change_training(rng):
    x, y, real = padded_batch(rng)
    other = np.where(real, y, (y + 1) % 4)  # different labels on the padded steps only
    runs = []
    for targets in (y, other):
        model = tagger(seed=3)
        history = model.fit(x, targets, batch_size=4, epochs=2, shuffle=False, verbose=0)
        runs.append((history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    unmasked = tagger(seed=3, mask_zero=False)
    unmasked.fit(x, other, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][1], unmasked.get_weights()))


def test_per_step_weights_without_a_mask_follow_sum_over_batch_size(rng):
    x, y, real = padded_batch(rng)
    model = tagger(mask_zero=False)
    probs = model.predict(x).astype(np.float64)
    w = real.astype(np.float32)  # Keras' sample_weight_mode="temporal" way of masking
    loss, acc = model.evaluate(x, y, batch_size=len(x), sample_weight=w, verbose=0)
    assert abs(loss - (sparse_ce(y, probs) * w).sum() / w.size) < 1e-6
    assert abs(acc - (probs.argmax(-1) == y)[real].mean()) < 1e-12


def test_weighted_samples_train_like_their_subset(rng):
    x = rng.standard_normal((12, 5)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    keep = np.zeros(12, bool)
    keep[rng.permutation(12)[:4]] = True

    def trained(xs, ys, **kwargs):
        model = Sequential([L.Dense(6, activation="tanh", seed=0),
                            L.Dense(3, activation="softmax", seed=1)], seed=0)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=functools.partial(optim.SGD, lr=0.3))
        model.fit(xs, ys, batch_size=len(xs), epochs=3, shuffle=False, verbose=0, **kwargs)
        return model.get_weights()

    # weights 3 on 4 of 12 samples: sum(w l) / 12 is the mean loss of the 4
    weighted = trained(x, y, sample_weight=np.where(keep, 3.0, 0.0))
    subset = trained(x[keep], y[keep])
    for a, b in zip(weighted, subset):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_validation_weights(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    w = rng.uniform(0, 2, 40)
    model = Sequential([L.Dense(1, activation="sigmoid", seed=0)], seed=0)
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(x[:30], y[:30], sample_weight=w[:30], epochs=1, verbose=0,
                        validation_data=(x[30:], y[30:], w[30:]))
    want = model.evaluate(x[30:], y[30:], sample_weight=w[30:], verbose=0)
    assert history["val_loss"][0] == pytest.approx(want[0], abs=1e-7)
    assert history["val_accuracy"][0] == pytest.approx(want[1], abs=1e-12)
    split = Sequential([L.Dense(1, activation="sigmoid", seed=0)], seed=0)
    split.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = split.fit(x, y, sample_weight=w, epochs=1, verbose=0, validation_split=0.25,
                        shuffle=False)
    want = split.evaluate(x[30:], y[30:], sample_weight=w[30:], verbose=0)
    assert history["val_loss"][0] == pytest.approx(want[0], abs=1e-7)


def test_bad_sample_weights(rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = Sequential([L.Dense(3, activation="softmax", seed=0)], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match=r"sample_weight: expected 8 rows \(one per sample of x\)"):
        model.fit(x, y, sample_weight=np.ones(7), verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight: expected a shape that \(8,\)"):
        model.fit(x, y, sample_weight=np.ones((8, 3)), verbose=0)
    with pytest.raises(TypeError, match="sample_weight: expected numeric weights"):
        model.evaluate(x, y, sample_weight=["a"] * 8, verbose=0)
    with pytest.raises(ValueError, match="sample_weight: expected finite weights"):
        model.fit(x, y, sample_weight=np.full(8, np.inf), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data\[2\]: expected 2 rows"):
        model.fit(x, y, validation_data=(x[:2], y[:2], np.ones(3)), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data: expected a tuple \(x_val, y_val\)"):
        model.fit(x, y, validation_data=(x, y, None, None), verbose=0)
    model.fit(x, y, sample_weight=np.ones((8, 1)), verbose=0)  # a trailing axis of 1 is fine


def test_a_loss_with_the_two_argument_forward_still_trains(rng):
    class Halved(losses.MeanSquaredError):
        def forward(self, y_true, y_pred):
            return super().forward(y_true, y_pred) / 2

    x = rng.standard_normal((16, 3)).astype(np.float32)
    model = Sequential([L.Dense(1, seed=0)], seed=0)
    model.compile(loss=Halved(), optimizer="sgd")
    history = model.fit(x, x[:, :1], epochs=2, verbose=0)
    assert len(history["loss"]) == 2
