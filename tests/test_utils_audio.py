"""mu_law_encode / mu_law_decode against the companding formula, and their round trips."""
import numpy as np
import pytest

from rnnfast.utils import mu_law_decode, mu_law_encode


def test_encode_follows_the_formula(rng):
    x = np.concatenate([rng.uniform(-1, 1, 1000), [-1.0, 0.0, 1.0, 1e-9, -1e-9]])
    mu = 255
    f = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
    expected = np.floor((f + 1) / 2 * mu + 0.5).astype(np.int64)
    ids = mu_law_encode(x)
    assert ids.dtype == np.int64 and ids.shape == x.shape
    np.testing.assert_array_equal(ids, expected)
    assert mu_law_encode(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    assert mu_law_encode(np.array([-5.0, 7.0])).tolist() == [0, 255]          # clipped


def test_decode_follows_the_formula():
    k = np.arange(256)
    f = 2 * k / 255 - 1
    expected = np.sign(f) * ((1 + 255) ** np.abs(f) - 1) / 255
    np.testing.assert_allclose(mu_law_decode(k), expected, rtol=1e-14, atol=1e-15)
    assert mu_law_decode(k)[[0, -1]] == pytest.approx([-1.0, 1.0], abs=1e-14)
    assert mu_law_decode(k, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("channels", [2, 16, 256, 1024])
def test_round_trips(channels, rng):
    k = np.arange(channels)
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(k, channels), channels), k)
    # encode -> decode is within half a step of the companded value
    x = rng.uniform(-1, 1, 5000)
    mu = channels - 1
    back = mu_law_decode(mu_law_encode(x, channels), channels)
    fx = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    fb = np.sign(back) * np.log1p(mu * np.abs(back)) / np.log1p(mu)
    assert np.max(np.abs(fx - fb)) <= 1.0 / mu + 1e-12
    if channels == 256:
        # fine steps near 0, coarse near +-1: half a step of f is 1/255, and dx/df is
        # ln(256) (1 + 255 |x|) / 255: 0.0772 at |x| = 0.01 (error <= 3.0e-4), 5.57 at |x| = 1
        # (error <= 0.0218)
        small = np.abs(x) < 0.01
        assert np.max(np.abs(back - x)[small]) <= 0.0772 / 255 + 1e-9
        assert np.max(np.abs(back - x)) <= 5.57 / 255 + 1e-6


def test_bad_input():
    with pytest.raises(TypeError, match="ids"):
        mu_law_decode(np.array([0.5]))
    with pytest.raises(ValueError, match="ids"):
        mu_law_decode(np.array([256]))
    with pytest.raises(ValueError, match="quantization_channels"):
        mu_law_encode(np.zeros(3), 1)
    with pytest.raises(TypeError, match="quantization_channels"):
        mu_law_encode(np.zeros(3), 256.0)
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(np.array([np.nan]))
    with pytest.raises(TypeError, match="x"):
        mu_law_encode(np.array(["a"]))
