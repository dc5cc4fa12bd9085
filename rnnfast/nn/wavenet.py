"""WaveNet (van den Oord et al., 2016): a stack of causal dilated convolutions with gated
activations and residual and skip connections, and its fast generation.

Pieces (channels last, ``(batch, time, channels)``, like Keras' Conv1D):

- ``GatedActivation()``: ``tanh(a_f) * sigmoid(a_g)`` of an input ``(..., 2C)`` whose first half
  is the filter pre-activation ``W_f * x`` and whose second half is the gate ``W_g * x``: one
  convolution computes both.
- ``WaveNetBlock(residual_channels, dilation_channels, skip_channels, dilation, kernel_size=2)``:
  ``z = GatedActivation(dilated(h))`` with a causal dilated convolution, then 1x1 convolutions
  ``h' = h + residual(z)`` and ``skip(z)``; ``forward(h)`` returns ``(h', skip)``.
- ``WaveNet(in_channels=1, out_channels=256, residual_channels=32, dilation_channels=32,
  skip_channels=64, end_channels=None, dilations=None, kernel_size=2)``: a causal convolution
  ``in_channels -> residual_channels``, the blocks (``dilations`` default ``1, 2, ..., 512``
  twice), and the output head ``relu -> 1x1 -> relu -> 1x1`` over the sum of the skips:
  ``(B, T, in_channels) -> (B, T, out_channels)`` logits, output ``t`` seeing inputs ``0..t``
  only. Training keeps ``O(T)`` values per layer: memory grows linearly with T.
- ``WaveNet.generator(batch)`` returns a ``WaveNetGenerator``, the "fast WaveNet" method (Paine
  et al., 2016): every layer keeps a queue of its last ``dilation * (kernel_size - 1)`` inputs,
  so the next sample costs one small product per layer (``O(layers)``) instead of a pass over
  the whole receptive field; ``step(x_t)`` gives exactly the logits ``forward`` gives at that
  step.

Parameters have PyTorch's ``Conv1d`` layouts and dotted names (``causal.weight``,
``blocks.0.dilated.weight`` ``(2 * dilation_channels, residual_channels, kernel_size)`` with the
filter rows first, ``blocks.0.residual.weight``, ``blocks.0.skip.weight``, ``end1.weight``,
``end2.weight``), PyTorch's initialisation.
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.conv import Conv1d
from rnnfast.nn.module import Module, as_float_input, check_dtype, check_grad, check_int, make_rng

__all__ = ["GatedActivation", "WaveNetBlock", "WaveNet", "WaveNetGenerator"]


class GatedActivation(Module):
    """``tanh(x[..., :C]) * sigmoid(x[..., C:])`` of an input with ``2C`` features: one fused pass
    of the package's kernel forward and backward (``functional.gated_activation_*``; the backward
    recomputes both nonlinearities from the kept input)."""

    def forward(self, x):
        x = as_float_input(x, "x")
        if x.ndim < 1 or x.shape[-1] % 2 or x.shape[-1] == 0:
            raise ValueError(f"x: expected an even number of features on the last axis (filter "
                             f"then gate), got shape {x.shape}")
        self._keep(x)
        return F.gated_activation_forward(x)

    def backward(self, dz):
        x = self._saved()
        dz = check_grad(dz, "dz", x.shape[:-1] + (x.shape[-1] // 2,), x.dtype)
        return F.gated_activation_backward(x, dz)


def _conv(cin, cout, k, dilation, dtype, rng):
    return Conv1d(cin, cout, k, padding="causal" if k > 1 else 0, dilation=dilation,
                  channels_last=True, dtype=dtype, rng=rng)


class WaveNetBlock(Module):
    """One residual layer of WaveNet: gated causal dilated convolution, residual and skip 1x1
    convolutions; ``forward(h) -> (h + residual(z), skip(z))``."""

    def __init__(self, residual_channels, dilation_channels, skip_channels, dilation,
                 kernel_size=2, *, dtype=np.float32, seed=None, rng=None):
        super().__init__()
        R = check_int(residual_channels, "residual_channels", 1)
        Dc = check_int(dilation_channels, "dilation_channels", 1)
        S = check_int(skip_channels, "skip_channels", 1)
        self.dilation = check_int(dilation, "dilation", 1)
        self.kernel_size = check_int(kernel_size, "kernel_size", 1)
        rng = make_rng(seed, rng)
        dtype = check_dtype(dtype)
        self.dilated = _conv(R, 2 * Dc, self.kernel_size, self.dilation, dtype, rng)
        self.gate = GatedActivation()
        self.residual = _conv(Dc, R, 1, 1, dtype, rng)
        self.skip = _conv(Dc, S, 1, 1, dtype, rng)

    def forward(self, h, skip_sum=None):
        """``(h + residual(z), skip(z))``, or with ``skip_sum`` (an array of the skip output's
        shape) ``(h + residual(z), skip_sum + skip(z))``: the sums are made by the convolution
        kernels while each block of their output is in cache."""
        h = as_float_input(h, "h", self.dilated.dtype)
        z = self.gate(self.dilated(h))
        return (self.residual._convolve(z, True, add=h),
                self.skip._convolve(z, True, add=skip_sum))

    def backward(self, dh, dskip, dh_is_zero=False):
        """Gradient of the block's input from those of its two outputs (``dh_is_zero``: ``dh``
        is all zeros, as for the last block, whose residual output nothing reads: its
        residual convolution's backward is skipped and its weight gradients are zeros)."""
        if dh_is_zero:
            dz = self.skip._convolve_backward(dskip)
            for p in (self.residual.weight, self.residual.bias):
                if p is not None:
                    p.accumulate(np.zeros_like(p.data))
        else:
            dz = self.skip._convolve_backward(dskip, add=self.residual._convolve_backward(dh))
        return self.dilated._convolve_backward(self.gate.backward(dz),
                                               add=None if dh_is_zero else dh)

    def extra_repr(self):
        return f"dilation={self.dilation}"


class _Blocks(Module):
    """The blocks under the names ``0``, ``1``, ... (PyTorch's ModuleList naming)."""

    def __init__(self, blocks):
        super().__init__()
        for i, block in enumerate(blocks):
            setattr(self, str(i), block)

    def __iter__(self):
        return iter(self.children())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return self.children()[i]


class WaveNet(Module):
    """WaveNet over ``(batch, time, in_channels)`` inputs; see the module's doc."""

    def __init__(self, in_channels=1, out_channels=256, residual_channels=32,
                 dilation_channels=32, skip_channels=64, end_channels=None, dilations=None,
                 kernel_size=2, *, dtype=np.float32, seed=None, rng=None):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.residual_channels = check_int(residual_channels, "residual_channels", 1)
        self.dilation_channels = check_int(dilation_channels, "dilation_channels", 1)
        self.skip_channels = check_int(skip_channels, "skip_channels", 1)
        self.end_channels = self.skip_channels if end_channels is None else \
            check_int(end_channels, "end_channels", 1)
        self.kernel_size = check_int(kernel_size, "kernel_size", 1)
        if dilations is None:
            dilations = [2 ** i for i in range(10)] * 2
        if isinstance(dilations, (str, bytes)) or not hasattr(dilations, "__iter__"):
            raise TypeError(f"dilations: expected a list of ints, got {type(dilations).__name__}")
        self.dilations = [check_int(d, "dilations[i]", 1) for d in dilations]
        if not self.dilations:
            raise ValueError("dilations: expected at least one layer, got an empty list")
        self.dtype = check_dtype(dtype)
        rng = make_rng(seed, rng)
        R, S = self.residual_channels, self.skip_channels
        self.causal = _conv(self.in_channels, R, self.kernel_size, 1, self.dtype, rng)
        self.blocks = _Blocks([WaveNetBlock(R, self.dilation_channels, S, d, self.kernel_size,
                                            dtype=self.dtype, rng=rng) for d in self.dilations])
        self.end1 = _conv(S, self.end_channels, 1, 1, self.dtype, rng)
        self.end2 = _conv(self.end_channels, self.out_channels, 1, 1, self.dtype, rng)

    @property
    def receptive_field(self):
        """Inputs each output sees: ``1 + (kernel_size - 1) * (1 + sum(dilations))``."""
        return 1 + (self.kernel_size - 1) * (1 + sum(self.dilations))

    def _check_input(self, x):
        x = as_float_input(x, "x", self.dtype)
        if x.ndim != 3 or x.shape[2] != self.in_channels:
            raise ValueError(f"x: expected shape (batch, time, in_channels) with in_channels = "
                             f"{self.in_channels}, got {x.shape}")
        return x

    def forward(self, x):
        """Logits ``(B, T, out_channels)`` of ``x`` ``(B, T, in_channels)``."""
        h = self.causal(self._check_input(x))
        total = None
        for block in self.blocks:
            h, total = block(h, total)     # the skip sum made by the skip convolution
        pre1 = np.maximum(total, 0)
        e = self.end1(pre1)
        pre2 = np.maximum(e, 0)
        self._keep((total > 0, e > 0))
        return self.end2(pre2)

    def backward(self, dy):
        """Input gradient ``(B, T, in_channels)``; parameter gradients added to ``.grad``."""
        on1, on2 = self._saved()
        de = self.end2.backward(dy)
        de *= on2
        dskip = self.end1.backward(de)
        dskip *= on1
        dh = np.zeros(on1.shape[:2] + (self.residual_channels,), dskip.dtype)
        last = True         # nothing reads the last block's residual output: dh is zero there
        for block in reversed(self.blocks.children()):
            dh = block.backward(dh, dskip, dh_is_zero=last)
            last = False
        return self.causal.backward(dh)

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "residual_channels": self.residual_channels,
                "dilation_channels": self.dilation_channels,
                "skip_channels": self.skip_channels, "end_channels": self.end_channels,
                "dilations": list(self.dilations), "kernel_size": self.kernel_size,
                "dtype": self.dtype.name}

    def generator(self, batch=1):
        """A ``WaveNetGenerator`` for ``batch`` sequences at once, with empty (zero) queues."""
        return WaveNetGenerator(self, batch)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"layers={len(self.dilations)}, receptive_field={self.receptive_field}")


class WaveNetGenerator:
    """Fast autoregressive WaveNet: ``step(x_t)`` -> logits of the next sample, ``O(layers)``.

    Each layer (the input convolution included) keeps a queue of its last
    ``dilation * (kernel_size - 1)`` inputs, zeros at the start (the causal padding), so a
    step reads its taps from the queues instead of recomputing the receptive field. The weights
    are copied when the generator is made: make a new one after training further. Results
    equal ``model.forward`` on the whole sequence, step by step.
    """

    def __init__(self, model, batch=1):
        if not isinstance(model, WaveNet):
            raise TypeError(f"model: expected a WaveNet, got {type(model).__name__}")
        self.batch = check_int(batch, "batch", 1)
        self.model = model
        dt = model.dtype
        K = model.kernel_size
        Dc = model.dilation_channels
        R = model.residual_channels
        self.t = 0

        def taps(conv):
            # (K * C_in, C_out): the taps of the oldest input first, the current one last
            w = conv.weight.data
            return np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0])), \
                (np.zeros(w.shape[0], dt) if conv.bias is None else conv.bias.data.copy())

        self._in_w, self._in_b = taps(model.causal)
        self._layers = []
        for block in model.blocks:
            w, b = taps(block.dilated)
            # tanh(g / 2) gives the sigmoid: 0.5 * (1 + tanh(g / 2)); scale the gate half by 1/2
            # and fold the other 1/2 into the output product
            w = w.copy()
            b = b.copy()
            w[:, Dc:] *= 0.5
            b[Dc:] *= 0.5
            out_w = np.concatenate([block.residual.weight.data[:, :, 0],
                                    block.skip.weight.data[:, :, 0]], axis=0).T * 0.5
            out_b = np.concatenate([block.residual.bias.data, block.skip.bias.data])
            self._layers.append((block.dilation, w, b, np.ascontiguousarray(out_w, dt), out_b))
        self._end1 = (np.ascontiguousarray(model.end1.weight.data[:, :, 0].T),
                      model.end1.bias.data)
        self._end2 = (np.ascontiguousarray(model.end2.weight.data[:, :, 0].T),
                      model.end2.bias.data)
        self._R, self._Dc, self._K = R, Dc, K
        zeros_in = np.zeros((self.batch, model.in_channels), dt)
        zeros_h = np.zeros((self.batch, R), dt)
        # queues of past inputs: a list per layer, slot t % length holds the input of step t
        self._queue_in = [zeros_in] * (K - 1)
        self._queues = [[zeros_h] * (d * (K - 1)) for d, *_ in self._layers]

    def _gather(self, queue, current, dilation):
        if self._K == 1:
            return current
        L = len(queue)
        parts = [queue[(self.t - dilation * j) % L] for j in range(self._K - 1, 0, -1)]
        queue[self.t % L] = current
        parts.append(current)
        return np.concatenate(parts, axis=1)

    def step(self, x):
        """Logits ``(batch, out_channels)`` after the input ``x`` ``(batch, in_channels)`` of the
        current step (then the next step)."""
        m = self.model
        x = as_float_input(x, "x", m.dtype)
        if x.shape != (self.batch, m.in_channels):
            raise ValueError(f"x: expected shape (batch, in_channels) = "
                             f"({self.batch}, {m.in_channels}), got {x.shape}")
        Dc, R = self._Dc, self._R
        h = self._gather(self._queue_in, x, 1) @ self._in_w + self._in_b
        skip = None
        for (d, w, b, out_w, out_b), queue in zip(self._layers, self._queues):
            t = np.tanh(self._gather(queue, h, d) @ w + b)
            z = t[:, :Dc] * (t[:, Dc:] + 1.0)          # 2 tanh(f) sigmoid(g); out_w has the 1/2
            out = z @ out_w + out_b
            h = h + out[:, :R]
            skip = out[:, R:] if skip is None else skip + out[:, R:]
        self.t += 1
        e = np.maximum(np.maximum(skip, 0) @ self._end1[0] + self._end1[1], 0)
        return e @ self._end2[0] + self._end2[1]

    def prime(self, x):
        """Feed a sequence ``(batch, T, in_channels)``; returns the logits of its last step."""
        x = as_float_input(x, "x", self.model.dtype)
        if x.ndim != 3 or x.shape[0] != self.batch or x.shape[1] < 1:
            raise ValueError(f"x: expected shape (batch, time >= 1, in_channels) with batch = "
                             f"{self.batch}, got {x.shape}")
        for t in range(x.shape[1]):
            logits = self.step(x[:, t])
        return logits
