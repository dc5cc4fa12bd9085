"""The LayerNorm LSTM and GRU as PyTorch users write them on CPU (there is no fused peer): an
nn.LSTMCell-style Python loop over time steps with ``torch.nn.LayerNorm`` modules, Haste's
definition (one layer norm over the G*H gates of ``W_ih x`` and of ``W_hh h``, gains only,
the cell's biases after; for the LSTM a layer norm of ``c`` before the output tanh).

``TorchLayerNormRNN`` stacks layers and directions as ``torch.nn.LSTM`` does (``lengths`` for
post-padded batches: a finished sequence keeps its state and outputs zeros), so the same
weights give ``rnnfast.nn.LayerNormLSTM``'s and ``LayerNormGRU``'s results; ``load`` and
``grads`` move parameters in and out under rnnfast's (PyTorch-style) names. Used by
bench/layer_norm_vs_torch.py and by tests/test_layer_norm_recurrent.py.
"""
import torch
from torch import nn


class LayerNormCell(nn.Module):
    """One layer and direction: the weights of nn.LSTMCell/nn.GRUCell and the layer norms."""

    def __init__(self, cell, input_size, hidden_size, bias=True, eps=1e-5, dtype=None):
        super().__init__()
        G = 4 if cell == "lstm" else 3
        self.cell, self.hidden_size = cell, hidden_size
        kw = {"dtype": dtype}
        self.ih = nn.Linear(input_size, G * hidden_size, bias=bias, **kw)
        self.hh = nn.Linear(hidden_size, G * hidden_size, bias=bias, **kw)
        self.ln_ih = nn.LayerNorm(G * hidden_size, eps=eps, bias=False, **kw)
        self.ln_hh = nn.LayerNorm(G * hidden_size, eps=eps, bias=False, **kw)
        if cell == "lstm":
            self.ln_c = nn.LayerNorm(hidden_size, eps=eps, **kw)

    def forward(self, x, h, c=None):
        # the biases after the layer norms, as Haste has them
        gi = self.ln_ih(x @ self.ih.weight.T)
        gh = self.ln_hh(h @ self.hh.weight.T)
        if self.ih.bias is not None:
            gi, gh = gi + self.ih.bias, gh + self.hh.bias
        if self.cell == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(self.ln_c(c)), c
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        return (1 - z) * torch.tanh(i_n + r * h_n) + z * h, None


class TorchLayerNormRNN(nn.Module):
    """Layers and directions of LayerNormCell, run step by step."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, bidirectional=False, eps=1e-5, dtype=None):
        super().__init__()
        self.cell, self.num_layers, self.batch_first = cell, num_layers, batch_first
        self.D, self.hidden_size = 2 if bidirectional else 1, hidden_size
        self.cells = nn.ModuleList(
            LayerNormCell(cell, input_size if layer == 0 else self.D * hidden_size, hidden_size,
                          bias, eps, dtype)
            for layer in range(num_layers) for _ in range(self.D))

    def names(self, k):
        """(rnnfast name, torch parameter) pairs of layer-direction k."""
        layer, d = divmod(k, self.D)
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        m = self.cells[k]
        pairs = [("weight_ih", m.ih.weight), ("weight_hh", m.hh.weight)]
        if m.ih.bias is not None:
            pairs += [("bias_ih", m.ih.bias), ("bias_hh", m.hh.bias)]
        pairs += [("ln_ih_weight", m.ln_ih.weight), ("ln_hh_weight", m.ln_hh.weight)]
        if self.cell == "lstm":
            pairs += [("ln_c_weight", m.ln_c.weight), ("ln_c_bias", m.ln_c.bias)]
        return [(name + sfx, p) for name, p in pairs]

    def load(self, arrays):
        """Copies rnnfast's ``{name: array}`` into the parameters."""
        with torch.no_grad():
            for k in range(len(self.cells)):
                for name, p in self.names(k):
                    p.copy_(torch.as_tensor(arrays[name]))

    def grads(self):
        """``{name: gradient}`` under rnnfast's names."""
        return {name: p.grad for k in range(len(self.cells)) for name, p in self.names(k)}

    def forward(self, x, state=None, lengths=None):
        if self.batch_first:
            x = x.transpose(0, 1)
        T, B = x.shape[:2]
        lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths)
        zeros = x.new_zeros(B, self.hidden_size)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for d in range(self.D):
                k = layer * self.D + d
                h = state[0][k] if state is not None else zeros
                c = (state[1][k] if state is not None else zeros) if self.cell == "lstm" else None
                ys = [None] * T
                for t in (reversed(range(T)) if d else range(T)):
                    active = (t < lengths)[:, None]
                    h_new, c_new = self.cells[k](x[t], h, c)
                    h = torch.where(active, h_new, h)
                    if c is not None:
                        c = torch.where(active, c_new, c)
                    ys[t] = torch.where(active, h, zeros)
                outputs.append(torch.stack(ys))
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outputs, dim=2) if self.D > 1 else outputs[0]
        if self.batch_first:
            x = x.transpose(0, 1)
        if self.cell == "lstm":
            return x, (torch.stack(h_n), torch.stack(c_n))
        return x, torch.stack(h_n)
