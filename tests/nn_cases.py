"""Shared helpers of the layer, loss and optimiser tests: central finite differences."""
import numpy as np

# DESIGN.md, numerical contract: max abs error / max(1, max |ref|).
TOL = {np.float64: (1e-10, 1e-10), np.float32: (1e-4, 1e-3)}  # (outputs, gradients)
FD_TOL = 1e-6  # analytic vs central-difference gradients, float64


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.size == 0:
        return 0.0
    return np.abs(got - want).max() / max(1.0, np.abs(want).max())


def numeric_grad(loss, array, eps=1e-6):
    """d loss() / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros(array.shape, np.float64)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        plus = loss()
        array[idx] = old - eps
        minus = loss()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def check_layer_gradients(layer, x, rng, call=None, wrt_x=True):
    """Backward of ``call(x)`` (default ``layer(x)``) against finite differences of
    ``sum(call(x) * dy)`` for a random dy: the input gradient and every parameter's."""
    call = call or layer
    y = call(x)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)

    def loss():
        return float(np.sum(call(x) * dy))

    if wrt_x:
        assert rel_err(dx, numeric_grad(loss, x)) < FD_TOL
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert rel_err(p.grad, numeric_grad(loss, p.data)) < FD_TOL, name
    return dx
