"""Keras' merge layers for functional models: each is called on a list of tensors and returns
one: ``Concatenate(axis=-1)``, ``Add()``, ``Subtract()`` (two inputs), ``Multiply()``,
``Average()``, ``Maximum()``, ``Minimum()``, and ``Dot(axes, normalize=False)`` (two inputs).

The element-wise merges broadcast as Keras does only between equal shapes: every input must
have the same shape (ValueError naming the shapes otherwise). ``forward(inputs)`` takes a
list of arrays, ``backward(dy)`` returns the list of their gradients. Padding masks are
merged Keras' way: the logical AND of the inputs' masks (an input without a mask counts as
all True), concatenated along the time axis when ``Concatenate`` joins on it.
"""
import numpy as np

from rnnfast import _C
from rnnfast.nn.module import KerasWeightless, Module, as_float_input, check_grad
from rnnfast.nn.serialization import register_layers

EPSILON = 1e-7  # Keras' backend epsilon: Dot(normalize=True) divides by max(|x|, EPSILON)

__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Merge", "Minimum", "Multiply",
           "Subtract"]


class Merge(KerasWeightless, Module):
    """Base of the merge layers: a list of at least ``min_inputs`` arrays in, one out."""

    min_inputs = 2
    max_inputs = None

    def __init__(self, name=None):
        super().__init__()
        self.name = name

    def _inputs(self, inputs):
        kind = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs: {kind} takes a list of arrays, got "
                            f"{type(inputs).__name__}")
        count = len(inputs)
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            want = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                    else f"at least {self.min_inputs}")
            raise ValueError(f"inputs: {kind} takes {want} inputs, got {count}")
        arrays = [as_float_input(a, f"inputs[{i}]") for i, a in enumerate(inputs)]
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) > 1:
            raise TypeError(f"inputs: {kind} takes inputs of one dtype, got "
                            f"{sorted(d.name for d in dtypes)}")
        return arrays

    def _same_shapes(self, arrays):
        shapes = [a.shape for a in arrays]
        if len(set(shapes)) > 1:
            raise ValueError(f"inputs: {type(self).__name__} takes inputs of the same shape, got "
                             f"{shapes}")

    def compute_mask(self, masks, shapes):
        """The output's padding mask from the inputs' masks (None: no mask)."""
        present = [m for m in masks if m is not None]
        if not present:
            return None
        out = np.ones_like(present[0], dtype=bool)
        for m in present:
            if m.shape != out.shape:
                raise ValueError(f"mask: {type(self).__name__} cannot merge masks of shapes "
                                 f"{[None if m is None else m.shape for m in masks]}")
            out = out & m
        return out

    def get_config(self):
        return {}


class _Elementwise(Merge):
    def forward(self, inputs):
        arrays = self._inputs(inputs)
        self._same_shapes(arrays)
        y, cache = self._combine(arrays)
        self._keep((cache, arrays[0].shape, arrays[0].dtype, len(arrays)))
        return y

    def backward(self, dy):
        cache, shape, dtype, count = self._saved()
        dy = check_grad(dy, "dy", shape, dtype)
        return self._split(cache, dy, count)


class Add(_Elementwise):
    """Keras' ``Add()``: the sum of the inputs."""

    def _combine(self, arrays):
        y = arrays[0].copy()
        for a in arrays[1:]:
            y += a
        return y, None

    def _split(self, cache, dy, count):
        return [dy.copy() for _ in range(count)]


class Subtract(_Elementwise):
    """Keras' ``Subtract()``: ``inputs[0] - inputs[1]``."""

    max_inputs = 2

    def _combine(self, arrays):
        return arrays[0] - arrays[1], None

    def _split(self, cache, dy, count):
        return [dy.copy(), -dy]


class Multiply(_Elementwise):
    """Keras' ``Multiply()``: the element-wise product of the inputs."""

    def _combine(self, arrays):
        y = arrays[0].copy()
        for a in arrays[1:]:
            y *= a
        return y, arrays

    def _split(self, arrays, dy, count):
        grads = []
        for i in range(count):
            g = dy.copy()
            for j, a in enumerate(arrays):
                if j != i:
                    g *= a
            grads.append(g)
        return grads


class Average(_Elementwise):
    """Keras' ``Average()``: the mean of the inputs."""

    def _combine(self, arrays):
        y = arrays[0].copy()
        for a in arrays[1:]:
            y += a
        y /= y.dtype.type(len(arrays))
        return y, None

    def _split(self, cache, dy, count):
        g = dy / dy.dtype.type(count)
        return [g.copy() for _ in range(count)]


class _Extremum(_Elementwise):
    pick = None

    def _combine(self, arrays):
        stacked = np.stack(arrays)
        index = self.pick(stacked, axis=0)  # the first input wins ties (Keras' gradient too)
        return np.take_along_axis(stacked, index[None], axis=0)[0], index

    def _split(self, index, dy, count):
        return [np.where(index == i, dy, dy.dtype.type(0)) for i in range(count)]


class Maximum(_Extremum):
    """Keras' ``Maximum()``: the element-wise maximum of the inputs."""

    pick = staticmethod(np.argmax)


class Minimum(_Extremum):
    """Keras' ``Minimum()``: the element-wise minimum of the inputs."""

    pick = staticmethod(np.argmin)


class Concatenate(Merge):
    """Keras' ``Concatenate(axis=-1)``: the inputs joined along ``axis`` (the batch axis
    excluded); every other axis must match."""

    def __init__(self, axis=-1, name=None):
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = int(axis)

    def _resolved_axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"axis: {self.axis} is not a non-batch axis of inputs with {ndim} "
                             "axes")
        return axis

    def forward(self, inputs):
        arrays = self._inputs(inputs)
        ndims = {a.ndim for a in arrays}
        if len(ndims) > 1:
            raise ValueError(f"inputs: Concatenate takes inputs with the same number of axes, "
                             f"got shapes {[a.shape for a in arrays]}")
        axis = self._resolved_axis(arrays[0].ndim)
        rest = {a.shape[:axis] + a.shape[axis + 1:] for a in arrays}
        if len(rest) > 1:
            raise ValueError(f"inputs: Concatenate(axis={self.axis}) takes inputs that match on "
                             f"every other axis, got shapes {[a.shape for a in arrays]}")
        sizes = [a.shape[axis] for a in arrays]
        y = np.concatenate(arrays, axis=axis)
        self._keep((axis, sizes, y.shape, y.dtype))
        return y

    def backward(self, dy):
        axis, sizes, shape, dtype = self._saved()
        dy = check_grad(dy, "dy", shape, dtype)
        return [np.ascontiguousarray(g) for g in
                np.split(dy, np.cumsum(sizes)[:-1], axis=axis)]

    def compute_mask(self, masks, shapes):
        if all(m is None for m in masks):
            return None
        ndim = len(shapes[0])
        axis = self._resolved_axis(ndim)
        full = [np.ones(s[:2], bool) if m is None else m for m, s in zip(masks, shapes)]
        if axis == 1:  # joined along time: the masks are joined too
            return np.concatenate(full, axis=1)
        return super().compute_mask(full, shapes)

    def get_config(self):
        return {"axis": self.axis}

    def extra_repr(self):
        return f"axis={self.axis}"


class Dot(Merge):
    """Keras' ``Dot(axes, normalize=False)`` of two inputs: the sum of their products over
    ``axes`` (an int for both, or a pair), batch by batch; with ``normalize``, each input is
    first L2-normalised along its axis (cosine proximity; norms below 1e-7 count as 1e-7, as in
    Keras). Inputs of 2 or 3 axes."""

    max_inputs = 2

    def __init__(self, axes, normalize=False, name=None):
        super().__init__(name)
        pair = list(axes) if isinstance(axes, (list, tuple)) else [axes, axes]
        if len(pair) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                                 for a in pair):
            raise TypeError(f"axes: expected an int or a pair of ints, got {axes!r}")
        self.axes = [int(a) for a in pair]
        self.normalize = bool(normalize)

    def forward(self, inputs):
        a, b = self._inputs(inputs)
        if a.ndim not in (2, 3) or b.ndim not in (2, 3):
            raise ValueError(f"inputs: Dot takes inputs of 2 or 3 axes, got shapes {a.shape} "
                             f"and {b.shape}")
        if len(a) != len(b):
            raise ValueError(f"inputs: Dot takes inputs with the same batch size, got shapes "
                             f"{a.shape} and {b.shape}")
        ax = [x + n if x < 0 else x for x, n in zip(self.axes, (a.ndim, b.ndim))]
        if not (1 <= ax[0] < a.ndim and 1 <= ax[1] < b.ndim):
            raise ValueError(f"axes: {self.axes} are not non-batch axes of shapes {a.shape} and "
                             f"{b.shape}")
        if a.shape[ax[0]] != b.shape[ax[1]]:
            raise ValueError(f"inputs: Dot(axes={self.axes}) needs equal sizes on those axes, "
                             f"got shapes {a.shape} and {b.shape}")
        norms = None
        if self.normalize:
            na = np.maximum(np.sqrt(np.sum(a * a, axis=ax[0], keepdims=True)), EPSILON)
            nb = np.maximum(np.sqrt(np.sum(b * b, axis=ax[1], keepdims=True)), EPSILON)
            norms = (a, b, na, nb)
            a, b = a / na, b / nb
        # move the contracted axis last in a, first (after batch) in b: batched matmul
        a3 = np.moveaxis(a, ax[0], -1)
        b3 = np.moveaxis(b, ax[1], 1)
        a3 = a3 if a3.ndim == 3 else a3[:, None, :]
        b3 = b3 if b3.ndim == 3 else b3[:, :, None]
        # the package's GEMM, not NumPy's BLAS (whose threads keep spinning on the cores after
        # a threaded call, bench/RESULTS.md session 14)
        y = _C.gemm_batched(a3, b3)
        out_shape = [len(a)] + ([a3.shape[1]] if a.ndim == 3 else []) + \
            ([b3.shape[2]] if b.ndim == 3 else [])
        if len(out_shape) == 1:
            out_shape.append(1)  # Keras: (batch, 1) for two vectors
        y = y.reshape(out_shape)
        self._keep((a3, b3, ax, a.shape, b.shape, norms, y.shape))
        return y

    def backward(self, dy):
        a3, b3, ax, a_shape, b_shape, norms, y_shape = self._saved()
        dy = check_grad(dy, "dy", y_shape, a3.dtype).reshape(len(a3), a3.shape[1], b3.shape[2])
        da3 = _C.gemm_batched(dy, b3, trans_b=True)
        db3 = _C.gemm_batched(a3, dy, trans_a=True)
        da = np.moveaxis(da3 if len(a_shape) == 3 else da3[:, 0, :], -1, ax[0])
        db = np.moveaxis(db3 if len(b_shape) == 3 else db3[:, :, 0], 1, ax[1])
        if norms is not None:
            a, b, na, nb = norms
            an, bn = a / na, b / nb
            # a clamped norm is a constant: the projection term drops out there
            da = (da - (na > EPSILON) * an * np.sum(da * an, axis=ax[0], keepdims=True)) / na
            db = (db - (nb > EPSILON) * bn * np.sum(db * bn, axis=ax[1], keepdims=True)) / nb
        return [np.ascontiguousarray(da), np.ascontiguousarray(db)]

    def compute_mask(self, masks, shapes):
        return None

    def get_config(self):
        return {"axes": list(self.axes), "normalize": self.normalize}

    def extra_repr(self):
        return f"axes={self.axes}, normalize={self.normalize}"


register_layers("layers", [Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot])
