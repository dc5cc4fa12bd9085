"""Plain NumPy reference of the recurrent ops: tanh/relu RNN, LSTM (with optional
projection and peepholes), GRU, LayerNorm LSTM and LayerNorm GRU, each with optional zoneout
and recurrent dropout.

Written for clarity, not speed: one Python loop over time steps. The tests use it as
the oracle for the C++ kernels, and it is itself checked by finite differences. It computes
in float64 unless a forward is given ``dtype=np.float32``: then every array and operation of
the forward and of its backward is float32 (the same operations in the same order), which
gives the error a straightforward float32 implementation makes, the yardstick of the float32
kernels' tests.

Shapes: T time steps, B sequences, I input features, H hidden units, G gates
(1 for the RNN, 4 for the LSTM in order i, f, g, o, 3 for the GRU in order r, z, n), and
P the features of h: P = H except for the LSTM with a projection (``w_hr`` (P, H)).

How one layer runs (shared by all cells, see ``_run_forward``):
at time step t, only the sequences with ``t < lengths[b]`` (the *active* ones) go
through the cell; the others keep their state and get ``y[t, b] = 0``. Steps run
t = 0 .. T-1, or t = T-1 .. 0 when ``reverse``; with the latter, sequence b starts
at its last valid step ``lengths[b] - 1`` because the padded steps before it are
inactive. ``y[t]`` is always the state h after processing ``x[t]``.

Regularisation around the cell (every cell; see ``recurrent_masks``):

- recurrent dropout (Keras' ``recurrent_dropout``, Gal and Ghahramani's variational
  dropout): in training, gate k's recurrent product uses ``(h_{t-1} * m_k) W_hh_k^T``,
  where ``m`` (G, B, P) holds ``keep / (1 - p)`` with ``keep`` drawn once per call (the
  same masks at every step, an independent one per gate, as Keras 3 does); the state
  carried to the next step and every other use of ``h_{t-1}`` (the GRU's ``z * h``) is
  not dropped. At inference nothing is dropped.
- zoneout (Krueger et al., 2016): in training, after the cell computed its new state
  ``(h~, c~)``, ``h_t = d_h * h_{t-1} + (1 - d_h) * h~`` (and for the LSTM likewise
  ``c_t`` with ``d_c``), where ``d`` (T, B, P) (and (T, B, H)) is 1 where the unit keeps
  its previous value, drawn with probability ``zoneout`` independently per step and unit.
  The cell's output gate and output use the new ``c~`` (Krueger's equations; Haste, which
  zones out h only, is the case ``d_c = 0``). At inference ``d`` is the constant
  ``zoneout`` (the expectation).
"""
import numpy as np

from rnnfast._masks import _check_rate, _mask_shapes
from rnnfast.reference.masks import recurrent_masks

from rnnfast.reference._common import compute_dtype

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "layer_norm_lstm_forward",
    "layer_norm_lstm_backward",
    "layer_norm_gru_forward",
    "layer_norm_gru_backward",
    "recurrent_masks",
]


def _sigmoid(a):
    """Logistic function, written with tanh so that no input overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _affine_backward(da, inp, w):
    """Gradients of ``a = inp @ w.T + b``.

    da (N, M), inp (N, K), w (M, K) -> (d_inp (N, K), d_w (M, K), d_b (M,)).
    """
    return da @ w, da.T @ inp, da.sum(axis=0)


def _gate_matmul(hs, w):
    """The recurrent product of G gates, each with its own input: ``hs`` G arrays (N, P),
    w (G*H, P) -> (N, G*H) whose block k is ``hs[k] @ w_k.T``."""
    return np.concatenate([h @ w_k.T for h, w_k in zip(hs, np.split(w, len(hs)))], axis=1)


def _gate_matmul_backward(da, hs, w):
    """Gradients of ``_gate_matmul``: (tuple of G d_hs (N, P), d_w (G*H, P))."""
    d_hs, d_w = [], []
    for da_k, h, w_k in zip(np.split(da, len(hs), axis=1), hs, np.split(w, len(hs))):
        d_hs.append(da_k @ w_k)
        d_w.append(da_k.T @ h)
    return tuple(d_hs), np.concatenate(d_w, axis=0)


def _layer_norm(v, eps):
    """Normalise each row of v (N, M) to mean 0, variance 1 (biased variance, eps inside
    the square root). Returns (v_hat, inv_std (N, 1))."""
    mean = v.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(((v - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    return (v - mean) * inv_std, inv_std


def _layer_norm_backward(d_hat, v_hat, inv_std):
    """Gradient with respect to v of ``_layer_norm(v)``'s v_hat, given d_hat."""
    return inv_std * (d_hat - d_hat.mean(axis=1, keepdims=True)
                      - v_hat * (d_hat * v_hat).mean(axis=1, keepdims=True))


# A cell: ``gates``; ``state_names``; ``extra_params(H, P)`` -> {name: (shape, default
# fill or None)} beyond w_ih, w_hh, b_ih, b_hh; ``forward(x, state, hs, p)`` -> (new
# state, cache), where ``hs`` are the G arrays (N, P) that enter the recurrent product
# (h itself, or h times the recurrent dropout masks) and ``state`` the carried state;
# ``backward(d_state, cache, p)`` -> (dx, d_state_prev through the carried state only,
# parameter gradients, d_hs).


class _RNNCell:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh); state (h,)."""

    gates = 1
    state_names = ("h0",)

    def __init__(self, nonlinearity):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    @staticmethod
    def extra_params(H, P):
        return {}

    def forward(self, x, state, hs, p):
        """x (N, I), state ((N, H),) -> (new state, cache for backward)."""
        a = x @ p["w_ih"].T + p["b_ih"] + _gate_matmul(hs, p["w_hh"]) + p["b_hh"]
        h_new = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0.0)
        return (h_new,), (x, hs, a, h_new)

    def backward(self, d_state, cache, p):
        x, hs, a, h_new = cache
        (dh_new,) = d_state
        if self.nonlinearity == "tanh":
            da = dh_new * (1.0 - h_new**2)
        else:
            da = dh_new * (a > 0.0)
        dx, dw_ih, db_ih = _affine_backward(da, x, p["w_ih"])
        d_hs, dw_hh = _gate_matmul_backward(da, hs, p["w_hh"])
        grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": da.sum(axis=0)}
        return dx, (np.zeros_like(dh_new),), grads, d_hs


class _LSTMCell:
    """i,f,g,o = sigma,sigma,tanh,sigma(x W_ih^T + b_ih + h W_hh^T + b_hh), with peepholes
    ``a_i += p_i * c``, ``a_f += p_f * c``, ``a_o += p_o * c'``; c' = f*c + i*g;
    h' = W_hr (o*tanh(c')) (h' = o*tanh(c') without projection); state (h, c)."""

    gates = 4
    state_names = ("h0", "c0")

    @staticmethod
    def extra_params(H, P):
        # w_hr None: no projection; w_peephole None: zeros (the plain LSTM).
        return {"w_hr": ((P, H), None), "w_peephole": ((3, H), 0.0)}

    def forward(self, x, state, hs, p):
        """x (N, I), state ((N, P), (N, H)) -> (new state, cache for backward)."""
        h, c = state
        a = x @ p["w_ih"].T + p["b_ih"] + _gate_matmul(hs, p["w_hh"]) + p["b_hh"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        p_i, p_f, p_o = p["w_peephole"]
        i, f, g = _sigmoid(a_i + p_i * c), _sigmoid(a_f + p_f * c), np.tanh(a_g)
        c_new = f * c + i * g
        o = _sigmoid(a_o + p_o * c_new)
        tanh_c = np.tanh(c_new)
        m = o * tanh_c
        h_new = m if p["w_hr"] is None else m @ p["w_hr"].T
        return (h_new, c_new), (x, hs, c, i, f, g, o, c_new, tanh_c, m)

    def backward(self, d_state, cache, p):
        x, hs, c, i, f, g, o, c_new, tanh_c, m = cache
        dh_new, dc_new = d_state
        grads = {}
        if p["w_hr"] is None:
            dm = dh_new
        else:
            dm = dh_new @ p["w_hr"]
            grads["w_hr"] = dh_new.T @ m
        p_i, p_f, p_o = p["w_peephole"]
        da_o = dm * tanh_c * o * (1.0 - o)
        dc = dc_new + dm * o * (1.0 - tanh_c**2) + da_o * p_o
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c * f * (1.0 - f)
        da_g = dc * i * (1.0 - g**2)
        grads["w_peephole"] = np.stack([(da_i * c).sum(axis=0), (da_f * c).sum(axis=0),
                                        (da_o * c_new).sum(axis=0)])
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        dx, dw_ih, db_ih = _affine_backward(da, x, p["w_ih"])
        d_hs, dw_hh = _gate_matmul_backward(da, hs, p["w_hh"])
        grads.update({"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": da.sum(axis=0)})
        dc_prev = dc * f + da_i * p_i + da_f * p_f
        return dx, (np.zeros_like(dh_new), dc_prev), grads, d_hs


class _GRUCell:
    """r,z = sigma(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z}); h' = (1-z)*n + z*h;
    reset_after:     n = tanh(x W_in^T + b_in + r*(h W_hn^T + b_hn));
    not reset_after: n = tanh(x W_in^T + b_in + (r*h) W_hn^T + b_hn); state (h,)."""

    gates = 3
    state_names = ("h0",)

    def __init__(self, reset_after):
        self.reset_after = bool(reset_after)

    @staticmethod
    def extra_params(H, P):
        return {}

    def forward(self, x, state, hs, p):
        """x (N, I), state ((N, H),) -> (new state, cache for backward)."""
        (h,) = state
        H = h.shape[1]
        w_hrz, w_hn = np.split(p["w_hh"], [2 * H], axis=0)
        b_hrz, b_hn = np.split(p["b_hh"], [2 * H])
        gi_r, gi_z, gi_n = np.split(x @ p["w_ih"].T + p["b_ih"], 3, axis=1)
        gh_r, gh_z = np.split(_gate_matmul(hs[:2], w_hrz) + b_hrz, 2, axis=1)
        r, z = _sigmoid(gi_r + gh_r), _sigmoid(gi_z + gh_z)
        if self.reset_after:
            gh_n = hs[2] @ w_hn.T + b_hn
            n = np.tanh(gi_n + r * gh_n)
        else:
            gh_n = (r * hs[2]) @ w_hn.T + b_hn
            n = np.tanh(gi_n + gh_n)
        h_new = (1.0 - z) * n + z * h
        return (h_new,), (x, h, hs, r, z, n, gh_n)

    def backward(self, d_state, cache, p):
        x, h, hs, r, z, n, gh_n = cache
        (dh_new,) = d_state
        w_hrz, w_hn = np.split(p["w_hh"], [2 * h.shape[1]], axis=0)
        da_n = dh_new * (1.0 - z) * (1.0 - n**2)
        da_z = dh_new * (h - n) * z * (1.0 - z)
        if self.reset_after:
            dr = da_n * gh_n
            d_hn, dw_hn, db_hn = _affine_backward(da_n * r, hs[2], w_hn)
        else:
            d_rh, dw_hn, db_hn = _affine_backward(da_n, r * hs[2], w_hn)
            dr = d_rh * hs[2]
            d_hn = d_rh * r
        da_r = dr * r * (1.0 - r)
        da_rz = np.concatenate([da_r, da_z], axis=1)
        d_hrz, dw_hrz = _gate_matmul_backward(da_rz, hs[:2], w_hrz)
        dx, dw_ih, db_ih = _affine_backward(np.concatenate([da_rz, da_n], axis=1), x, p["w_ih"])
        grads = {
            "w_ih": dw_ih,
            "w_hh": np.concatenate([dw_hrz, dw_hn], axis=0),
            "b_ih": db_ih,
            "b_hh": np.concatenate([da_rz.sum(axis=0), db_hn]),
        }
        return dx, (dh_new * z,), grads, d_hrz + (d_hn,)


class _LayerNormLSTMCell:
    """Haste's LayerNormLSTM (gate order i, f, g, o):
    a = LN(x W_ih^T) * ln_ih_weight + LN(h W_hh^T) * ln_hh_weight + b_ih + b_hh;
    i,f,g,o = sigma,sigma,tanh,sigma(a); c' = f*c + i*g;
    h' = o * tanh(LN(c') * ln_c_weight + ln_c_bias); state (h, c') (c' not normalised)."""

    gates = 4
    state_names = ("h0", "c0")

    def __init__(self, eps):
        self.eps = float(eps)

    @staticmethod
    def extra_params(H, P):
        return {"ln_ih_weight": ((4 * H,), 1.0), "ln_hh_weight": ((4 * H,), 1.0),
                "ln_c_weight": ((H,), 1.0), "ln_c_bias": ((H,), 0.0)}

    def forward(self, x, state, hs, p):
        h, c = state
        ih_hat, ih_inv = _layer_norm(x @ p["w_ih"].T, self.eps)
        hh_hat, hh_inv = _layer_norm(_gate_matmul(hs, p["w_hh"]), self.eps)
        a = ih_hat * p["ln_ih_weight"] + hh_hat * p["ln_hh_weight"] + p["b_ih"] + p["b_hh"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c_new = f * c + i * g
        c_hat, c_inv = _layer_norm(c_new, self.eps)
        tanh_c = np.tanh(c_hat * p["ln_c_weight"] + p["ln_c_bias"])
        h_new = o * tanh_c
        return (h_new, c_new), (x, hs, c, i, f, g, o, tanh_c, ih_hat, ih_inv, hh_hat, hh_inv,
                                c_hat, c_inv)

    def backward(self, d_state, cache, p):
        x, hs, c, i, f, g, o, tanh_c, ih_hat, ih_inv, hh_hat, hh_inv, c_hat, c_inv = cache
        dh_new, dc_new = d_state
        da_o = dh_new * tanh_c * o * (1.0 - o)
        d_cn = dh_new * o * (1.0 - tanh_c**2)
        dc = dc_new + _layer_norm_backward(d_cn * p["ln_c_weight"], c_hat, c_inv)
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c * f * (1.0 - f)
        da_g = dc * i * (1.0 - g**2)
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        d_ih = _layer_norm_backward(da * p["ln_ih_weight"], ih_hat, ih_inv)
        d_hh = _layer_norm_backward(da * p["ln_hh_weight"], hh_hat, hh_inv)
        dx, dw_ih, _ = _affine_backward(d_ih, x, p["w_ih"])
        d_hs, dw_hh = _gate_matmul_backward(d_hh, hs, p["w_hh"])
        grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": da.sum(axis=0), "b_hh": da.sum(axis=0),
                 "ln_ih_weight": (da * ih_hat).sum(axis=0),
                 "ln_hh_weight": (da * hh_hat).sum(axis=0),
                 "ln_c_weight": (d_cn * c_hat).sum(axis=0), "ln_c_bias": d_cn.sum(axis=0)}
        return dx, (np.zeros_like(dh_new), dc * f), grads, d_hs


class _LayerNormGRUCell:
    """Haste's LayerNormGRU (gate order r, z, n; the n gate as ``reset_after=True``):
    gi = LN(x W_ih^T) * ln_ih_weight + b_ih; gh = LN(h W_hh^T) * ln_hh_weight + b_hh;
    r, z = sigma(gi_{r,z} + gh_{r,z}); n = tanh(gi_n + r * gh_n); h' = (1-z)*n + z*h."""

    gates = 3
    state_names = ("h0",)

    def __init__(self, eps):
        self.eps = float(eps)

    @staticmethod
    def extra_params(H, P):
        return {"ln_ih_weight": ((3 * H,), 1.0), "ln_hh_weight": ((3 * H,), 1.0)}

    def forward(self, x, state, hs, p):
        (h,) = state
        ih_hat, ih_inv = _layer_norm(x @ p["w_ih"].T, self.eps)
        hh_hat, hh_inv = _layer_norm(_gate_matmul(hs, p["w_hh"]), self.eps)
        gi_r, gi_z, gi_n = np.split(ih_hat * p["ln_ih_weight"] + p["b_ih"], 3, axis=1)
        gh_r, gh_z, gh_n = np.split(hh_hat * p["ln_hh_weight"] + p["b_hh"], 3, axis=1)
        r, z = _sigmoid(gi_r + gh_r), _sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        h_new = (1.0 - z) * n + z * h
        return (h_new,), (x, h, hs, r, z, n, gh_n, ih_hat, ih_inv, hh_hat, hh_inv)

    def backward(self, d_state, cache, p):
        x, h, hs, r, z, n, gh_n, ih_hat, ih_inv, hh_hat, hh_inv = cache
        (dh_new,) = d_state
        da_n = dh_new * (1.0 - z) * (1.0 - n**2)
        da_z = dh_new * (h - n) * z * (1.0 - z)
        da_r = da_n * gh_n * r * (1.0 - r)
        d_gi = np.concatenate([da_r, da_z, da_n], axis=1)
        d_gh = np.concatenate([da_r, da_z, da_n * r], axis=1)
        dx, dw_ih, _ = _affine_backward(
            _layer_norm_backward(d_gi * p["ln_ih_weight"], ih_hat, ih_inv), x, p["w_ih"])
        d_hs, dw_hh = _gate_matmul_backward(
            _layer_norm_backward(d_gh * p["ln_hh_weight"], hh_hat, hh_inv), hs, p["w_hh"])
        grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": d_gi.sum(axis=0),
                 "b_hh": d_gh.sum(axis=0), "ln_ih_weight": (d_gi * ih_hat).sum(axis=0),
                 "ln_hh_weight": (d_gh * hh_hat).sum(axis=0)}
        return dx, (dh_new * z,), grads, d_hs


def _as_float(name, value, shape, dtype):
    """A copy-or-view of ``value`` in ``dtype`` checked against ``shape``."""
    array = np.asarray(value, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    return array


def _prepare(op, cell, x, params, states, lengths, batch_first, dtype):
    """Check and convert the forward's arguments.

    Returns (x_tm (T, B, I) in dtype, params dict with the defaults of missing ones,
    initial states tuple, active mask (T, B) bool, bookkeeping dict).
    """
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D array ({'B, T, I' if batch_first else 'T, B, I'}), "
                         f"got shape {x.shape}")
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    T, B, I = x_tm.shape
    w_hh = np.asarray(params["w_hh"], dtype=dtype)
    if w_hh.ndim != 2:
        raise ValueError(f"w_hh: expected a 2-D array (G*H, H), got shape {w_hh.shape}")
    w_hr = params.get("w_hr")
    if w_hr is None:
        H = P = w_hh.shape[1]
    else:
        w_hr = np.asarray(w_hr, dtype=dtype)
        if w_hr.ndim != 2:
            raise ValueError(f"w_hr: expected a 2-D array (proj_size, H), got shape "
                             f"{w_hr.shape}")
        P, H = w_hr.shape
    GH = cell.gates * H
    shapes = {"w_ih": ((GH, I), None), "w_hh": ((GH, P), None), "b_ih": ((GH,), 0.0),
              "b_hh": ((GH,), 0.0), **cell.extra_params(H, P)}
    p = {}
    for name, (shape, fill) in shapes.items():
        given = w_hr if name == "w_hr" else params[name]
        if given is not None:
            p[name] = _as_float(name, given, shape, dtype)
        else:
            p[name] = None if fill is None else np.full(shape, fill, dtype=dtype)
    state_shapes = {"h0": (B, P), "c0": (B, H)}
    state0 = tuple(np.zeros(state_shapes[name], dtype=dtype) if value is None
                   else _as_float(name, value, state_shapes[name], dtype)
                   for name, value in states.items())
    if lengths is None:
        lengths = np.full(B, T)
    else:
        lengths = np.asarray(lengths)
        if not np.issubdtype(lengths.dtype, np.integer):
            raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
        if lengths.shape != (B,):
            raise ValueError(f"lengths: expected shape {(B,)}, got {lengths.shape}")
        if lengths.size and (lengths.min() < 1 or lengths.max() > T):
            raise ValueError(f"lengths: expected values in 1..{T}, got {lengths.tolist()}")
    active = np.arange(T)[:, None] < lengths[None, :]
    info = {
        "op": op,
        "batch_first": bool(batch_first),
        "shape": (T, B, I, H, P),
        "dtype": dtype,
        "given": {name for name, value in {**params, **states}.items() if value is not None},
        "state_names": tuple(states),
        "param_names": tuple(name for name in shapes if p[name] is not None),
        "grad_names": tuple(shapes),
    }
    return x_tm, p, state0, active, info


class _Regularizer:
    """Zoneout and recurrent dropout of one forward (see the module docstring).

    ``zone[s]``: for state component s, None (no zoneout), the scalar ``zoneout``
    (inference) or the (T, B, ·) mask (training); ``recurrent``: None or the (G, B, P)
    recurrent dropout masks (training only).
    """

    def __init__(self, cell, info, zoneout, recurrent_dropout, seed, masks, training):
        zoneout = _check_rate(zoneout, "zoneout")
        recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
        T, B, _, H, P = info["shape"]
        n_states = len(cell.state_names)
        self.zone = [None] * n_states
        self.recurrent = None
        self.masks = {}
        if not training:
            if masks is not None:
                raise ValueError("masks: only for training=True (inference uses the "
                                 "zoneout expectation and no recurrent dropout)")
            if zoneout > 0:
                self.zone = [zoneout] * n_states
            return
        shapes = _mask_shapes(cell.gates, n_states == 2, T, B, H, P, zoneout,
                              recurrent_dropout)
        if masks is None:
            masks = recurrent_masks(info["op"], T, B, H, proj_size=P, zoneout=zoneout,
                                    recurrent_dropout=recurrent_dropout, seed=seed,
                                    dtype=info["dtype"])
        elif not isinstance(masks, dict) or set(masks) != set(shapes):
            got = sorted(masks) if isinstance(masks, dict) else type(masks).__name__
            raise ValueError(f"masks: expected a dict with the keys {sorted(shapes)} (from "
                             f"zoneout={zoneout}, recurrent_dropout={recurrent_dropout}), "
                             f"got {got}")
        self.masks = {name: _as_float(f"masks[{name!r}]", masks[name], shape, info["dtype"])
                      for name, shape in shapes.items()}
        for s, name in enumerate(("zoneout_h", "zoneout_c")[:n_states]):
            self.zone[s] = self.masks.get(name)
        self.recurrent = self.masks.get("recurrent")

    def keep(self, t, idx):
        """Per state component: the factor d of ``d * prev + (1 - d) * new`` for the active
        sequences idx at step t, or None."""
        return tuple(z if z is None or np.isscalar(z) else z[t, idx] for z in self.zone)

    def recurrent_inputs(self, h, idx, gates):
        """The G arrays entering the gates' recurrent products."""
        if self.recurrent is None:
            return (h,) * gates
        return tuple(h * m[idx] for m in self.recurrent)


def _run_forward(cell, x_tm, p, state0, active, reverse, keep, reg):
    """The time loop. x_tm (T, B, I), states (B, ·), active (T, B).

    Returns y (T, B, P), final states, and the list of per-step records
    (t, active indices, cell cache) when ``keep`` (for backward), else None.
    """
    T, B, _ = x_tm.shape
    y = np.zeros((T, B, state0[0].shape[1]), dtype=x_tm.dtype)
    state = tuple(s.copy() for s in state0)
    steps = [] if keep else None
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        idx = np.flatnonzero(active[t])
        prev = tuple(s[idx] for s in state)
        hs = reg.recurrent_inputs(prev[0], idx, cell.gates)
        new, cache = cell.forward(x_tm[t, idx], prev, hs, p)
        new = tuple(n if d is None else d * s + (1.0 - d) * n
                    for s, n, d in zip(prev, new, reg.keep(t, idx)))
        for s, s_new in zip(state, new):
            s[idx] = s_new
        y[t, idx] = new[0]
        if keep:
            steps.append((t, idx, cache))
    return y, state, steps


def _run_backward(cell, p, steps, dy_tm, d_state, x_shape, info, reg):
    """The time loop backwards over the records of ``_run_forward``.

    dy_tm (T, B, P), d_state tuple of the final states' gradients.
    Returns dx (T, B, I), gradients of the initial states, parameter gradients.
    """
    dx = np.zeros(x_shape, dtype=info["dtype"])
    d_state = tuple(d.copy() for d in d_state)
    dp = {name: np.zeros_like(p[name]) for name in info["param_names"]}
    for t, idx, cache in reversed(steps):
        d_out = (d_state[0][idx] + dy_tm[t, idx],) + tuple(d[idx] for d in d_state[1:])
        keep = reg.keep(t, idx)
        d_cell = tuple(g if d is None else (1.0 - d) * g for g, d in zip(d_out, keep))
        dx_t, d_prev, dp_t, d_hs = cell.backward(d_cell, cache, p)
        d_prev = tuple(dp_s if d is None else dp_s + d * g
                       for dp_s, g, d in zip(d_prev, d_out, keep))
        if reg.recurrent is None:
            dh_rec = sum(d_hs)
        else:
            dh_rec = sum(d_h * m[idx] for d_h, m in zip(d_hs, reg.recurrent))
        d_prev = (d_prev[0] + dh_rec,) + d_prev[1:]
        dx[t, idx] = dx_t
        for d, d_p in zip(d_state, d_prev):
            d[idx] = d_p
        for name in dp:
            dp[name] += dp_t[name]
    return dx, d_state, dp


class _Context:
    """What a forward with ``training=True`` keeps for its backward. ``masks``: the
    zoneout and recurrent dropout masks it used (see ``recurrent_masks``; {} without)."""

    def __init__(self, cell, p, steps, info, reg):
        self.cell = cell
        self.params = p
        self.steps = steps
        self.info = info
        self.reg = reg

    @property
    def masks(self):
        return dict(self.reg.masks)


def _forward(op, cell, x, params, states, lengths, reverse, batch_first, training,
             zoneout=0.0, recurrent_dropout=0.0, seed=None, masks=None, dtype=np.float64):
    """Shared forward: returns y in x's layout, final states, ctx or None."""
    x_tm, p, state0, active, info = _prepare(op, cell, x, params, states, lengths, batch_first,
                                             compute_dtype(dtype))
    reg = _Regularizer(cell, info, zoneout, recurrent_dropout, seed, masks, training)
    y, state_n, steps = _run_forward(cell, x_tm, p, state0, active, reverse, training, reg)
    if batch_first:
        y = y.transpose(1, 0, 2).copy()
    ctx = None
    if training:
        ctx = _Context(cell, {name: None if w is None else w.copy() for name, w in p.items()},
                       steps, info, reg)
    return y, state_n, ctx


def _backward(op, ctx, dy, d_state_n):
    """Shared backward: d_state_n maps argument names ('dh_n', 'dc_n') to gradients or None."""
    if ctx is None:
        raise ValueError(f"ctx: got None; call {op}_forward with training=True to get one")
    if not isinstance(ctx, _Context):
        raise ValueError(f"ctx: expected the ctx of reference.{op}_forward, "
                         f"got {type(ctx).__name__}")
    info = ctx.info
    if info["op"] != op:
        raise ValueError(f"ctx: comes from {info['op']}_forward, not {op}_forward")
    T, B, I, H, P = info["shape"]
    batch_first, dtype = info["batch_first"], info["dtype"]
    if dy is None:
        dy_tm = np.zeros((T, B, P), dtype=dtype)
    else:
        dy = _as_float("dy", dy, (B, T, P) if batch_first else (T, B, P), dtype)
        dy_tm = dy.transpose(1, 0, 2) if batch_first else dy
    final_shapes = {"dh_n": (B, P), "dc_n": (B, H)}
    d_state = tuple(np.zeros(final_shapes[name], dtype=dtype) if d is None
                    else _as_float(name, d, final_shapes[name], dtype)
                    for name, d in d_state_n.items())
    dx, d_state0, dp = _run_backward(ctx.cell, ctx.params, ctx.steps, dy_tm, d_state,
                                     (T, B, I), info, ctx.reg)
    grads = {"x": dx.transpose(1, 0, 2).copy() if batch_first else dx}
    for name, d in zip(info["state_names"], d_state0):
        grads[name] = d
    for name in info["grad_names"]:
        grads[name] = dp.get(name)
    return {name: (grad if name == "x" or name in info["given"] else None)
            for name, grad in grads.items()}


_REGULARIZATION_DOC = """zoneout: probability in [0, 1) that a unit of h (and c) keeps its
    previous value (training), or the weight of the previous value (inference);
    recurrent_dropout: probability in [0, 1) of dropping a unit of h in the recurrent
    product (training only); seed: of the masks' generator (None: fresh entropy); masks:
    instead of drawing them, the dict ``recurrent_masks`` would return (training only).
    ``ctx.masks`` holds the masks used. dtype: float64 (the oracle) or float32: every array
    and operation of the forward and of its backward (the gradients too) in that dtype."""


def rnn_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, nonlinearity="tanh",
                lengths=None, reverse=False, batch_first=False, training=False, zoneout=0.0,
                recurrent_dropout=0.0, seed=None, masks=None, dtype=np.float64):
    """Elman RNN over a whole sequence.

    x (T, B, I) or (B, T, I) if batch_first; w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,);
    h0 (B, H); lengths (B,) ints in 1..T. Returns y (x's layout, H features),
    h_n (B, H) and ctx (None unless training). {regularization}
    """
    cell = _RNNCell(nonlinearity)
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    y, (h_n,), ctx = _forward("rnn", cell, x, params, {"h0": h0}, lengths, reverse,
                              batch_first, training, zoneout, recurrent_dropout, seed, masks,
                              dtype)
    return y, h_n, ctx


def rnn_backward(ctx, dy=None, dh_n=None):
    """Gradients of rnn_forward: dy like y, dh_n (B, H); None means zeros.

    Returns {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"} (None where the argument was None).
    """
    return _backward("rnn", ctx, dy, {"dh_n": dh_n})


def lstm_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, *, w_hr=None,
                 w_peephole=None, lengths=None, reverse=False, batch_first=False,
                 training=False, zoneout=0.0, recurrent_dropout=0.0, seed=None, masks=None,
                 dtype=np.float64):
    """LSTM over a whole sequence (gate order i, f, g, o), optionally with a projection
    and peepholes.

    x (T, B, I) or (B, T, I) if batch_first; w_ih (4H, I); w_hh (4H, P); b_ih, b_hh (4H,);
    h0 (B, P), c0 (B, H); lengths (B,) ints in 1..T; P = H without projection.
    w_hr (P, H): PyTorch's ``weight_hr`` (``proj_size`` P): ``h_t = W_hr (o_t * tanh(c_t))``
    is the output and the next step's h. w_peephole (3, H): ONNX's P input, rows p_i,
    p_f, p_o: ``i = sigma(a_i + p_i * c_{t-1})``, ``f = sigma(a_f + p_f * c_{t-1})``,
    ``o = sigma(a_o + p_o * c_t)`` (None: zeros, the plain LSTM).
    Returns y (x's layout, P features), h_n (B, P), c_n (B, H) and ctx (None unless
    training). {regularization}
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh, "w_hr": w_hr,
              "w_peephole": w_peephole}
    y, (h_n, c_n), ctx = _forward("lstm", _LSTMCell(), x, params, {"h0": h0, "c0": c0},
                                  lengths, reverse, batch_first, training, zoneout,
                                  recurrent_dropout, seed, masks, dtype)
    return y, h_n, c_n, ctx


def lstm_backward(ctx, dy=None, dh_n=None, dc_n=None):
    """Gradients of lstm_forward: dy like y, dh_n (B, P) and dc_n (B, H); None means zeros.

    Returns {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "w_peephole"} (None
    where the argument was None).
    """
    return _backward("lstm", ctx, dy, {"dh_n": dh_n, "dc_n": dc_n})


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, reset_after=True,
                lengths=None, reverse=False, batch_first=False, training=False, zoneout=0.0,
                recurrent_dropout=0.0, seed=None, masks=None, dtype=np.float64):
    """GRU over a whole sequence (gate order r, z, n).

    x (T, B, I) or (B, T, I) if batch_first; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,);
    h0 (B, H); lengths (B,) ints in 1..T. Returns y (x's layout, H features),
    h_n (B, H) and ctx (None unless training). {regularization}
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    y, (h_n,), ctx = _forward("gru", _GRUCell(reset_after), x, params, {"h0": h0}, lengths,
                              reverse, batch_first, training, zoneout, recurrent_dropout,
                              seed, masks, dtype)
    return y, h_n, ctx


def gru_backward(ctx, dy=None, dh_n=None):
    """Gradients of gru_forward: dy like y, dh_n (B, H); None means zeros.

    Returns {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"} (None where the argument was None).
    """
    return _backward("gru", ctx, dy, {"dh_n": dh_n})


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not eps > 0:
        raise ValueError(f"eps: expected a float > 0, got {eps!r}")
    return float(eps)


def layer_norm_lstm_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, *,
                            ln_ih_weight=None, ln_hh_weight=None, ln_c_weight=None,
                            ln_c_bias=None, eps=1e-5, lengths=None, reverse=False,
                            batch_first=False, training=False, zoneout=0.0,
                            recurrent_dropout=0.0, seed=None, masks=None, dtype=np.float64):
    """LayerNorm LSTM (Ba et al., 2016) as Haste's LayerNormLSTM defines it, over a whole
    sequence (gate order i, f, g, o).

    ``LN(v) = (v - mean(v)) / sqrt(var(v) + eps)`` over the features of each row (biased
    variance). Per step: ``a = LN(x W_ih^T) * ln_ih_weight + LN(h W_hh^T) * ln_hh_weight
    + b_ih + b_hh`` (one layer norm over the whole 4H vector of each product, gains only,
    the biases after); ``i, f, g, o = sigma, sigma, tanh, sigma(a)``; ``c' = f*c + i*g``
    (carried unnormalised); ``h' = o * tanh(LN(c') * ln_c_weight + ln_c_bias)``.

    Arguments as lstm_forward (no projection or peepholes) plus ln_ih_weight,
    ln_hh_weight (4H,) (None: ones), ln_c_weight (H,) (None: ones), ln_c_bias (H,)
    (None: zeros), eps > 0. Returns y, h_n (B, H), c_n (B, H), ctx. {regularization}
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh,
              "ln_ih_weight": ln_ih_weight, "ln_hh_weight": ln_hh_weight,
              "ln_c_weight": ln_c_weight, "ln_c_bias": ln_c_bias}
    y, (h_n, c_n), ctx = _forward("layer_norm_lstm", _LayerNormLSTMCell(_check_eps(eps)), x,
                                  params, {"h0": h0, "c0": c0}, lengths, reverse, batch_first,
                                  training, zoneout, recurrent_dropout, seed, masks, dtype)
    return y, h_n, c_n, ctx


def layer_norm_lstm_backward(ctx, dy=None, dh_n=None, dc_n=None):
    """Gradients of layer_norm_lstm_forward: dy like y, dh_n and dc_n (B, H); None means
    zeros.

    Returns {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih_weight",
    "ln_hh_weight", "ln_c_weight", "ln_c_bias"} (None where the argument was None).
    """
    return _backward("layer_norm_lstm", ctx, dy, {"dh_n": dh_n, "dc_n": dc_n})


def layer_norm_gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *,
                           ln_ih_weight=None, ln_hh_weight=None, eps=1e-5, lengths=None,
                           reverse=False, batch_first=False, training=False, zoneout=0.0,
                           recurrent_dropout=0.0, seed=None, masks=None, dtype=np.float64):
    """LayerNorm GRU as Haste's LayerNormGRU defines it, over a whole sequence (gate order
    r, z, n; the n gate as gru_forward's ``reset_after=True``).

    Per step, with LN as in layer_norm_lstm_forward: ``gi = LN(x W_ih^T) * ln_ih_weight
    + b_ih``, ``gh = LN(h W_hh^T) * ln_hh_weight + b_hh`` (one layer norm over the whole
    3H vector of each product, gains only, the biases after); ``r, z = sigma(gi_{r,z} +
    gh_{r,z})``; ``n = tanh(gi_n + r * gh_n)``; ``h' = (1 - z) * n + z * h``.

    Arguments as gru_forward plus ln_ih_weight, ln_hh_weight (3H,) (None: ones), eps > 0.
    Returns y, h_n (B, H), ctx. {regularization}
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh,
              "ln_ih_weight": ln_ih_weight, "ln_hh_weight": ln_hh_weight}
    y, (h_n,), ctx = _forward("layer_norm_gru", _LayerNormGRUCell(_check_eps(eps)), x, params,
                              {"h0": h0}, lengths, reverse, batch_first, training, zoneout,
                              recurrent_dropout, seed, masks, dtype)
    return y, h_n, ctx


def layer_norm_gru_backward(ctx, dy=None, dh_n=None):
    """Gradients of layer_norm_gru_forward: dy like y, dh_n (B, H); None means zeros.

    Returns {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih_weight", "ln_hh_weight"}
    (None where the argument was None).
    """
    return _backward("layer_norm_gru", ctx, dy, {"dh_n": dh_n})


for _function in (rnn_forward, lstm_forward, gru_forward, layer_norm_lstm_forward,
                  layer_norm_gru_forward):
    _function.__doc__ = _function.__doc__.replace("{regularization}", _REGULARIZATION_DOC)
del _function
