"""Bad input to every public function of rnnfast.functional: each case raises one specific
exception type whose message names the argument, the expected and the given value; none crashes.

A case is (id, call, exception, message fragment); ``call`` takes the kit of valid inputs and
ctxs built once per module, so each case changes exactly one thing of a valid call.
"""
import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F

T, B, I, H = 5, 3, 4, 6
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
WORDS = {"rnn": "hidden_size", "lstm": "4*hidden_size", "gru": "3*hidden_size"}


class Kit:
    """Valid float32 inputs of every op, and a training ctx of each forward."""

    def __init__(self, rng):
        f32 = np.float32
        self.x = rng.standard_normal((T, B, I)).astype(f32)
        self.rec = {}
        for op, G in GATES.items():
            args = {
                "x": self.x,
                "w_ih": rng.standard_normal((G * H, I)).astype(f32) * f32(0.3),
                "w_hh": rng.standard_normal((G * H, H)).astype(f32) * f32(0.3),
                "b_ih": rng.standard_normal(G * H).astype(f32),
                "b_hh": rng.standard_normal(G * H).astype(f32),
                "h0": rng.standard_normal((B, H)).astype(f32),
            }
            if op == "lstm":
                args["c0"] = rng.standard_normal((B, H)).astype(f32)
            self.rec[op] = args
        self.y = {op: self.forward(op, training=False)[0] for op in GATES}
        self.ctx = {op: self.forward(op, training=True)[-1] for op in GATES}
        # Conv1D: x (B, L, C_in) = (2, 9, 4), w (C_out, C_in, K) = (6, 4, 3), y (2, 7, 6).
        self.cx = rng.standard_normal((2, 9, 4)).astype(f32)
        self.cw = rng.standard_normal((6, 4, 3)).astype(f32)
        self.cb = rng.standard_normal(6).astype(f32)
        self.cy, self.cctx = F.conv1d_forward(self.cx, self.cw, self.cb, training=True)
        self.py, self.pctx = F.max_pool1d_forward(self.cx, pool_size=2, training=True)
        self.gy, self.gmctx = F.global_max_pool1d_forward(self.cx, training=True)
        self.gactx = F.global_avg_pool1d_forward(self.cx, training=True)[1]
        # Linear: x (2, 9, 4), w (out, in) = (5, 4), y (2, 9, 5).
        self.lw = rng.standard_normal((5, 4)).astype(f32)
        self.lb = rng.standard_normal(5).astype(f32)
        self.ly, self.lctx = F.linear_forward(self.cx, self.lw, self.lb, training=True)

    def forward(self, op, training=False, **changes):
        args = dict(self.rec[op], **changes)
        return getattr(F, op + "_forward")(**args, training=training)


@pytest.fixture(scope="module")
def kit():
    return Kit(np.random.default_rng(12345))


def huge(shape, dtype=np.float32):
    """A read-only view of any size that costs no memory."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def uninitialised(cls):
    """An instance whose C++ object no forward ever constructed."""
    return cls.__new__(cls)


def big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


# ------------------------------------------------------------------ recurrent forwards


def recurrent_forward_cases(op):
    G, gw = GATES[op], WORDS[op]
    fw = lambda k, **c: k.forward(op, **c)  # noqa: E731
    no_states = {"h0": None, "c0": None} if op == "lstm" else {"h0": None}
    cases = [
        ("x-int64", lambda k: fw(k, x=k.x.astype(np.int64)), TypeError,
         "x: expected a float32 or float64 array, got dtype int64"),
        ("x-float16", lambda k: fw(k, x=k.x.astype(np.float16)), TypeError,
         "x: expected a float32 or float64 array, got dtype float16"),
        ("x-complex", lambda k: fw(k, x=k.x.astype(np.complex64)), TypeError,
         "x: expected a float32 or float64 array, got dtype complex64"),
        ("x-bool", lambda k: fw(k, x=k.x > 0), TypeError,
         "x: expected a float32 or float64 array, got dtype bool"),
        ("x-None", lambda k: fw(k, x=None), TypeError,
         "x: expected a float32 or float64 array, got NoneType"),
        ("x-int-list", lambda k: fw(k, x=[[[1, 2, 3, 4]]]), TypeError,
         "x: expected a float32 or float64 array, got list (dtype int64)"),
        ("x-2d", lambda k: fw(k, x=k.x[0]), ValueError,
         "x: expected a 3-D array (seq_len, batch, input_size), got shape (3, 4)"),
        ("x-4d", lambda k: fw(k, x=k.x[None]), ValueError,
         "x: expected a 3-D array (seq_len, batch, input_size), got shape (1, 5, 3, 4)"),
        ("x-T0", lambda k: fw(k, x=k.x[:0]), ValueError,
         "x: expected seq_len >= 1 and input_size >= 1 in (seq_len, batch, input_size), got "
         "shape (0, 3, 4)"),
        ("x-I0", lambda k: fw(k, x=k.x[..., :0]), ValueError,
         "x: expected seq_len >= 1 and input_size >= 1 in (seq_len, batch, input_size), got "
         "shape (5, 3, 0)"),
        ("x-str", lambda k: fw(k, x="not an array"), TypeError,
         "x: expected a float32 or float64 array, got str (dtype <U12)"),
        ("x-float64-w-float32", lambda k: fw(k, x=k.x.astype(np.float64)), TypeError,
         "w_hh: expected dtype float64 (the dtype of x), got float32"),
        ("w_ih-shape", lambda k: fw(k, w_ih=k.rec[op]["w_ih"][:, :-1]), ValueError,
         f"w_ih: expected shape ({gw}, input_size) = ({G * H}, {I}), got ({G * H}, {I - 1}): "
         f"input_size is {I} from x but {I - 1} from w_ih"),
        ("w_ih-columns", lambda k: fw(k, w_ih=np.zeros((G * H, I + 1), np.float32)), ValueError,
         f"w_ih: expected shape ({gw}, input_size) = ({G * H}, {I}), got ({G * H}, {I + 1}): "
         f"input_size is {I} from x but {I + 1} from w_ih"),
        ("w_ih-rows", lambda k: fw(k, w_ih=np.zeros((G * (H - 1), I), np.float32)), ValueError,
         f"w_ih: expected shape ({gw}, input_size) = ({G * H}, {I}), got ({G * (H - 1)}, {I}): "
         f"hidden_size is {H} from w_hh but {H - 1} from w_ih"
         + (f" ({G * (H - 1)} = {G}*{H - 1})" if G > 1 else "")),
        ("w_ih-dtype", lambda k: fw(k, w_ih=k.rec[op]["w_ih"].astype(np.float64)), TypeError,
         "w_ih: expected dtype float32 (the dtype of x), got float64"),
        ("w_ih-int", lambda k: fw(k, w_ih=k.rec[op]["w_ih"].astype(np.int32)), TypeError,
         "w_ih: expected a float32 or float64 array, got dtype int32"),
        ("w_hh-gates", lambda k: fw(k, w_hh=np.zeros(((G + 1) * H, H), np.float32)), ValueError,
         f"w_hh: expected shape ({gw}, hidden_size), got ({(G + 1) * H}, {H}): "),
        ("w_hh-rows-vs-columns", lambda k: fw(k, w_hh=np.zeros((G * H, H - 1), np.float32)),
         ValueError, f"w_hh: expected shape ({gw}, hidden_size), got ({G * H}, {H - 1}): "
         f"hidden_size is {H} from its rows" + (f" ({G * H} = {G}*{H})" if G > 1 else "")
         + f" but {H - 1} from its columns"),
        ("w_hh-None", lambda k: fw(k, w_hh=None), TypeError,
         "w_hh: expected a float32 or float64 array, got NoneType (dtype object)"),
        ("w_hh-1d", lambda k: fw(k, w_hh=k.rec[op]["w_hh"].ravel()), ValueError,
         f"w_hh: expected a 2-D array, got shape ({G * H * H},)"),
        ("w_hh-H0", lambda k: fw(k, w_hh=np.zeros((0, 0), np.float32)), ValueError,
         f"w_hh: expected shape ({gw}, hidden_size) with hidden_size >= 1, got (0, 0)"),
        ("b_ih-shape", lambda k: fw(k, b_ih=k.rec[op]["b_ih"][:-1]), ValueError,
         f"b_ih: expected shape ({gw},) = ({G * H},), got ({G * H - 1},)"),
        ("b_hh-dtype", lambda k: fw(k, b_hh=k.rec[op]["b_hh"].astype(np.float64)), TypeError,
         "b_hh: expected dtype float32 (the dtype of x), got float64"),
        ("b_hh-2d", lambda k: fw(k, b_hh=k.rec[op]["b_hh"][None]), ValueError,
         f"b_hh: expected shape ({gw},) = ({G * H},), got (1, {G * H})"),
        ("h0-shape", lambda k: fw(k, h0=k.rec[op]["h0"].T), ValueError,
         f"h0: expected shape (batch, hidden_size) = ({B}, {H}), got ({H}, {B})"),
        ("h0-batch", lambda k: fw(k, h0=np.zeros((B + 1, H), np.float32)), ValueError,
         f"h0: expected shape (batch, hidden_size) = ({B}, {H}), got ({B + 1}, {H}): batch is "
         f"{B} from x but {B + 1} from h0"),
        ("h0-4d", lambda k: fw(k, h0=k.rec[op]["h0"][None, None]), ValueError,
         f"h0: expected shape (batch, hidden_size) = ({B}, {H}), got (1, 1, {B}, {H})"),
        ("h0-str", lambda k: fw(k, h0="zeros"), TypeError,
         "h0: expected a float32 or float64 array, got str"),
        ("lengths-float", lambda k: fw(k, lengths=np.array([5.0, 2.0, 1.0])), TypeError,
         "lengths: expected an integer array, got dtype float64"),
        ("lengths-bool", lambda k: fw(k, lengths=np.ones(B, bool)), TypeError,
         "lengths: expected an integer array, got dtype bool"),
        ("lengths-zero", lambda k: fw(k, lengths=np.array([5, 0, 1])), ValueError,
         "lengths: every entry must be in 1..T = 1..5, got 0 at index 1"),
        ("lengths-past-T", lambda k: fw(k, lengths=np.array([5, 1, 6])), ValueError,
         "lengths: every entry must be in 1..T = 1..5, got 6 at index 2"),
        ("lengths-uint64-max", lambda k: fw(k, lengths=np.array([5, 2**64 - 1, 1], np.uint64)),
         ValueError, "got 18446744073709551615 at index 1"),
        ("lengths-negative", lambda k: fw(k, lengths=np.array([5, -1, 3])), ValueError,
         "lengths: every entry must be in 1..T = 1..5, got -1 at index 1"),
        ("lengths-2d", lambda k: fw(k, lengths=np.array([[5, 2, 1]])), ValueError,
         "lengths: expected shape (batch,) = (3,), got (1, 3)"),
        ("lengths-shape", lambda k: fw(k, lengths=np.array([5, 2])), ValueError,
         "lengths: expected shape (batch,) = (3,), got (2,)"),
        ("lengths-scalar", lambda k: fw(k, lengths=5), ValueError,
         "lengths: expected shape (batch,) = (3,), got ()"),
        ("lengths-str", lambda k: fw(k, lengths="abc"), TypeError,
         "lengths: expected an integer array, got dtype <U3"),
        ("huge-overflows", lambda k: fw(k, x=huge((2**20, 2**20, 2**20)),
                                        w_ih=huge((G * H, 2**20)), **no_states), ValueError,
         f"x and hidden_size: sizes (1048576, 1048576, {(G + 2) * H + 2**20}) are too large "
         "to allocate"),
        ("huge-no-memory", lambda k: fw(k, x=huge((2, 2, 2**42)), w_ih=huge((G * H, 2**42)),
                                        **no_states), MemoryError, "Unable to allocate"),
    ]
    if op == "rnn":
        cases.append(("nonlinearity", lambda k: fw(k, nonlinearity="sigmoid"), ValueError,
                      "nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'"))
        cases.append(("nonlinearity-None", lambda k: fw(k, nonlinearity=None), ValueError,
                      "nonlinearity: expected 'tanh' or 'relu', got None"))
        cases.append(("nonlinearity-bytes", lambda k: fw(k, nonlinearity=b"tanh"), ValueError,
                      "nonlinearity: expected 'tanh' or 'relu', got b'tanh'"))
        cases.append(("nonlinearity-upper", lambda k: fw(k, nonlinearity="TANH"), ValueError,
                      "nonlinearity: expected 'tanh' or 'relu', got 'TANH'"))
    if op == "lstm":
        cases.append(("c0-shape", lambda k: fw(k, c0=k.rec[op]["c0"][:, :-1]), ValueError,
                      f"c0: expected shape (batch, hidden_size) = ({B}, {H}), got ({B}, {H - 1})"))
        cases.append(("c0-int", lambda k: fw(k, c0=k.rec[op]["c0"].astype(np.int16)), TypeError,
                      "c0: expected a float32 or float64 array, got dtype int16"))
        cases.append(("b_ih-not-gates", lambda k: fw(k, b_ih=np.zeros(4 * H - 1, np.float32)),
                      ValueError, f"b_ih: expected shape (4*hidden_size,) = ({4 * H},), got "
                      f"({4 * H - 1},): {4 * H - 1} is not a multiple of 4 (4*hidden_size, with "
                      f"hidden_size = {H} from w_hh)"))
        cases.append(("w_peephole-shape", lambda k: fw(k, w_peephole=np.zeros((4, H), np.float32)),
                      ValueError, f"w_peephole: expected shape (3, hidden_size) = (3, {H}) (rows "
                      f"p_i, p_f, p_o; hidden_size from w_hh), got (4, {H})"))
        cases.append(("w_peephole-1d", lambda k: fw(k, w_peephole=np.zeros(3 * H, np.float32)),
                      ValueError, f"w_peephole: expected shape (3, hidden_size) = (3, {H})"))
        cases.append(("w_peephole-dtype", lambda k: fw(k, w_peephole=np.zeros((3, H))),
                      TypeError, "w_peephole: expected dtype float32 (the dtype of x), got float64"))
        f32 = np.float32
        cases.append(("w_hr-1d", lambda k: fw(k, w_hr=np.zeros(H, f32)), ValueError,
                      "w_hr: expected a 2-D array"))
        cases.append(("w_hr-empty", lambda k: fw(k, w_hr=np.zeros((0, H), f32)), ValueError,
                      f"w_hr: expected shape (proj_size, hidden_size) with both >= 1, got (0, {H})"))
        cases.append(("w_hr-dtype", lambda k: fw(k, w_hr=np.zeros((2, H))), TypeError,
                      "w_hr: expected dtype float32 (the dtype of x), got float64"))
        # w_hh of the plain LSTM given with a projection of 2 features
        cases.append(("w_hh-not-proj", lambda k: fw(k, w_hr=np.zeros((2, H), f32)), ValueError,
                      f"w_hh: expected shape (4*hidden_size, proj_size) = ({4 * H}, 2), got "
                      f"({4 * H}, {H}): proj_size is 2 from w_hr but {H} from w_hh"))
        cases.append(("h0-not-proj", lambda k: fw(
            k, w_hr=np.zeros((2, H), f32), w_hh=np.zeros((4 * H, 2), f32)), ValueError,
            f"h0: expected shape (batch, proj_size) = ({B}, 2), got ({B}, {H}): proj_size is 2 "
            f"from w_hr but {H} from h0"))
        cases.append(("w_ih-not-proj-hidden", lambda k: fw(
            k, w_hr=np.zeros((2, H + 1), f32), w_hh=np.zeros((4 * H + 4, 2), f32), h0=None),
            ValueError, f"w_ih: expected shape (4*hidden_size, input_size) = ({4 * H + 4}, {I}), "
            f"got ({4 * H}, {I}): hidden_size is {H + 1} from w_hr but {H} from w_ih"))
        cases.append(("w_peephole-int", lambda k: fw(k, w_peephole=np.zeros((3, H), np.int8)),
                      TypeError, "w_peephole: expected a float32 or float64 array, got dtype int8"))
    if op == "gru":
        cases.append(("batch_first-2d", lambda k: fw(k, x=k.x[0], batch_first=True), ValueError,
                      "x: expected a 3-D array (batch, seq_len, input_size), got shape (3, 4)"))
        cases.append(("c0", lambda k: fw(k, c0=np.zeros((B, H), np.float32)), TypeError,
                      "got an unexpected keyword argument 'c0'"))
    # zoneout: the rate, the training masks (through masks=), their shapes and dtypes
    zh = np.zeros((T, B, H), np.float32)
    both = {"zoneout_h": zh, "zoneout_c": zh} if op == "lstm" else {"zoneout_h": zh}
    cases += [
        ("zoneout-1", lambda k: fw(k, zoneout=1.0), ValueError,
         "zoneout: expected a float in [0, 1), got 1.0"),
        ("zoneout-negative", lambda k: fw(k, zoneout=-0.5, training=True), ValueError,
         "zoneout: expected a float in [0, 1), got -0.5"),
        ("zoneout-nan", lambda k: fw(k, zoneout=float("nan")), ValueError,
         "zoneout: expected a float in [0, 1), got nan"),
        ("zoneout-str", lambda k: fw(k, zoneout="0.1"), TypeError,
         "zoneout: expected a float in [0, 1), got str"),
        ("zoneout-bool", lambda k: fw(k, zoneout=True), TypeError,
         "zoneout: expected a float in [0, 1), got bool"),
        ("zoneout-masks-shape", lambda k: fw(k, zoneout=0.5, training=True, masks=dict(
            both, zoneout_h=zh[:, :, :-1])), ValueError,
         f"zoneout_h: expected shape (seq_len, batch, hidden_size) = ({T}, {B}, {H}), got "
         f"({T}, {B}, {H - 1}): hidden_size is {H} from w_hh but {H - 1} from zoneout_h"),
        ("zoneout-masks-batch-major", lambda k: fw(k, zoneout=0.5, training=True, masks=dict(
            both, zoneout_h=zh.transpose(1, 0, 2))), ValueError,
         f"zoneout_h: expected shape (seq_len, batch, hidden_size) = ({T}, {B}, {H}), got "
         f"({B}, {T}, {H})"),
        ("zoneout-masks-inference", lambda k: fw(k, zoneout=0.5, masks=both), ValueError,
         "masks: only for training=True (inference uses the zoneout expectation and drops "
         "nothing)"),
        ("zoneout-masks-list", lambda k: fw(k, zoneout=0.5, training=True, masks=[zh]),
         TypeError, "masks: expected a dict like recurrent_masks returns, got list"),
        ("zoneout-masks-key", lambda k: fw(k, zoneout=0.5, training=True,
                                           masks={"zoneout_x": zh}), ValueError,
         "masks: unexpected key 'zoneout_x'"),
        ("zoneout-masks-zero-rate", lambda k: fw(k, zoneout=0.0, training=True, masks=both),
         ValueError, "zoneout_h: only for training=True with zoneout > 0 (got zoneout=0)"),
    ]
    # recurrent dropout: the rate, the training masks (G, B, H) through masks=
    rm = np.ones((G, B, H), np.float32)
    cases += [
        ("recurrent_dropout-1", lambda k: fw(k, recurrent_dropout=1.0, training=True),
         ValueError, "recurrent_dropout: expected a float in [0, 1), got 1.0"),
        ("recurrent_dropout-negative", lambda k: fw(k, recurrent_dropout=-0.2), ValueError,
         "recurrent_dropout: expected a float in [0, 1), got -0.2"),
        ("recurrent_dropout-nan", lambda k: fw(k, recurrent_dropout=float("nan")), ValueError,
         "recurrent_dropout: expected a float in [0, 1), got nan"),
        ("recurrent_dropout-str", lambda k: fw(k, recurrent_dropout="0.1"), TypeError,
         "recurrent_dropout: expected a float in [0, 1), got str"),
        ("recurrent_dropout-bool", lambda k: fw(k, recurrent_dropout=True), TypeError,
         "recurrent_dropout: expected a float in [0, 1), got bool"),
        ("recurrent-mask-gates", lambda k: fw(k, recurrent_dropout=0.5, training=True,
                                              masks={"recurrent": rm[:1] if G > 1 else
                                                     np.ones((2, B, H), np.float32)}),
         ValueError, f"recurrent_mask: expected shape (gates, batch, hidden_size) = ({G}, {B}, "
         f"{H}), got ({1 if G > 1 else 2}, {B}, {H}): gates is {G} from "),
        ("recurrent-mask-hidden", lambda k: fw(k, recurrent_dropout=0.5, training=True,
                                               masks={"recurrent": rm[:, :, :-1]}), ValueError,
         f"recurrent_mask: expected shape (gates, batch, hidden_size) = ({G}, {B}, {H}), got "
         f"({G}, {B}, {H - 1}): hidden_size is {H} from w_hh but {H - 1} from recurrent_mask"),
        ("recurrent-mask-time-major", lambda k: fw(k, recurrent_dropout=0.5, training=True,
                                                   masks={"recurrent": np.ones((T, B, H),
                                                                               np.float32)}),
         ValueError, "recurrent_mask: expected shape (gates, batch, hidden_size)"),
        ("recurrent-mask-str", lambda k: fw(k, recurrent_dropout=0.5, training=True,
                                            masks={"recurrent": "ones"}), TypeError,
         "masks['recurrent']: expected a float array, got str"),
        ("recurrent-mask-without-rate", lambda k: fw(k, training=True,
                                                     masks={"recurrent": rm}), ValueError,
         "masks: 'recurrent' is given exactly when recurrent_dropout > 0"),
        ("recurrent-mask-missing", lambda k: fw(k, recurrent_dropout=0.5, training=True,
                                                masks={}), ValueError,
         "masks: 'recurrent' is given exactly when recurrent_dropout > 0"),
        ("recurrent-mask-inference", lambda k: fw(k, recurrent_dropout=0.5,
                                                  masks={"recurrent": rm}), ValueError,
         "masks: only for training=True"),
        # the masks' seed (recurrent_masks)
        ("seed-negative", lambda k: fw(k, zoneout=0.5, training=True, seed=-1), ValueError,
         "seed: expected an int in 0..2**64-1 or None, got -1"),
        ("seed-huge", lambda k: fw(k, recurrent_dropout=0.5, training=True, seed=2 ** 64),
         ValueError, f"seed: expected an int in 0..2**64-1 or None, got {2 ** 64}"),
        ("seed-float", lambda k: fw(k, recurrent_dropout=0.5, training=True, seed=1.0),
         TypeError, "seed: expected an int in 0..2**64-1 or None, got float"),
        # the bfloat16 packings' token (new_weights_token)
        ("weights-token-negative", lambda k: fw(k, precision="bfloat16", weights_token=-1),
         ValueError, "weights_token: expected an int in 0..2**64-1, got -1"),
        ("weights-token-str", lambda k: fw(k, precision="bfloat16", weights_token="1"),
         TypeError, "weights_token: expected an int in 0..2**64-1, got <class 'str'>"),
    ]
    if op == "lstm":
        cases.append(("zoneout-masks-missing-c", lambda k: fw(
            k, zoneout=0.5, training=True, masks={"zoneout_h": zh}), ValueError,
            "zoneout_c: required when training with zoneout > 0"))
    else:
        cases.append(("zoneout-masks-c", lambda k: fw(
            k, zoneout=0.5, training=True, masks={"zoneout_h": zh, "zoneout_c": zh}),
            ValueError, "zoneout_c: only an LSTM has a cell state"))
    return [(f"{op}_forward-{name}", *rest) for name, *rest in cases]


def recurrent_backward_cases(op):
    other = "gru" if op == "lstm" else "lstm"
    bw = getattr(F, op + "_backward")
    cases = [
        ("ctx-None", lambda k: bw(None, k.y[op]), ValueError,
         f"ctx: got None; call {op}_forward(..., training=True) to get a ctx"),
        ("ctx-inference", lambda k: bw(k.forward(op)[-1], k.y[op]), ValueError,
         f"ctx: got None; call {op}_forward(..., training=True)"),
        ("ctx-dict", lambda k: bw({"x": k.x}, k.y[op]), TypeError,
         f"ctx: expected the ctx returned by {op}_forward(..., training=True), got <class 'dict'>"),
        ("ctx-other-cell", lambda k: bw(k.ctx[other], k.y[op]), ValueError,
         f"ctx: expected the ctx of {op}_forward, got the ctx of {other}_forward"),
        ("ctx-conv", lambda k: bw(k.cctx, k.y[op]), TypeError,
         f"ctx: expected the ctx returned by {op}_forward(..., training=True), got "
         "<class 'rnnfast._C.Conv1dCtx'>"),
        ("ctx-uninitialised", lambda k: bw(uninitialised(_C.RecurrentCtx), k.y[op]), TypeError,
         "got an uninitialised <class 'rnnfast._C.RecurrentCtx'>"),
        ("dy-shape", lambda k: bw(k.ctx[op], k.y[op][:, :, :-1]), ValueError,
         f"dy: expected shape (seq_len, batch, hidden_size) = ({T}, {B}, {H}), got ({T}, {B}, {H - 1})"),
        ("dy-dtype", lambda k: bw(k.ctx[op], k.y[op].astype(np.float64)), TypeError,
         "dy: expected dtype float32 (the dtype of the forward's x), got float64"),
        ("dy-int", lambda k: bw(k.ctx[op], k.y[op].astype(np.int32)), TypeError,
         "dy: expected a float32 or float64 array, got dtype int32"),
        ("dh_n-shape", lambda k: bw(k.ctx[op], k.y[op], k.y[op][-1, :, :-1]), ValueError,
         f"dh_n: expected shape (batch, hidden_size) = ({B}, {H}), got ({B}, {H - 1})"),
        ("dh_n-object", lambda k: bw(k.ctx[op], k.y[op], object()), TypeError,
         "dh_n: expected a float32 or float64 array, got object"),
    ]
    if op == "lstm":
        cases.append(("dc_n-shape", lambda k: bw(k.ctx[op], None, None, k.y[op][-1, :1]), ValueError,
                      f"dc_n: expected shape (batch, hidden_size) = ({B}, {H}), got (1, {H})"))
        cases.append(("dc_n-1d", lambda k: bw(k.ctx[op], None, None, k.y[op][-1, :, 0]), ValueError,
                      f"dc_n: expected shape (batch, hidden_size) = ({B}, {H}), got ({B},)"))
    return [(f"{op}_backward-{name}", *rest) for name, *rest in cases]


# ------------------------------------------------------------------ LayerNorm LSTM / GRU


def layer_norm_cases(op):
    """The LayerNorm cells' own arguments (gains, eps) and their ctx; the plain cells' arguments
    are checked by the same rules (recurrent_forward_cases)."""
    G = GATES[op]
    fw = getattr(F, f"layer_norm_{op}_forward")
    bw = getattr(F, f"layer_norm_{op}_backward")
    other = "gru" if op == "lstm" else "lstm"

    def call(k, **change):
        args = {key: v for key, v in k.rec[op].items()}
        return fw(**dict(args, **change), training=True)

    def ctx(k):
        return call(k)[-1]

    cases = [
        ("ln_ih_weight-shape", lambda k: call(k, ln_ih_weight=np.ones(G * H + 1, np.float32)),
         ValueError, f"ln_ih_weight: expected shape ({G}*hidden_size,) = ({G * H},), got "
         f"({G * H + 1},)"),
        ("ln_hh_weight-2d", lambda k: call(k, ln_hh_weight=np.ones((G, H), np.float32)),
         ValueError, f"ln_hh_weight: expected shape ({G}*hidden_size,) = ({G * H},), got "
         f"({G}, {H})"),
        ("ln_ih_weight-dtype", lambda k: call(k, ln_ih_weight=np.ones(G * H)), TypeError,
         "ln_ih_weight: expected dtype float32 (the dtype of x), got float64"),
        ("ln_hh_weight-int", lambda k: call(k, ln_hh_weight=np.ones(G * H, np.int32)),
         TypeError, "ln_hh_weight: expected a float32 or float64 array, got dtype int32"),
        ("eps-zero", lambda k: call(k, eps=0.0), ValueError,
         "eps: expected a finite float > 0, got 0.0"),
        ("eps-negative", lambda k: call(k, eps=-1e-5), ValueError,
         "eps: expected a finite float > 0, got -1e-05"),
        ("eps-nan", lambda k: call(k, eps=float("nan")), ValueError,
         "eps: expected a finite float > 0, got nan"),
        ("eps-str", lambda k: call(k, eps="1e-5"), TypeError,
         "eps: expected a float > 0, got '1e-5' of type <class 'str'>"),
        ("w_hh-rows", lambda k: call(k, w_hh=np.ones((G * H + 1, H), np.float32)), ValueError,
         f"w_hh: expected shape ({G}*hidden_size, hidden_size) = ({G * H}, {H}), got "
         f"({G * H + 1}, {H})"),
        ("ctx-None", lambda k: bw(None), ValueError,
         f"ctx: got None; call layer_norm_{op}_forward(..., training=True) to get a ctx"),
        ("ctx-plain-cell", lambda k: bw(k.ctx[op]), TypeError,
         f"ctx: expected the ctx returned by layer_norm_{op}_forward(..., training=True), got "
         "<class 'rnnfast._C.RecurrentCtx'>"),
        ("ctx-other-cell", lambda k: bw(getattr(F, f"layer_norm_{other}_forward")(
            **k.rec[other], training=True)[-1]), ValueError,
         f"ctx: expected the ctx of layer_norm_{op}_forward, got the ctx of "
         f"layer_norm_{other}_forward"),
        ("ctx-uninitialised", lambda k: bw(uninitialised(_C.LayerNormRecurrentCtx)), TypeError,
         "got an uninitialised <class 'rnnfast._C.LayerNormRecurrentCtx'>"),
        ("dy-shape", lambda k: bw(ctx(k), k.y[op][:, :, :-1]), ValueError,
         f"dy: expected shape (seq_len, batch, hidden_size) = ({T}, {B}, {H}), got "
         f"({T}, {B}, {H - 1})"),
        ("dh_n-dtype", lambda k: bw(ctx(k), None, k.y[op][-1].astype(np.float64)), TypeError,
         "dh_n: expected dtype float32 (the dtype of the forward's x), got float64"),
    ]
    # zoneout: the plain cells' rules (the rate, the seed, the training masks through masks=)
    zh = np.zeros((T, B, H), np.float32)
    both = {"zoneout_h": zh, "zoneout_c": zh} if op == "lstm" else {"zoneout_h": zh}

    def infer(k, **change):
        return fw(**dict(k.rec[op], **change))

    cases += [
        ("zoneout-1", lambda k: infer(k, zoneout=1.0), ValueError,
         "zoneout: expected a float in [0, 1), got 1.0"),
        ("zoneout-negative", lambda k: call(k, zoneout=-0.1), ValueError,
         "zoneout: expected a float in [0, 1), got -0.1"),
        ("zoneout-nan", lambda k: call(k, zoneout=float("nan")), ValueError,
         "zoneout: expected a float in [0, 1), got nan"),
        ("zoneout-str", lambda k: infer(k, zoneout="x"), TypeError,
         "zoneout: expected a float in [0, 1), got str"),
        ("zoneout-bool", lambda k: call(k, zoneout=True), TypeError,
         "zoneout: expected a float in [0, 1), got bool"),
        ("zoneout-seed-negative", lambda k: call(k, zoneout=0.5, seed=-1), ValueError,
         "seed: expected an int in 0..2**64-1 or None, got -1"),
        ("zoneout-seed-huge", lambda k: call(k, zoneout=0.5, seed=2 ** 64), ValueError,
         f"seed: expected an int in 0..2**64-1 or None, got {2 ** 64}"),
        ("zoneout-seed-float", lambda k: call(k, zoneout=0.5, seed=1.0), TypeError,
         "seed: expected an int in 0..2**64-1 or None, got float"),
        ("zoneout-seed-str", lambda k: call(k, zoneout=0.5, seed="1"), TypeError,
         "seed: expected an int in 0..2**64-1 or None, got str"),
        ("zoneout-masks-shape", lambda k: call(k, zoneout=0.5, masks=dict(
            both, zoneout_h=zh[:, :, :-1])), ValueError,
         f"zoneout_h: expected shape (seq_len, batch, hidden_size) = ({T}, {B}, {H}), got "
         f"({T}, {B}, {H - 1}): hidden_size is {H} from w_hh but {H - 1} from zoneout_h"),
        ("zoneout-masks-dtype", lambda k: call(k, zoneout=0.5, masks=dict(
            both, zoneout_h=zh.astype(np.float64).astype(object))), TypeError,
         "masks['zoneout_h']: expected a float array, got ndarray"),
        ("zoneout-masks-inference", lambda k: infer(k, zoneout=0.5, masks=both), ValueError,
         "masks: only for training=True (inference uses the zoneout expectation and drops "
         "nothing)"),
        ("zoneout-masks-key", lambda k: call(k, zoneout=0.5, masks={"zoneout_x": zh}),
         ValueError, "masks: unexpected key 'zoneout_x'"),
        ("zoneout-masks-zero-rate", lambda k: call(k, zoneout=0.0, masks=both), ValueError,
         "zoneout_h: only for training=True with zoneout > 0 (got zoneout=0)"),
        ("zoneout-recurrent-dropout", lambda k: call(k, zoneout=0.5, recurrent_dropout=0.5),
         TypeError, "got an unexpected keyword argument 'recurrent_dropout'"),
    ]
    if op == "lstm":
        cases += [
            ("zoneout-masks-missing-c", lambda k: call(k, zoneout=0.5, masks={"zoneout_h": zh}),
             ValueError, "zoneout_c: required when training with zoneout > 0"),
            ("ln_c_weight-shape", lambda k: call(k, ln_c_weight=np.ones(G * H, np.float32)),
             ValueError, f"ln_c_weight: expected shape (hidden_size,) = ({H},), got ({G * H},)"),
            ("ln_c_bias-dtype", lambda k: call(k, ln_c_bias=np.zeros(H)), TypeError,
             "ln_c_bias: expected dtype float32 (the dtype of x), got float64"),
            ("dc_n-shape", lambda k: bw(ctx(k), None, None, k.y[op][-1, :1]), ValueError,
             f"dc_n: expected shape (batch, hidden_size) = ({B}, {H}), got (1, {H})"),
        ]
    else:
        cases += [("ln_c_weight", lambda k: call(k, ln_c_weight=np.ones(H, np.float32)),
                   TypeError, "got an unexpected keyword argument 'ln_c_weight'"),
                  ("zoneout-masks-c", lambda k: call(k, zoneout=0.5, masks=dict(
                      both, zoneout_c=zh)), ValueError,
                   "zoneout_c: only an LSTM has a cell state")]
    return ([(f"layer_norm_{op}_forward-{c[0]}", *c[1:]) for c in cases
             if not c[0].startswith(("ctx", "dy", "dh_n", "dc_n"))]
            + [(f"layer_norm_{op}_backward-{c[0]}", *c[1:]) for c in cases
               if c[0].startswith(("ctx", "dy", "dh_n", "dc_n"))])


# ------------------------------------------------------------------ conv1d


def conv(k, x=None, w=None, b=None, **kw):
    return F.conv1d_forward(k.cx if x is None else x, k.cw if w is None else w, b, **kw)


CONV_FORWARD = [
    ("activation", lambda k: conv(k, activation="tanh"), ValueError,
     "activation: expected None or 'relu', got 'tanh'"),
    ("algorithm", lambda k: conv(k, algorithm="fast"), ValueError,
     "algorithm: expected 'auto', 'direct' or 'winograd', got 'fast'"),
    ("algorithm-type", lambda k: conv(k, algorithm=1), TypeError,
     "algorithm: expected 'auto', 'direct' or 'winograd', got 1"),
    ("algorithm-winograd-stride", lambda k: conv(k, algorithm="winograd", stride=2), ValueError,
     "algorithm: 'winograd' needs stride=1, got float32 arrays, precision 'float32', "
     "channels_last=True, groups=1, stride=2, dilation=1, kernel_size=3"),
    ("x-int", lambda k: conv(k, x=k.cx.astype(np.int64)), TypeError,
     "x: expected a float32 or float64 array, got dtype int64"),
    ("x-2d", lambda k: conv(k, x=k.cx[0]), ValueError,
     "x: expected a 3-D array (batch, length, channels) (channels_last=True), got shape (9, 4)"),
    ("x-2d-channels-first", lambda k: conv(k, x=k.cx[0], channels_last=False), ValueError,
     "x: expected a 3-D array (batch, channels, length) (channels_last=False), got shape (9, 4)"),
    ("x-L0", lambda k: conv(k, x=k.cx[:, :0]), ValueError,
     "x: expected length >= 1 and channels >= 1 in (batch, length, channels)"),
    ("x-C0", lambda k: conv(k, x=k.cx[:, :, :0]), ValueError,
     "x: expected length >= 1 and channels >= 1"),
    ("w-dtype", lambda k: conv(k, w=k.cw.astype(np.float64)), TypeError,
     "w: expected dtype float32 (the dtype of x), got float64"),
    ("w-2d", lambda k: conv(k, w=k.cw[0]), ValueError,
     "w: expected a 3-D array (out_channels, in_channels // groups, kernel_size) with every "
     "dimension >= 1, got shape (4, 3)"),
    ("w-K0", lambda k: conv(k, w=k.cw[:, :, :0]), ValueError,
     "with every dimension >= 1, got shape (6, 4, 0)"),
    ("w-channels", lambda k: conv(k, w=k.cw[:, :3]), ValueError,
     "w: expected shape (out_channels, in_channels // groups, kernel_size) = (6, 4, 3), got "
     "(6, 3, 3): in_channels // groups is 4 from x and groups (4 // 1) but 3 from w"),
    ("b-shape", lambda k: conv(k, b=k.cb[:-1]), ValueError,
     "b: expected shape (out_channels,) = (6,), got (5,): out_channels is 6 from w but 5 from b"),
    ("b-dtype", lambda k: conv(k, b=k.cb.astype(np.float64)), TypeError,
     "b: expected dtype float32 (the dtype of x), got float64"),
    ("stride-0", lambda k: conv(k, stride=0), ValueError, "stride: expected an int >= 1, got 0"),
    ("stride-neg", lambda k: conv(k, stride=-2), ValueError, "stride: expected an int >= 1, got -2"),
    ("stride-float", lambda k: conv(k, stride=2.0), TypeError,
     "stride: expected an int, got <class 'float'>"),
    ("stride-bool", lambda k: conv(k, stride=True), TypeError,
     "stride: expected an int, got <class 'bool'>"),
    ("stride-2**64", lambda k: conv(k, stride=2**64), ValueError,
     "stride: expected an int >= 1 that fits in 64 bits, got 18446744073709551616"),
    ("dilation-neg", lambda k: conv(k, dilation=-1), ValueError,
     "dilation: expected an int >= 1, got -1"),
    ("dilation-overflow", lambda k: conv(k, dilation=2**62), ValueError,
     "dilation: 4611686018427387904 * (kernel_size - 1) = 4611686018427387904 * 2 is too large"),
    ("dilation-span", lambda k: conv(k, dilation=5), ValueError,
     "w: kernel_size 3 with dilation 5 spans 11 steps, more than the padded input of x "
     "(length 9 + padding 0 + 0 = 9): the output would be empty"),
    ("groups-0", lambda k: conv(k, groups=0), ValueError, "groups: expected an int >= 1, got 0"),
    ("groups-divisor", lambda k: conv(k, groups=3), ValueError,
     "groups: expected a divisor of the input channels (4) and of the output channels (6), got 3"),
    ("groups-w", lambda k: conv(k, groups=2), ValueError,
     "w: expected shape (out_channels, in_channels // groups, kernel_size) = (6, 2, 3), got "
     "(6, 4, 3): in_channels // groups is 2 from x and groups (4 // 2) but 4 from w"),
    ("w-channels-first", lambda k: conv(k, channels_last=False), ValueError,
     "in_channels // groups is 9 from x and groups (9 // 1) but 4 from w"),
    ("groups-huge", lambda k: conv(k, groups=2**62), ValueError,
     "groups: expected a divisor of the input channels (4) and of the output channels (6), "
     "got 4611686018427387904"),
    ("padding-name", lambda k: conv(k, padding="full"), ValueError,
     "padding: expected 'valid', 'same', 'causal', an int >= 0 or a (left, right) pair of ints "
     ">= 0, got 'full'"),
    ("padding-neg", lambda k: conv(k, padding=-1), ValueError,
     "padding: expected an int >= 0, got -1"),
    ("padding-triple", lambda k: conv(k, padding=(1, 1, 1)), ValueError,
     "got (1, 1, 1) of length 3"),
    ("padding-pair-neg", lambda k: conv(k, padding=(0, -2)), ValueError,
     "padding[1]: expected an int >= 0, got -2"),
    ("padding-pair-str", lambda k: conv(k, padding=("a", 1)), TypeError,
     "padding[0]: expected an int, got <class 'str'>"),
    ("padding-None", lambda k: conv(k, padding=None), TypeError,
     "padding: expected 'valid', 'same', 'causal', an int >= 0 or a (left, right) pair of ints "
     ">= 0, got None of type <class 'NoneType'>"),
    ("padding-float", lambda k: conv(k, padding=0.5), TypeError,
     "padding: expected 'valid', 'same', 'causal', an int >= 0 or a (left, right) pair of ints "
     ">= 0, got 0.5 of type <class 'float'>"),
    ("padding-huge", lambda k: conv(k, padding=2**61), ValueError,
     "padding: 2305843009213693952 is too large"),
    ("huge-no-memory", lambda k: conv(k, x=huge((1, 2**42, 4))), MemoryError,
     "Unable to allocate"),
    ("huge-output", lambda k: conv(k, x=k.cx[:, :1], w=k.cw[:, :, :1], padding=2**59),
     ValueError, "x and y: sizes (2, 1152921504606846977, 6) are too large to allocate"),
]

CONV_BACKWARD = [
    ("ctx-None", lambda k: F.conv1d_backward(None, k.cy), ValueError,
     "ctx: got None; call conv1d_forward(..., training=True) to get a ctx"),
    ("ctx-inference", lambda k: F.conv1d_backward(conv(k)[1], k.cy), ValueError,
     "ctx: got None; call conv1d_forward(..., training=True)"),
    ("ctx-pool", lambda k: F.conv1d_backward(k.pctx, k.cy), TypeError,
     "ctx: expected the ctx returned by conv1d_forward(..., training=True), got "
     "<class 'rnnfast._C.Pool1dCtx'>"),
    ("ctx-recurrent", lambda k: F.conv1d_backward(k.ctx["rnn"], k.cy), TypeError,
     "got <class 'rnnfast._C.RecurrentCtx'>"),
    ("ctx-uninitialised", lambda k: F.conv1d_backward(uninitialised(_C.Conv1dCtx), k.cy),
     TypeError, "got an uninitialised <class 'rnnfast._C.Conv1dCtx'>"),
    ("dy-shape", lambda k: F.conv1d_backward(k.cctx, k.cy[:, 1:]), ValueError,
     "dy: expected shape (batch, length_out, out_channels) = (2, 7, 6), got (2, 6, 6)"),
    ("dy-dtype", lambda k: F.conv1d_backward(k.cctx, k.cy.astype(np.float64)), TypeError,
     "dy: expected dtype float32 (the dtype of the forward's x), got float64"),
    ("dy-int", lambda k: F.conv1d_backward(k.cctx, k.cy.astype(np.uint8)), TypeError,
     "dy: expected a float32 or float64 array, got dtype uint8"),
]

def conv_pool(k, **kw):
    return F.conv1d_max_pool1d_forward(k.cx, k.cw, None, training=True, **kw)


CONV_POOL_FORWARD = [  # the convolution's arguments are conv1d_forward's (the same checks)
    ("x-int", lambda k: F.conv1d_max_pool1d_forward(k.cx.astype(np.int64), k.cw, pool_size=2),
     TypeError, "x: expected a float32 or float64 array, got dtype int64"),
    ("activation", lambda k: conv_pool(k, activation="tanh", pool_size=2), ValueError,
     "activation: expected None or 'relu', got 'tanh'"),
    ("add", lambda k: conv_pool(k, add=k.cy, pool_size=2), TypeError,
     "unexpected keyword argument 'add'"),
    ("pool_size-missing", lambda k: conv_pool(k), TypeError, "pool_size"),
    ("pool_size-0", lambda k: conv_pool(k, pool_size=0), ValueError,
     "pool_size: expected an int >= 1, got 0"),
    ("pool_size-float", lambda k: conv_pool(k, pool_size=2.5), TypeError,
     "pool_size: expected an int, got <class 'float'>"),
    ("pool_size-long", lambda k: conv_pool(k, pool_size=8), ValueError,
     "pool_size: a window of 8 steps is longer than the input length 7 of the convolution's "
     "output with pool_padding='valid'"),
    ("pool_size-huge", lambda k: conv_pool(k, pool_size=2**62, pool_padding="same"),
     ValueError, "pool_size: 4611686018427387904 is too large"),
    ("pool_stride-0", lambda k: conv_pool(k, pool_size=2, pool_stride=0), ValueError,
     "pool_stride: expected an int >= 1, got 0"),
    ("pool_stride-str", lambda k: conv_pool(k, pool_size=2, pool_stride="1"), TypeError,
     "pool_stride: expected an int, got <class 'str'>"),
    ("pool_padding", lambda k: conv_pool(k, pool_size=2, pool_padding="causal"), ValueError,
     "pool_padding: expected 'valid' or 'same', got 'causal'"),
    ("pool_padding-int", lambda k: conv_pool(k, pool_size=2, pool_padding=0), TypeError,
     "pool_padding: expected 'valid' or 'same'"),
    ("ctx-dense-relu", lambda k: F.conv1d_backward(
        conv_pool(k, activation="relu", pool_size=2)[1], k.cy), ValueError,
     "pool: this ctx is conv1d_max_pool1d_forward's, whose ReLU output was never stored; its "
     "gradient needs the pool ctx returned by the same call, got None"),
    ("ctx-other-pool", lambda k: F.conv1d_backward(
        conv_pool(k, activation="relu", pool_size=2)[1], k.cy[:, :3],
        pool=conv_pool(k, activation="relu", pool_size=2)[2]), ValueError,
     "got another pool's ctx"),
]

# ------------------------------------------------------------------ pooling

MAX_POOL_FORWARD = [
    ("pool_size-0", lambda k: F.max_pool1d_forward(k.cx, pool_size=0), ValueError,
     "pool_size: expected an int >= 1, got 0"),
    ("pool_size-None", lambda k: F.max_pool1d_forward(k.cx, pool_size=None), TypeError,
     "pool_size: expected an int, got <class 'NoneType'>"),
    ("pool_size-float", lambda k: F.max_pool1d_forward(k.cx, pool_size=2.5), TypeError,
     "pool_size: expected an int, got <class 'float'>"),
    ("pool_size-long", lambda k: F.max_pool1d_forward(k.cx, pool_size=10), ValueError,
     "pool_size: a window of 10 steps is longer than the input length 9 of x with padding='valid'"),
    ("pool_size-huge", lambda k: F.max_pool1d_forward(k.cx, pool_size=2**62, padding="same"),
     ValueError, "pool_size: 4611686018427387904 is too large"),
    ("pool_size-2**64", lambda k: F.max_pool1d_forward(k.cx, pool_size=-2**64), ValueError,
     "pool_size: expected an int >= 1 that fits in 64 bits, got -18446744073709551616"),
    ("pool_size-long-channels-first", lambda k: F.max_pool1d_forward(k.cx, pool_size=5,
                                                                     channels_last=False),
     ValueError, "pool_size: a window of 5 steps is longer than the input length 4 of x with "
     "padding='valid'"),
    ("stride-0", lambda k: F.max_pool1d_forward(k.cx, pool_size=2, stride=0), ValueError,
     "stride: expected an int >= 1, got 0"),
    ("stride-str", lambda k: F.max_pool1d_forward(k.cx, pool_size=2, stride="1"), TypeError,
     "stride: expected an int, got <class 'str'>"),
    ("padding-causal", lambda k: F.max_pool1d_forward(k.cx, pool_size=2, padding="causal"),
     ValueError, "padding: expected 'valid' or 'same', got 'causal'"),
    ("padding-int", lambda k: F.max_pool1d_forward(k.cx, pool_size=2, padding=1), TypeError,
     "padding: expected 'valid' or 'same', got 1 of type <class 'int'>"),
    ("x-2d", lambda k: F.max_pool1d_forward(k.cx[0], pool_size=2), ValueError,
     "x: expected a 3-D array (batch, length, channels) (channels_last=True), got shape (9, 4)"),
    ("x-int", lambda k: F.max_pool1d_forward(k.cx.astype(np.int32), pool_size=2), TypeError,
     "x: expected a float32 or float64 array, got dtype int32"),
    ("x-L0-channels-first", lambda k: F.max_pool1d_forward(k.cx[:, :, :0], pool_size=1,
                                                          channels_last=False), ValueError,
     "x: expected length >= 1 and channels >= 1 in (batch, channels, length) "
     "(channels_last=False), got shape (2, 9, 0)"),
    ("huge-no-memory", lambda k: F.max_pool1d_forward(huge((1, 2**42, 1)), pool_size=2**41),
     MemoryError, "Unable to allocate"),
]

MAX_POOL_BACKWARD = [
    ("ctx-None", lambda k: F.max_pool1d_backward(None, k.py), ValueError,
     "ctx: got None; call max_pool1d_forward(..., training=True)"),
    ("ctx-global", lambda k: F.max_pool1d_backward(k.gmctx, k.py), ValueError,
     "ctx: expected the ctx of max_pool1d_forward, got the ctx of global_max_pool1d_forward"),
    ("ctx-conv", lambda k: F.max_pool1d_backward(k.cctx, k.py), TypeError,
     "ctx: expected the ctx returned by max_pool1d_forward(..., training=True), got "
     "<class 'rnnfast._C.Conv1dCtx'>"),
    ("ctx-uninitialised", lambda k: F.max_pool1d_backward(uninitialised(_C.Pool1dCtx), k.py),
     TypeError, "got an uninitialised <class 'rnnfast._C.Pool1dCtx'>"),
    ("dy-shape", lambda k: F.max_pool1d_backward(k.pctx, k.py[:, :-1]), ValueError,
     "dy: expected shape (batch, length_out, channels) = (2, 4, 4), got (2, 3, 4)"),
    ("dy-global-shape", lambda k: F.max_pool1d_backward(k.pctx, k.gy), ValueError,
     "dy: expected shape (batch, length_out, channels) = (2, 4, 4), got (2, 4)"),
    ("dy-dtype", lambda k: F.max_pool1d_backward(k.pctx, k.py.astype(np.float64)), TypeError,
     "dy: expected dtype float32 (the dtype of the forward's x), got float64"),
]


def linear(k, x=None, w=None, b=None, **kw):
    return F.linear_forward(k.cx if x is None else x, k.lw if w is None else w, b, **kw)


LINEAR_FORWARD = [
    ("x-int", lambda k: linear(k, x=k.cx.astype(np.int32)), TypeError,
     "x: expected a float32 or float64 array, got dtype int32"),
    ("x-0d", lambda k: linear(k, x=np.float32(1)), ValueError,
     "x: expected an array of at least 1 dimension (..., in_features), got shape ()"),
    ("w-dtype", lambda k: linear(k, w=k.lw.astype(np.float64)), TypeError,
     "w: expected dtype float32 (the dtype of x), got float64"),
    ("w-features", lambda k: linear(k, w=k.lw[:, :3]), ValueError,
     "w: expected shape (out_features, in_features) with in_features = 4 from x = (2, 9, 4), "
     "got (5, 3)"),
    ("w-1d", lambda k: linear(k, w=k.lw[0]), ValueError,
     "w: expected shape (out_features, in_features) with in_features = 4 from x = (2, 9, 4), "
     "got (4,)"),
    ("b-shape", lambda k: linear(k, b=k.lb[:-1]), ValueError,
     "b: expected shape (out_features,) = (5,), got (4,)"),
    ("b-dtype", lambda k: linear(k, b=k.lb.astype(np.float64)), TypeError,
     "b: expected dtype float32 (the dtype of x), got float64"),
]

LINEAR_BACKWARD = [
    ("ctx-None", lambda k: F.linear_backward(None, k.ly), ValueError,
     "ctx: got None; call linear_forward(..., training=True)"),
    ("ctx-conv", lambda k: F.linear_backward(k.cctx, k.ly), TypeError,
     "ctx: expected the ctx returned by linear_forward(..., training=True), got "
     "<class 'rnnfast._C.Conv1dCtx'>"),
    ("dy-shape", lambda k: F.linear_backward(k.lctx, k.ly[:, :-1]), ValueError,
     "dy: expected shape (..., out_features) = (2, 9, 5), got (2, 8, 5)"),
    ("dy-dtype", lambda k: F.linear_backward(k.lctx, k.ly.astype(np.float64)), TypeError,
     "dy: expected dtype float32 (the dtype of the forward's x), got float64"),
]



EVEN = "with an even last axis >= 2 (the filter pre-activations, then the gates)"
GATED_FORWARD = [
    ("a-odd", lambda k: F.gated_activation_forward(k.cx[..., :3]), ValueError,
     f"a: expected an array (..., 2C) {EVEN}, got shape (2, 9, 3)"),
    ("a-0d", lambda k: F.gated_activation_forward(np.float32(1.0)), ValueError,
     f"a: expected an array (..., 2C) {EVEN}, got shape ()"),
    ("a-int", lambda k: F.gated_activation_forward(k.cx.astype(np.int32)), TypeError,
     "a: expected a float32 or float64 array, got dtype int32"),
]

DROPOUT = [
    ("x-int", lambda k: F.dropout(k.cx.astype(np.int32), 0.5, 1), TypeError,
     "x: expected a float32 or float64 array, got dtype int32"),
    ("p-one", lambda k: F.dropout(k.cx, 1.0, 1), ValueError,
     "p: expected a float in [0, 1) (p = 1 drops everything: zeros), got 1.0"),
    ("seed-negative", lambda k: F.dropout(k.cx, 0.5, -1), ValueError,
     "seed: expected an int in 0..2**64-1, got -1"),
    ("seed-float", lambda k: F.dropout(k.cx, 0.5, 1.0), TypeError,
     "seed: expected an int in 0..2**64-1, got <class 'float'>"),
]

GATED_BACKWARD = [
    ("a-odd", lambda k: F.gated_activation_backward(k.cx[..., :3], k.cx[..., :1]), ValueError,
     f"a: expected an array (..., 2C) {EVEN}, got shape (2, 9, 3)"),
    ("dz-shape", lambda k: F.gated_activation_backward(k.cx, k.cx[..., :1]), ValueError,
     "dz: expected shape (..., C), the shape of the forward's output = (2, 9, 2), got (2, 9, 1)"),
    ("dz-dtype", lambda k: F.gated_activation_backward(k.cx, k.cx[..., :2].astype(np.float64)),
     TypeError, "dz: expected dtype float32 (the dtype of a), got float64"),
]


def attention_cases(name):
    """Attention on q = v = k.cx (2, 9, 4): query (batch, Tq, dim), value (batch, Tv, dim)."""
    fw = getattr(F, f"{name}_forward")
    bw = getattr(F, f"{name}_backward")
    other = "additive_attention" if name == "dot_attention" else "dot_attention"

    def ctx(k):
        return fw(k.cx, k.cx, training=True)[2]
    forward = [
        ("query-int", lambda k: fw(k.cx.astype(np.int32), k.cx), TypeError,
         "query: expected a float32 or float64 array, got dtype int32"),
        ("query-2d", lambda k: fw(k.cx[0], k.cx), ValueError,
         "query: expected a 3-D array (batch, Tq, dim), got shape (9, 4)"),
        ("value-dtype", lambda k: fw(k.cx, k.cx.astype(np.float64)), TypeError,
         "value: expected dtype float32 (the dtype of query), got float64"),
        ("value-batch", lambda k: fw(k.cx, k.cx[:1]), ValueError,
         "value: expected a 3-D array (batch, Tv, dim_v) with batch = 2 (query's), got shape "
         "(1, 9, 4)"),
        ("key-shape", lambda k: fw(k.cx, k.cx, k.cx[:, :5]), ValueError,
         "key: expected shape (batch, Tv, dim) = (2, 9, 4), got (2, 5, 4)"),
        ("value_mask-shape", lambda k: fw(k.cx, k.cx, value_mask=np.ones((2, 8), bool)),
         ValueError, "value_mask: expected shape (batch, Tv) = (2, 9), got (2, 8)"),
        ("query_mask-float", lambda k: fw(k.cx, k.cx, query_mask=np.ones((2, 9))), TypeError,
         "query_mask: expected a bool or integer array, got dtype float64"),
        ("empty", lambda k: fw(k.cx[:, :0], k.cx), ValueError,
         "query/value: every size must be >= 1"),
    ]
    backward = [
        ("ctx-None", lambda k: bw(None, None), ValueError,
         f"ctx: got None; call {name}_forward(..., training=True)"),
        ("ctx-conv", lambda k: bw(k.cctx, None), TypeError,
         f"ctx: expected the ctx returned by {name}_forward(..., training=True), got "
         "<class 'rnnfast._C.Conv1dCtx'>"),
        ("ctx-other", lambda k: bw(getattr(F, f"{other}_forward")(k.cx, k.cx, training=True)[2]),
         ValueError, f"ctx: expected the ctx of {name}_forward, got the ctx of {other}_forward"),
        ("dout-shape", lambda k: bw(ctx(k), k.cx[:, :-1]), ValueError,
         "dout: expected shape (batch, Tq, dim_v) = (2, 9, 4), got (2, 8, 4)"),
        ("dweights-dtype", lambda k: bw(ctx(k), None, np.ones((2, 9, 9))), TypeError,
         "dweights: expected dtype float32 (the dtype of query), got float64"),
    ]
    return ([(f"{name}_forward-{c[0]}", *c[1:]) for c in forward]
            + [(f"{name}_backward-{c[0]}", *c[1:]) for c in backward])

def global_cases(name):
    fw, bw = getattr(F, name + "_forward"), getattr(F, name + "_backward")
    own = "gmctx" if name == "global_max_pool1d" else "gactx"
    other, other_name = (("gactx", "global_avg_pool1d") if own == "gmctx"
                         else ("gmctx", "global_max_pool1d"))
    forward = [
        ("x-2d", lambda k: fw(k.cx[0], channels_last=False), ValueError,
         "x: expected a 3-D array (batch, channels, length) (channels_last=False), got shape (9, 4)"),
        ("x-complex", lambda k: fw(k.cx.astype(np.complex128)), TypeError,
         "x: expected a float32 or float64 array, got dtype complex128"),
        ("x-L0", lambda k: fw(k.cx[:, :0]), ValueError,
         "x: expected length >= 1 and channels >= 1 in (batch, length, channels)"),
        ("x-dict", lambda k: fw({"x": 1}), TypeError,
         "x: expected a float32 or float64 array, got dict (dtype object)"),
        ("huge-no-memory", lambda k: fw(huge((2**20, 2**22, 2))), MemoryError, "Unable to allocate"),
    ]
    backward = [
        ("ctx-None", lambda k: bw(None, k.gy), ValueError,
         f"ctx: got None; call {name}_forward(..., training=True)"),
        ("ctx-other-pool", lambda k: bw(getattr(k, other), k.gy), ValueError,
         f"ctx: expected the ctx of {name}_forward, got the ctx of {other_name}_forward"),
        ("ctx-window-pool", lambda k: bw(k.pctx, k.gy), ValueError,
         f"ctx: expected the ctx of {name}_forward, got the ctx of max_pool1d_forward"),
        ("ctx-recurrent", lambda k: bw(k.ctx["gru"], k.gy), TypeError,
         f"ctx: expected the ctx returned by {name}_forward(..., training=True), got "
         "<class 'rnnfast._C.RecurrentCtx'>"),
        ("dy-shape", lambda k: bw(getattr(k, own), k.gy[:, :, None]), ValueError,
         "dy: expected shape (batch, channels) = (2, 4), got (2, 4, 1)"),
        ("dy-dtype", lambda k: bw(getattr(k, own), k.gy.astype(np.float64)), TypeError,
         "dy: expected dtype float32 (the dtype of the forward's x), got float64"),
    ]
    return ([(f"{name}_forward-{c[0]}", *c[1:]) for c in forward]
            + [(f"{name}_backward-{c[0]}", *c[1:]) for c in backward])


CASES = (
    [c for op in GATES for c in recurrent_forward_cases(op) + recurrent_backward_cases(op)]
    + [("conv1d_forward-" + c[0], *c[1:]) for c in CONV_FORWARD]
    + [("conv1d_backward-" + c[0], *c[1:]) for c in CONV_BACKWARD]
    + [("conv1d_max_pool1d_forward-" + c[0], *c[1:]) for c in CONV_POOL_FORWARD]
    + [("max_pool1d_forward-" + c[0], *c[1:]) for c in MAX_POOL_FORWARD]
    + [("max_pool1d_backward-" + c[0], *c[1:]) for c in MAX_POOL_BACKWARD]
    + [("linear_forward-" + c[0], *c[1:]) for c in LINEAR_FORWARD]
    + [("linear_backward-" + c[0], *c[1:]) for c in LINEAR_BACKWARD]
    + [("gated_activation_forward-" + c[0], *c[1:]) for c in GATED_FORWARD]
    + [("gated_activation_backward-" + c[0], *c[1:]) for c in GATED_BACKWARD]
    + [("dropout-" + c[0], *c[1:]) for c in DROPOUT]
    + [("new_weights_token-argument", lambda k: F.new_weights_token(1), TypeError,
        "takes 0 positional arguments but 1 was given")]
    + global_cases("global_max_pool1d")
    + global_cases("global_avg_pool1d")
    + attention_cases("dot_attention")
    + attention_cases("additive_attention")
    + layer_norm_cases("lstm")
    + layer_norm_cases("gru")
)


# ------------------------------------------------------------------ rnnfast._C beyond functional

A2 = np.ones((2, 2))
RECURRENT_OPTIONS = dict(nonlinearity="tanh", reset_after=True, lengths=None, reverse=False,
                         batch_first=False, training=False)
MASK_OPTIONS = dict(zoneout=0.5, recurrent_dropout=0.5, seed=1, dtype="float32")
# The same, then recurrent_forward's keyword defaults, in recurrent_forward_positional's order.
POSITIONAL_OPTIONS = (*RECURRENT_OPTIONS.values(), "float32", None, None, 0.0, None, None, None)
POOL_OPTIONS = dict(pool_size=None, stride=None, padding=None, channels_last=True, training=False)
BINDING_CASES = [
    ("gemm-a-int", lambda k: _C.gemm(np.ones((2, 2), np.int64), A2), TypeError,
     "a: expected a float32 or float64 array"),
    ("gemm-b-dtype", lambda k: _C.gemm(np.ones((2, 2), np.float32), A2), TypeError,
     "b: expected dtype float32"),
    ("gemm-inner", lambda k: _C.gemm(A2, np.ones((3, 2))), ValueError,
     "b: inner dimension 3 does not match a's 2"),
    ("gemm-a-1d", lambda k: _C.gemm(np.ones(2), A2), ValueError, "a: expected a 2-D array"),
    ("gemm-c-shape", lambda k: _C.gemm(A2, A2, c=np.ones((2, 3))), ValueError,
     "c: expected shape (M, N) = (2, 2), got (2, 3)"),
    ("gemm-c-dtype", lambda k: _C.gemm(A2, A2, c=np.ones((2, 2), np.float32)), TypeError,
     "c: expected dtype float64"),
    ("gemm-trans-positional", lambda k: _C.gemm(A2, A2, True), TypeError,
     "gemm(): incompatible function arguments"),
    ("gemm-trans-int", lambda k: _C.gemm(A2, A2, trans_a=1), TypeError,
     "gemm(): incompatible function arguments"),
    ("gemm_packed-inner", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((5, 4)), trans_b=True),
     ValueError, "b: inner dimension 4"),
    ("gemm_packed-cols", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)), cols=(3, 9)),
     ValueError, "cols: expected (begin, end) with 0 <= begin <= end <= N = 4, got (3, 9)"),
    ("gemm_packed-cols-str", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)), cols="ab"),
     TypeError, "cols: expected (begin, end)"),
    ("gemm_packed-cols-huge", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)),
                                                       cols=(0, 2**64)),
     ValueError, "cols[1]: expected an int >= 0 that fits in 64 bits"),
    ("gemm_packed-repeats", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)), repeats=0),
     ValueError, "repeats: expected >= 1"),
    ("gemm_packed-order", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)), order="up"),
     ValueError, "order: expected None, 'ascending' or 'descending', got 'up'"),
    ("gemm_packed-order-float32", lambda k: _C.gemm_packed(np.ones((2, 3)), np.ones((3, 4)),
                                                           order="descending"),
     ValueError, "order: needs precision='bfloat16' on a hardware bfloat16 path"),
    ("recurrent_forward-op", lambda k: _C.recurrent_forward("LSTM", k.x, *[None] * 6,
                                                            **RECURRENT_OPTIONS),
     ValueError, "op: expected 'rnn', 'lstm' or 'gru', got 'LSTM'"),
    ("recurrent_forward-op-type", lambda k: _C.recurrent_forward(None, k.x, *[None] * 6,
                                                                 **RECURRENT_OPTIONS),
     TypeError, "op: expected 'rnn', 'lstm' or 'gru', got None of type <class 'NoneType'>"),
    ("recurrent_forward-positional-options", lambda k: _C.recurrent_forward(
        "lstm", k.x, *[None] * 6, "tanh", True, None, False, False, False), TypeError,
     "recurrent_forward(): incompatible function arguments"),
    ("recurrent_forward-flag-int", lambda k: _C.recurrent_forward(
        "lstm", *[k.rec["lstm"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=1)), TypeError,
     "recurrent_forward(): incompatible function arguments"),
    ("recurrent_forward-c0-gru", lambda k: _C.recurrent_forward(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], None, None, None,
        k.rec["lstm"]["c0"], **RECURRENT_OPTIONS), ValueError, "c0: only an LSTM has a cell state"),
    ("recurrent_forward-w_peephole-gru", lambda k: _C.recurrent_forward(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **RECURRENT_OPTIONS, w_peephole=np.zeros((3, H), np.float32)), ValueError,
     "w_peephole: only an LSTM has peepholes"),
    ("recurrent_forward-w_hr-rnn", lambda k: _C.recurrent_forward(
        "rnn", *[k.rec["rnn"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **RECURRENT_OPTIONS, w_hr=np.zeros((2, H), np.float32)), ValueError,
     "w_hr: only an LSTM has a projection"),
    ("recurrent_backward-dh_n-proj", lambda k: _C.recurrent_backward(
        "lstm", _C.recurrent_forward(
            "lstm", k.rec["lstm"]["x"], k.rec["lstm"]["w_ih"], np.zeros((4 * H, 2), np.float32),
            *[None] * 4, **dict(RECURRENT_OPTIONS, training=True),
            w_hr=np.zeros((2, H), np.float32))[-1], None, np.zeros((B, H), np.float32), None),
     ValueError, f"dh_n: expected shape (batch, proj_size) = ({B}, 2), got ({B}, {H})"),
    ("recurrent_forward-zoneout_h-dtype", lambda k: _C.recurrent_forward(
        "rnn", *[k.rec["rnn"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=True), zoneout=0.5,
        zoneout_h=np.zeros((T, B, H))), TypeError,
     "zoneout_h: expected dtype float32 (the dtype of x), got float64"),
    ("recurrent_forward-zoneout_h-int", lambda k: _C.recurrent_forward(
        "rnn", *[k.rec["rnn"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=True), zoneout=0.5,
        zoneout_h=np.zeros((T, B, H), np.int32)), TypeError,
     "zoneout_h: expected a float32 or float64 array, got dtype int32"),
    ("recurrent_forward-recurrent_mask-dtype", lambda k: _C.recurrent_forward(
        "lstm", *[k.rec["lstm"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=True), recurrent_mask=np.ones((4, B, H))), TypeError,
     "recurrent_mask: expected dtype float32 (the dtype of x), got float64"),
    ("recurrent_forward-recurrent_mask-int", lambda k: _C.recurrent_forward(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=True), recurrent_mask=np.ones((3, B, H), np.int8)),
     TypeError, "recurrent_mask: expected a float32 or float64 array, got dtype int8"),
    ("recurrent_forward-recurrent_mask-inference", lambda k: _C.recurrent_forward(
        "rnn", *[k.rec["rnn"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **RECURRENT_OPTIONS, recurrent_mask=np.ones((1, B, H), np.float32)), ValueError,
     "recurrent_mask: only for training=True (inference drops nothing)"),
    ("recurrent_forward-recurrent_mask-proj", lambda k: _C.recurrent_forward(
        "lstm", k.rec["lstm"]["x"], k.rec["lstm"]["w_ih"], np.zeros((4 * H, 2), np.float32),
        *[None] * 4, **dict(RECURRENT_OPTIONS, training=True), w_hr=np.zeros((2, H), np.float32),
        recurrent_mask=np.ones((4, B, H), np.float32)), ValueError,
     f"recurrent_mask: expected shape (gates, batch, proj_size) = (4, {B}, 2), got (4, {B}, {H})"
     f": proj_size is 2 from w_hr but {H} from recurrent_mask"),
    ("recurrent_forward-zoneout_h-missing", lambda k: _C.recurrent_forward(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **dict(RECURRENT_OPTIONS, training=True), zoneout=0.5), ValueError,
     "zoneout_h: required when training with zoneout > 0"),
    ("recurrent_forward-zoneout-None", lambda k: _C.recurrent_forward(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        **RECURRENT_OPTIONS, zoneout=None), TypeError,
     "zoneout: expected a float in [0, 1), got NoneType"),
    ("recurrent_forward-zoneout_h-proj", lambda k: _C.recurrent_forward(
        "lstm", k.rec["lstm"]["x"], k.rec["lstm"]["w_ih"], np.zeros((4 * H, 2), np.float32),
        *[None] * 4, **dict(RECURRENT_OPTIONS, training=True), w_hr=np.zeros((2, H), np.float32),
        zoneout=0.5, zoneout_h=np.zeros((T, B, H), np.float32),
        zoneout_c=np.zeros((T, B, H), np.float32)), ValueError,
     f"zoneout_h: expected shape (seq_len, batch, proj_size) = ({T}, {B}, 2), got ({T}, {B}, "
     f"{H}): proj_size is 2 from w_hr but {H} from zoneout_h"),
    ("recurrent_backward-dc_n-gru", lambda k: _C.recurrent_backward(
        "gru", k.ctx["gru"], None, None, k.rec["lstm"]["c0"]), ValueError,
     "dc_n: only an LSTM has a cell state"),
    # recurrent_forward with every argument by position (rnnfast.functional's call): the same
    # checks; options only by position, flags only bools.
    ("recurrent_forward_positional-op", lambda k: _C.recurrent_forward_positional(
        "LSTM", k.x, *[None] * 6, *POSITIONAL_OPTIONS), ValueError,
     "op: expected 'rnn', 'lstm' or 'gru', got 'LSTM'"),
    ("recurrent_forward_positional-keywords", lambda k: _C.recurrent_forward_positional(
        "lstm", k.x, *[None] * 6, **RECURRENT_OPTIONS), TypeError,
     "recurrent_forward_positional(): incompatible function arguments"),
    ("recurrent_forward_positional-flag-int", lambda k: _C.recurrent_forward_positional(
        "lstm", *[k.rec["lstm"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4, "tanh", True,
        None, False, False, 1, "float32", None, None, 0.0, None, None, None), TypeError,
     "recurrent_forward_positional(): incompatible function arguments"),
    ("recurrent_forward_positional-w_ih", lambda k: _C.recurrent_forward_positional(
        "lstm", k.rec["lstm"]["x"], k.rec["lstm"]["w_ih"][:, :-1], k.rec["lstm"]["w_hh"],
        *[None] * 4, *POSITIONAL_OPTIONS), ValueError,
     "w_ih: expected shape (4*hidden_size, input_size) = "),
    ("recurrent_forward_positional-zoneout", lambda k: _C.recurrent_forward_positional(
        "gru", *[k.rec["gru"][n] for n in ("x", "w_ih", "w_hh")], *[None] * 4,
        *POSITIONAL_OPTIONS[:-4], True, None, None, None), TypeError,
     "zoneout: expected a float in [0, 1), got bool"),
    ("pool1d_forward-op", lambda k: _C.pool1d_forward("avg_pool1d", k.cx, **POOL_OPTIONS),
     ValueError, "op: expected 'max_pool1d', 'global_max_pool1d' or 'global_avg_pool1d', got "
     "'avg_pool1d'"),
    ("pool1d_forward-global-window", lambda k: _C.pool1d_forward(
        "global_max_pool1d", k.cx, **dict(POOL_OPTIONS, pool_size=2)), ValueError,
     "pool_size: global_max_pool1d pools over all steps; expected None, got 2"),
    ("pool1d_backward-op", lambda k: _C.pool1d_backward(b"max_pool1d", k.pctx, None), TypeError,
     "op: expected 'max_pool1d', 'global_max_pool1d' or 'global_avg_pool1d', got b'max_pool1d'"),
    ("set_isa", lambda k: _C.set_isa("sse9"), ValueError, "isa: unknown instruction set 'sse9'"),
    ("recurrent_masks-shape-int", lambda k: _C.recurrent_masks(
        3, None, None, **MASK_OPTIONS), TypeError,
     "zoneout_h: expected a shape (a tuple of ints) or None, got <class 'int'>"),
    ("recurrent_masks-shape-negative", lambda k: _C.recurrent_masks(
        None, (2, -1), None, **MASK_OPTIONS), ValueError, "zoneout_c: expected an int >= 0, got -1"),
    ("recurrent_masks-shape-float", lambda k: _C.recurrent_masks(
        None, None, (2, 1.0), **MASK_OPTIONS), TypeError,
     "recurrent: expected an int, got <class 'float'>"),
    ("recurrent_masks-shape-huge", lambda k: _C.recurrent_masks(
        (2 ** 40, 2 ** 40), None, None, **MASK_OPTIONS), ValueError,
     "zoneout_h: sizes (1099511627776, 1099511627776) are too large to allocate"),
    ("recurrent_masks-zoneout", lambda k: _C.recurrent_masks(
        (2,), None, None, **dict(MASK_OPTIONS, zoneout=1.0)), ValueError,
     "zoneout: expected a float in [0, 1), got 1.0"),
    ("recurrent_masks-recurrent_dropout", lambda k: _C.recurrent_masks(
        None, None, (2,), **dict(MASK_OPTIONS, recurrent_dropout=float("nan"))), ValueError,
     "recurrent_dropout: expected a float in [0, 1), got nan"),
    ("recurrent_masks-seed-negative", lambda k: _C.recurrent_masks(
        (2,), None, None, **dict(MASK_OPTIONS, seed=-1)), ValueError,
     "seed: expected an int in 0..2**64-1, got -1"),
    ("recurrent_masks-seed-None", lambda k: _C.recurrent_masks(
        (2,), None, None, **dict(MASK_OPTIONS, seed=None)), TypeError,
     "seed: expected an int in 0..2**64-1, got <class 'NoneType'>"),
    ("recurrent_masks-dtype", lambda k: _C.recurrent_masks(
        (2,), None, None, **dict(MASK_OPTIONS, dtype="float16")), ValueError,
     "dtype: expected 'float32' or 'float64', got 'float16'"),
    ("recurrent_masks-positional", lambda k: _C.recurrent_masks(
        (2,), None, None, 0.5, 0.5, 1, "float32"), TypeError,
     "recurrent_masks(): incompatible function arguments"),
    ("set_num_threads", lambda k: _C.set_num_threads(0), ValueError,
     "n: expected a number of threads in 1..1024, got 0"),
]
CASES = CASES + [("_C." + c[0], *c[1:]) for c in BINDING_CASES]


@pytest.mark.parametrize("case_id,call,error,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(kit, case_id, call, error, fragment):
    with pytest.raises(error) as info:
        call(kit)
    if error is not MemoryError:  # NumPy raises a subclass of MemoryError
        assert info.type is error, f"{case_id}: {info.type.__name__} is a subclass of {error.__name__}"
    assert fragment in str(info.value)


def test_the_matrix_covers_every_public_function():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)
    covered = set()
    for case_id, *_ in CASES:
        covered.add(case_id.split("-")[0])
    private = {c for c in covered if c.startswith("_C.")}
    assert covered - private == set(F.__all__)
    assert {c[3:] for c in private} >= {"recurrent_forward", "recurrent_backward", "pool1d_forward",
                                        "pool1d_backward", "gemm", "gemm_packed"}


def test_refusals_leave_the_kit_usable(kit):
    """After every refusal the same inputs and ctxs still give the results of a fresh run."""
    for case_id, call, error, _ in CASES:
        with pytest.raises(error):
            call(kit)
    fresh = Kit(np.random.default_rng(12345))
    for op in GATES:
        np.testing.assert_array_equal(kit.forward(op)[0], fresh.y[op])
        got = getattr(F, op + "_backward")(kit.ctx[op], fresh.y[op])
        want = getattr(F, op + "_backward")(fresh.ctx[op], fresh.y[op])
        for name in want:
            if want[name] is not None:
                np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_array_equal(F.conv1d_backward(kit.cctx, fresh.cy)["w"],
                                  F.conv1d_backward(fresh.cctx, fresh.cy)["w"])
    assert rnnfast.get_num_threads() >= 1
