"""LayerNorm LSTM and LayerNorm GRU layers with ``torch.nn.LSTM``'s interface.

The cells of ``rnnfast.functional.layer_norm_lstm_forward`` and ``layer_norm_gru_forward``
(Haste's LayerNormLSTM and LayerNormGRU), stacked as ``rnnfast.nn.LSTM`` and ``GRU`` are:
the same constructor (``num_layers``, ``bias``, ``batch_first``, ``dropout``,
``bidirectional``), ``forward`` and ``backward``, states, ``lengths`` and unbatched input.
Per layer ``k`` (and ``_reverse``) the parameters are PyTorch's ``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (uniform in +-1/sqrt(hidden_size); no
biases with ``bias=False``), plus the layer norms' ``ln_ih_weight_l{k}`` and
``ln_hh_weight_l{k}`` (G*H,) and, for the LSTM, ``ln_c_weight_l{k}`` and ``ln_c_bias_l{k}``
(H,): gains start at one and the bias at zero, and they are there whatever ``bias`` is.
``zoneout=p`` (keyword, every layer) as ``LSTM``'s and ``GRU``'s: in training each layer and
direction draws its masks from a seed of the layer's generator (``seed``/``rng``), in
evaluation the previous state has weight p.
"""
import numpy as np

from rnnfast.nn.recurrent import RNNBase

__all__ = ["LayerNormLSTM", "LayerNormGRU"]


class _LayerNormBase(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, eps=1e-5, zoneout=0.0, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, eps=eps, zoneout=zoneout, **kwargs)
        self.eps = self.stack.options["eps"]

    def reset_parameters(self, rng=None):
        """PyTorch's initialisation of the weights and biases (uniform in
        +-1/sqrt(hidden_size)); the layer norms' gains one and their bias zero."""
        super().reset_parameters(rng)
        for name, p in self.named_parameters():
            if name.startswith("ln_"):
                p.data[...] = 0.0 if name.startswith("ln_c_bias") else 1.0

    def extra_repr(self):
        s = super().extra_repr()
        return s + (f", eps={self.eps}" if self.eps != 1e-5 else "")


class LayerNormLSTM(_LayerNormBase):
    """LayerNorm LSTM (gates i, f, g, o); returns ``output, (h_n, c_n)`` as ``LSTM`` does.

    ``a = LN(W_ih x) * ln_ih_weight + LN(W_hh h) * ln_hh_weight + b_ih + b_hh``,
    ``c' = f * c + i * g``, ``h' = o * tanh(LN(c') * ln_c_weight + ln_c_bias)``; ``eps``
    (default 1e-5) is added to the variance of every layer norm."""

    cell = "layer_norm_lstm"


class LayerNormGRU(_LayerNormBase):
    """LayerNorm GRU (gates r, z, n; the n gate with the reset after the product); returns
    ``output, h_n`` as ``GRU`` does.

    ``gi = LN(W_ih x) * ln_ih_weight + b_ih``, ``gh = LN(W_hh h) * ln_hh_weight + b_hh``,
    ``r, z = sigma(gi + gh)``, ``n = tanh(gi_n + r * gh_n)``, ``h' = (1 - z) * n + z * h``."""

    cell = "layer_norm_gru"
