"""Plain NumPy float64 reference of the recurrent ops: tanh/relu RNN, LSTM and GRU.

Written for clarity, not speed: one Python loop over time steps. The tests use it as
the oracle for the C++ kernels, and it is itself checked by finite differences.

Shapes: T time steps, B sequences, I input features, H hidden units, G gates
(1 for the RNN, 4 for the LSTM in order i, f, g, o, 3 for the GRU in order r, z, n).

How one layer runs (shared by all three cells, see ``_run_forward``):
at time step t, only the sequences with ``t < lengths[b]`` (the *active* ones) go
through the cell; the others keep their state and get ``y[t, b] = 0``. Steps run
t = 0 .. T-1, or t = T-1 .. 0 when ``reverse``; with the latter, sequence b starts
at its last valid step ``lengths[b] - 1`` because the padded steps before it are
inactive. ``y[t]`` is always the state after processing ``x[t]``.
"""
import numpy as np

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
]

_PARAM_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")


def _sigmoid(a):
    """Logistic function, written with tanh so that no input overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _affine_backward(da, inp, w):
    """Gradients of ``a = inp @ w.T + b``.

    da (N, M), inp (N, K), w (M, K) -> (d_inp (N, K), d_w (M, K), d_b (M,)).
    """
    return da @ w, da.T @ inp, da.sum(axis=0)


class _RNNCell:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh); state (h,)."""

    gates = 1

    def __init__(self, nonlinearity):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, x, state, p):
        """x (N, I), state ((N, H),) -> (new state, cache for backward)."""
        (h,) = state
        a = x @ p["w_ih"].T + p["b_ih"] + h @ p["w_hh"].T + p["b_hh"]
        h_new = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0.0)
        return (h_new,), (x, h, a, h_new)

    def backward(self, d_state, cache, p):
        """d_state ((N, H),) -> (dx (N, I), d_state_prev, dict of parameter gradients)."""
        x, h, a, h_new = cache
        (dh_new,) = d_state
        if self.nonlinearity == "tanh":
            da = dh_new * (1.0 - h_new**2)
        else:
            da = dh_new * (a > 0.0)
        dx, dw_ih, db_ih = _affine_backward(da, x, p["w_ih"])
        dh, dw_hh, db_hh = _affine_backward(da, h, p["w_hh"])
        return dx, (dh,), {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh}


class _LSTMCell:
    """i,f,g,o = sigma,sigma,tanh,sigma(x W_ih^T + b_ih + h W_hh^T + b_hh);
    c' = f*c + i*g; h' = o*tanh(c'); state (h, c)."""

    gates = 4

    def forward(self, x, state, p):
        """x (N, I), state ((N, H), (N, H)) -> (new state, cache for backward)."""
        h, c = state
        a = x @ p["w_ih"].T + p["b_ih"] + h @ p["w_hh"].T + p["b_hh"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (x, h, c, i, f, g, o, tanh_c)

    def backward(self, d_state, cache, p):
        """d_state ((N, H), (N, H)) -> (dx (N, I), d_state_prev, dict of parameter gradients)."""
        x, h, c, i, f, g, o, tanh_c = cache
        dh_new, dc_new = d_state
        dc = dc_new + dh_new * o * (1.0 - tanh_c**2)
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c * f * (1.0 - f)
        da_g = dc * i * (1.0 - g**2)
        da_o = dh_new * tanh_c * o * (1.0 - o)
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        dx, dw_ih, db_ih = _affine_backward(da, x, p["w_ih"])
        dh, dw_hh, db_hh = _affine_backward(da, h, p["w_hh"])
        grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh}
        return dx, (dh, dc * f), grads


class _GRUCell:
    """r,z = sigma(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z}); h' = (1-z)*n + z*h;
    reset_after:     n = tanh(x W_in^T + b_in + r*(h W_hn^T + b_hn));
    not reset_after: n = tanh(x W_in^T + b_in + (r*h) W_hn^T + b_hn); state (h,)."""

    gates = 3

    def __init__(self, reset_after):
        self.reset_after = bool(reset_after)

    def forward(self, x, state, p):
        """x (N, I), state ((N, H),) -> (new state, cache for backward)."""
        (h,) = state
        w_hrz, w_hn = np.split(p["w_hh"], [2 * h.shape[1]], axis=0)
        b_hrz, b_hn = np.split(p["b_hh"], [2 * h.shape[1]])
        gi_r, gi_z, gi_n = np.split(x @ p["w_ih"].T + p["b_ih"], 3, axis=1)
        gh_r, gh_z = np.split(h @ w_hrz.T + b_hrz, 2, axis=1)
        r, z = _sigmoid(gi_r + gh_r), _sigmoid(gi_z + gh_z)
        if self.reset_after:
            gh_n = h @ w_hn.T + b_hn
            n = np.tanh(gi_n + r * gh_n)
        else:
            gh_n = (r * h) @ w_hn.T + b_hn
            n = np.tanh(gi_n + gh_n)
        h_new = (1.0 - z) * n + z * h
        return (h_new,), (x, h, r, z, n, gh_n)

    def backward(self, d_state, cache, p):
        """d_state ((N, H),) -> (dx (N, I), d_state_prev, dict of parameter gradients)."""
        x, h, r, z, n, gh_n = cache
        (dh_new,) = d_state
        w_hrz, w_hn = np.split(p["w_hh"], [2 * h.shape[1]], axis=0)
        da_n = dh_new * (1.0 - z) * (1.0 - n**2)
        da_z = dh_new * (h - n) * z * (1.0 - z)
        dh = dh_new * z
        if self.reset_after:
            dgh_n = da_n * r
            dr = da_n * gh_n
            dh_n_part, dw_hn, db_hn = _affine_backward(dgh_n, h, w_hn)
            dh = dh + dh_n_part
        else:
            d_rh, dw_hn, db_hn = _affine_backward(da_n, r * h, w_hn)
            dr = d_rh * h
            dh = dh + d_rh * r
        da_r = dr * r * (1.0 - r)
        da_rz = np.concatenate([da_r, da_z], axis=1)
        dh_rz_part, dw_hrz, db_hrz = _affine_backward(da_rz, h, w_hrz)
        dx, dw_ih, db_ih = _affine_backward(np.concatenate([da_rz, da_n], axis=1), x, p["w_ih"])
        grads = {
            "w_ih": dw_ih,
            "w_hh": np.concatenate([dw_hrz, dw_hn], axis=0),
            "b_ih": db_ih,
            "b_hh": np.concatenate([db_hrz, db_hn]),
        }
        return dx, (dh + dh_rz_part,), grads


def _as_float64(name, value, shape):
    """A float64 copy-or-view of ``value`` checked against ``shape``."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    return array


def _prepare(op, cell, x, params, states, lengths, batch_first):
    """Check and convert the forward's arguments.

    Returns (x_tm (T, B, I) float64, params dict with zero arrays for missing biases,
    initial states tuple of (B, H), active mask (T, B) bool, bookkeeping dict).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D array ({'B, T, I' if batch_first else 'T, B, I'}), "
                         f"got shape {x.shape}")
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    T, B, I = x_tm.shape
    w_hh = np.asarray(params["w_hh"], dtype=np.float64)
    if w_hh.ndim != 2:
        raise ValueError(f"w_hh: expected a 2-D array (G*H, H), got shape {w_hh.shape}")
    H = w_hh.shape[1]
    GH = cell.gates * H
    p = {
        "w_ih": _as_float64("w_ih", params["w_ih"], (GH, I)),
        "w_hh": _as_float64("w_hh", w_hh, (GH, H)),
    }
    for name in ("b_ih", "b_hh"):
        given = params[name]
        p[name] = np.zeros(GH) if given is None else _as_float64(name, given, (GH,))
    state0 = tuple(np.zeros((B, H)) if value is None else _as_float64(name, value, (B, H))
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
        "shape": (T, B, I, H),
        "given": {name for name, value in {**params, **states}.items() if value is not None},
        "state_names": tuple(states),
    }
    return x_tm, p, state0, active, info


def _run_forward(cell, x_tm, p, state0, active, reverse, keep):
    """The time loop. x_tm (T, B, I), states (B, H), active (T, B).

    Returns y (T, B, H), final states, and the list of per-step records
    (t, active indices, cell cache) when ``keep`` (for backward), else None.
    """
    T, B, _ = x_tm.shape
    H = state0[0].shape[1]
    y = np.zeros((T, B, H))
    state = tuple(s.copy() for s in state0)
    steps = [] if keep else None
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        idx = np.flatnonzero(active[t])
        new, cache = cell.forward(x_tm[t, idx], tuple(s[idx] for s in state), p)
        for s, s_new in zip(state, new):
            s[idx] = s_new
        y[t, idx] = new[0]
        if keep:
            steps.append((t, idx, cache))
    return y, state, steps


def _run_backward(cell, p, steps, dy_tm, d_state, x_shape):
    """The time loop backwards over the records of ``_run_forward``.

    dy_tm (T, B, H), d_state tuple of (B, H) gradients of the final states.
    Returns dx (T, B, I), gradients of the initial states, parameter gradients.
    """
    dx = np.zeros(x_shape)
    d_state = tuple(d.copy() for d in d_state)
    dp = {name: np.zeros_like(p[name]) for name in _PARAM_NAMES}
    for t, idx, cache in reversed(steps):
        d_new = (d_state[0][idx] + dy_tm[t, idx],) + tuple(d[idx] for d in d_state[1:])
        dx_t, d_prev, dp_t = cell.backward(d_new, cache, p)
        dx[t, idx] = dx_t
        for d, d_p in zip(d_state, d_prev):
            d[idx] = d_p
        for name in _PARAM_NAMES:
            dp[name] += dp_t[name]
    return dx, d_state, dp


class _Context:
    """What a forward with ``training=True`` keeps for its backward."""

    def __init__(self, cell, p, steps, info):
        self.cell = cell
        self.params = p
        self.steps = steps
        self.info = info


def _forward(op, cell, x, params, states, lengths, reverse, batch_first, training):
    """Shared forward: returns y in x's layout, final states, ctx or None."""
    x_tm, p, state0, active, info = _prepare(op, cell, x, params, states, lengths, batch_first)
    y, state_n, steps = _run_forward(cell, x_tm, p, state0, active, reverse, training)
    if batch_first:
        y = y.transpose(1, 0, 2).copy()
    ctx = None
    if training:
        ctx = _Context(cell, {name: w.copy() for name, w in p.items()}, steps, info)
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
    T, B, I, H = info["shape"]
    batch_first = info["batch_first"]
    if dy is None:
        dy_tm = np.zeros((T, B, H))
    else:
        dy = _as_float64("dy", dy, (B, T, H) if batch_first else (T, B, H))
        dy_tm = dy.transpose(1, 0, 2) if batch_first else dy
    d_state = tuple(np.zeros((B, H)) if d is None else _as_float64(name, d, (B, H))
                    for name, d in d_state_n.items())
    dx, d_state0, dp = _run_backward(ctx.cell, ctx.params, ctx.steps, dy_tm, d_state, (T, B, I))
    grads = {"x": dx.transpose(1, 0, 2).copy() if batch_first else dx}
    for name, d in zip(info["state_names"], d_state0):
        grads[name] = d
    grads.update(dp)
    return {name: (grad if name == "x" or name in info["given"] else None)
            for name, grad in grads.items()}


def rnn_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, nonlinearity="tanh",
                lengths=None, reverse=False, batch_first=False, training=False):
    """Elman RNN over a whole sequence.

    x (T, B, I) or (B, T, I) if batch_first; w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,);
    h0 (B, H); lengths (B,) ints in 1..T. Returns y (x's layout, H features),
    h_n (B, H) and ctx (None unless training).
    """
    cell = _RNNCell(nonlinearity)
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    y, (h_n,), ctx = _forward("rnn", cell, x, params, {"h0": h0}, lengths, reverse,
                              batch_first, training)
    return y, h_n, ctx


def rnn_backward(ctx, dy=None, dh_n=None):
    """Gradients of rnn_forward: dy like y, dh_n (B, H); None means zeros.

    Returns {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"} (None where the argument was None).
    """
    return _backward("rnn", ctx, dy, {"dh_n": dh_n})


def lstm_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, *, lengths=None,
                 reverse=False, batch_first=False, training=False):
    """LSTM over a whole sequence (gate order i, f, g, o).

    x (T, B, I) or (B, T, I) if batch_first; w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,);
    h0, c0 (B, H); lengths (B,) ints in 1..T. Returns y (x's layout, H features),
    h_n (B, H), c_n (B, H) and ctx (None unless training).
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    y, (h_n, c_n), ctx = _forward("lstm", _LSTMCell(), x, params, {"h0": h0, "c0": c0},
                                  lengths, reverse, batch_first, training)
    return y, h_n, c_n, ctx


def lstm_backward(ctx, dy=None, dh_n=None, dc_n=None):
    """Gradients of lstm_forward: dy like y, dh_n and dc_n (B, H); None means zeros.

    Returns {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"} (None where the argument was None).
    """
    return _backward("lstm", ctx, dy, {"dh_n": dh_n, "dc_n": dc_n})


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, reset_after=True,
                lengths=None, reverse=False, batch_first=False, training=False):
    """GRU over a whole sequence (gate order r, z, n).

    x (T, B, I) or (B, T, I) if batch_first; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,);
    h0 (B, H); lengths (B,) ints in 1..T. Returns y (x's layout, H features),
    h_n (B, H) and ctx (None unless training).
    """
    params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    y, (h_n,), ctx = _forward("gru", _GRUCell(reset_after), x, params, {"h0": h0}, lengths,
                              reverse, batch_first, training)
    return y, h_n, ctx


def gru_backward(ctx, dy=None, dh_n=None):
    """Gradients of gru_forward: dy like y, dh_n (B, H); None means zeros.

    Returns {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"} (None where the argument was None).
    """
    return _backward("gru", ctx, dy, {"dh_n": dh_n})
