"""Fuzzing of every rnnfast._C entry point: random shapes, dtypes, strides, lengths, options and
integers near the 64-bit limits.

Each call starts from a random valid call and changes at most one thing whose outcome is known:
- a valid variant (another memory layout: Fortran order, negative or zero strides, a strided
  view, big-endian, misaligned, a nested list; an empty batch; a large but valid integer) must
  be accepted, give bitwise the result of the same call on plain C-contiguous arrays, and (the
  shapes are small) match the NumPy reference within the numerical contract;
- an invalid one (a wrong dtype, number of dimensions, size, type, name, or an integer out of
  range) must raise TypeError or ValueError (MemoryError for sizes nothing can allocate) whose
  message names the argument; pybind11's own TypeError for a wrong argument type names the
  function and its signature.
Any other outcome, and of course any crash, fails.

    python tests/fuzz_bindings.py --calls 300 --seed 7      # a short run
    python tests/fuzz_bindings.py --only recurrent_forward  # one entry point
    python tests/fuzz_bindings.py --list                    # the entry points, one a line

Each entry point draws its calls from its own generator, seeded by (seed, entry point), so a
run split with --shard K/N (the K-th of N parts) or --only makes exactly the calls of the whole
run. --log appends one JSON line per finished entry point (entry, calls, accepted, refused,
seconds, calls per second, outcome); --keep-going goes on after a wrong outcome; --isolate runs
each entry point in its own process (--jobs at a time), so that a crash or a sanitizer report,
which ends its process, is logged and the next entry point still runs. The scheduled long run
(100,000 calls per entry point, with and without the sanitizers: tests/sanitize.sh --python
runs this script on an instrumented build) is in tests/README.md.

A short run is tests/test_fuzz_bindings.py, which CI also runs under the sanitizers
(RNNFAST_FUZZ_CALLS sets its calls per entry point).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

import rnnfast
from rnnfast import _C
from rnnfast import reference as R

INT64_MAX = 2**63 - 1
MAX_EXTENT = INT64_MAX // 8  # the bindings' bound on paddings, spans and windows
# Integers at and around the limits a binding converts to: int32, int64, uint64, doubles.
EDGE_INTS = [0, 1, -1, 2, 3, 2**31 - 1, 2**31, 2**32 + 1, 2**53 + 1, MAX_EXTENT, MAX_EXTENT + 1,
             2**62, INT64_MAX, 2**63, -2**63, -2**63 - 1, 2**64, 2**64 + 5, -2**64]
JUNK = [None, "x", b"x", 1.5, [1, "a"], {}, object(), (1, 2, 3)]
TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}  # max error / max(1, max |ref|)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class Ok:
    """Expect success; check(result) raises AssertionError when the result is wrong."""

    def __init__(self, check=None):
        self.check = check


class Err:
    """Expect one of the exception types, with a message starting with prefix."""

    def __init__(self, types, prefix):
        self.types = types if isinstance(types, tuple) else (types,)
        self.prefix = prefix


def incompatible(name):
    return Err(TypeError, f"{name}(): incompatible function arguments")


class Failure(AssertionError):
    pass


# ------------------------------------------------------------------ arrays and layouts


def rand(rng, shape, dtype):
    return (rng.standard_normal(shape) * 0.5).astype(dtype)


def odd_layout(rng, a):
    """a with the same values in another valid memory layout (or a nested list)."""
    kind = rng.integers(8)
    if kind == 0:
        return np.asfortranarray(a)
    if kind == 1 and a.ndim:
        return np.flip(np.flip(a, 0).copy(), 0)  # negative stride
    if kind == 2:  # a strided view
        big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == 3:
        return a.astype(a.dtype.newbyteorder(">"))
    if kind == 4:  # misaligned: the data pointer is not a multiple of the item size
        raw = np.zeros(a.nbytes + 1, np.uint8)
        out = raw[1:].view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if kind == 5 and a.size and a.ndim and a.shape[0] == 1:  # zero stride: a broadcast row
        return np.broadcast_to(a[:1], a.shape)
    if kind == 6 and 0 < a.size <= 64:
        return a.tolist() if a.dtype == np.float64 else a
    return a.copy()


def bad_array(rng, name, shape, dtype, *, kinds=None):
    """(value, expectation) of one invalid replacement of a float array argument."""
    kind = rng.integers(6) if kinds is None else kinds[rng.integers(len(kinds))]
    if kind == 0:
        wrong = rng.choice([np.int64, np.int32, np.float16, np.complex64, np.bool_, np.uint8])
        return np.zeros(shape, wrong), Err(TypeError, f"{name}: expected a float32 or float64 array")
    if kind == 1:
        other = np.float64 if dtype == np.float32 else np.float32
        return np.zeros(shape, other), Err(TypeError, f"{name}: expected dtype")
    if kind == 2:  # one more or one fewer dimension
        bad = shape + (1,) if rng.integers(2) or not shape else shape[:-1]
        return np.zeros(bad, dtype), Err(ValueError, f"{name}: expected")
    if kind == 3 and shape:  # one dimension off by one (or more)
        bad = list(shape)
        i = rng.integers(len(bad))
        bad[i] = bad[i] + int(rng.choice([1, 2, 7])) if bad[i] == 0 or rng.integers(2) else bad[i] - 1
        return np.zeros(tuple(bad), dtype), Err(ValueError, f"{name}: expected")
    if kind == 4:
        junk = JUNK[rng.integers(1, len(JUNK))]
        return junk, Err((TypeError, ValueError), f"{name}: expected")
    return "not an array", Err(TypeError, f"{name}: expected a float32 or float64 array")


def close(got, want, dtype, what, want32=None):
    """got within TOL of the float64 reference want; with want32 (the reference run in float32),
    also accepted within 4 times that reference's own error, as the kernel tests hold float32
    (an ill-conditioned case, e.g. a layer norm over 2 units, is beyond 1e-3 for any float32
    computation)."""
    if want is None:
        if got is not None:
            raise Failure(f"{what}: expected None")
        return
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise Failure(f"{what}: shape {got.shape}, reference {want.shape}")
    if got.size:
        scale = max(1.0, np.abs(want).max())
        err = np.abs(got - want).max() / scale
        tol = TOL[np.dtype(dtype)]
        if want32 is not None:
            tol = max(tol, 4 * np.abs(np.asarray(want32, np.float64) - want).max() / scale)
        if not err <= tol:
            raise Failure(f"{what}: error {err:.3g} against the reference (bound {tol:.3g})")


def same(got, want, what):
    """Bitwise the same results (nested tuples/dicts of arrays, None or plain values)."""
    if isinstance(want, dict):
        if set(got) != set(want):
            raise Failure(f"{what}: keys {sorted(got)} != {sorted(want)}")
        for k in want:
            same(got[k], want[k], f"{what}[{k}]")
    elif isinstance(want, (tuple, list)):
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{what}[{i}]")
    elif isinstance(want, np.ndarray):
        if not (isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype
                and np.array_equal(got, want, equal_nan=True)):
            raise Failure(f"{what}: differs from the call on C-contiguous arrays")


def output_gradient(rng, shape, dtype):
    """A random output gradient dy of a backward and what the call gets instead: (dy, call_dy,
    expect, kind), kind 0 dy itself, 1 dy in another valid layout, 2 an invalid dy (expect: how
    it is refused), 3 dy itself, for the caller to make another argument invalid."""
    dy = rand(rng, shape, dtype)
    kind = int(rng.integers(4))
    if kind == 1:
        return dy, odd_layout(rng, dy), None, kind
    if kind == 2:
        return (dy, *bad_array(rng, "dy", shape, dtype), kind)
    return dy, dy, None, kind


def without_ctx(out):
    return tuple(o for o in out if isinstance(o, np.ndarray) or o is None)


# ------------------------------------------------------------------ recurrent


def recurrent_setup(rng):
    op = ["rnn", "lstm", "gru"][rng.integers(3)]
    G = GATES[op]
    T, I, H = (int(rng.integers(1, 6)) for _ in range(3))
    B = int(rng.integers(0, 5)) if rng.integers(6) == 0 else int(rng.integers(1, 5))
    dtype = np.float32 if rng.integers(2) else np.float64
    batch_first = bool(rng.integers(2))
    # an LSTM with a projection: h (w_hh's columns, h0) has P features
    P = int(rng.integers(1, 6)) if op == "lstm" and rng.integers(3) == 0 else None
    Hs = H if P is None else P
    arrays = {"x": rand(rng, (B, T, I) if batch_first else (T, B, I), dtype),
              "w_ih": rand(rng, (G * H, I), dtype), "w_hh": rand(rng, (G * H, Hs), dtype),
              "b_ih": rand(rng, (G * H,), dtype) if rng.integers(2) else None,
              "b_hh": rand(rng, (G * H,), dtype) if rng.integers(2) else None,
              "h0": rand(rng, (B, Hs), dtype) if rng.integers(2) else None,
              "c0": rand(rng, (B, H), dtype) if op == "lstm" and rng.integers(2) else None,
              "w_peephole": rand(rng, (3, H), dtype) if op == "lstm" and rng.integers(2) else None,
              "w_hr": None if P is None else rand(rng, (P, H), dtype)}
    lengths = None
    if rng.integers(2):
        lengths = rng.integers(1, T + 1, size=B).astype(
            [np.int64, np.int32, np.int8, np.uint16, np.uint64][rng.integers(5)])
    options = {"nonlinearity": ["tanh", "relu"][rng.integers(2)] if op == "rnn" else "tanh",
               "reset_after": bool(rng.integers(2)) if op == "gru" else True,
               "lengths": lengths, "reverse": bool(rng.integers(2)), "batch_first": batch_first,
               "training": bool(rng.integers(2))}
    # zoneout: the rate, and masks of h (and c) that the training calls pass
    options["zoneout"] = 0.0
    arrays["zoneout_h"] = arrays["zoneout_c"] = None
    if rng.integers(3) == 0:
        options["zoneout"] = float(rng.choice([0.2, 0.5]))
        arrays["zoneout_h"] = (rng.random((T, B, Hs)) < 0.5).astype(dtype)
        if op == "lstm":
            arrays["zoneout_c"] = (rng.random((T, B, H)) < 0.5).astype(dtype)
    # recurrent dropout: one mask per gate (G, B, Hs), which the training calls pass
    arrays["recurrent_mask"] = None
    if rng.integers(3) == 0:
        arrays["recurrent_mask"] = ((rng.random((G, B, Hs)) >= 0.3) / 0.7).astype(dtype)
    return op, arrays, options, (T, B, I, H, dtype, Hs)


ARRAY_ORDER = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0"]
# the cell variants' arrays, by keyword; the zoneout masks go to training calls only
KEYWORD_ARRAYS = ["w_peephole", "w_hr", "zoneout_h", "zoneout_c", "recurrent_mask"]
MASKS = ["zoneout_h", "zoneout_c", "recurrent_mask"]


def keyword_arrays(arrays, training):
    return {k: arrays[k] for k in KEYWORD_ARRAYS if training or k not in MASKS}


def reference_forward(op, arrays, options, training):
    kw = {"lengths": options["lengths"], "reverse": options["reverse"],
          "batch_first": options["batch_first"], "training": training}
    if op == "rnn":
        kw["nonlinearity"] = options["nonlinearity"]
    if op == "gru":
        kw["reset_after"] = options["reset_after"]
    args = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in arrays.items()}
    kw["zoneout"] = options["zoneout"]
    masks = {name: args.pop(name) for name in MASKS}
    recurrent = masks.pop("recurrent_mask")
    if training and (options["zoneout"] > 0 or recurrent is not None):
        kw["masks"] = {name: m for name, m in masks.items()
                       if m is not None and options["zoneout"] > 0}
        if recurrent is not None:
            kw["masks"]["recurrent"] = recurrent
            kw["recurrent_dropout"] = 0.3
    if op != "lstm":
        for name in ["c0", "w_peephole", "w_hr"]:
            args.pop(name)
    return getattr(R, op + "_forward")(**args, **kw)


# recurrent_forward_positional's arguments after the arrays of ARRAY_ORDER, in its order.
POSITIONAL_OPTIONS = ["nonlinearity", "reset_after", "lengths", "reverse", "batch_first",
                      "training", "precision", "w_peephole", "w_hr", "zoneout", "zoneout_h",
                      "zoneout_c", "recurrent_mask"]


def positional_forward(op, args, options, kw_arrays):
    """_C.recurrent_forward_positional with recurrent_forward's arguments (keyword defaults
    where not given)."""
    given = dict({"precision": "float32", "zoneout": 0.0}, **options, **kw_arrays)
    return _C.recurrent_forward_positional(op, *args, *[given.get(k) for k in POSITIONAL_OPTIONS])


def recurrent_forward_case(rng, entry="recurrent_forward"):
    """A call of recurrent_forward, or with the same arguments by position of
    recurrent_forward_positional (entry): the same checks, values and errors."""
    op, arrays, options, (T, B, I, H, dtype, Hs) = recurrent_setup(rng)
    expect = None
    call_arrays, call_options, call_op = dict(arrays), dict(options), op
    kind = rng.integers(4)
    if kind == 1:  # a valid layout of one array
        names = ARRAY_ORDER + KEYWORD_ARRAYS
        name = names[rng.integers(len(names))]
        if arrays[name] is not None:
            call_arrays[name] = odd_layout(rng, arrays[name])
    elif kind == 2:  # one invalid array
        name = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0"][rng.integers(6)]
        if op == "lstm" and rng.integers(4) == 0:
            name = ["c0", "w_peephole", "w_hr"][rng.integers(3)]
        if options["training"] and arrays["zoneout_h"] is not None and rng.integers(3) == 0:
            name = MASKS[rng.integers(2 if op == "lstm" else 1)]
        if options["training"] and rng.integers(4) == 0:
            name = "recurrent_mask"
        shape = (np.shape(arrays[name]) if arrays[name] is not None else
                 {"b_ih": (GATES[op] * H,), "b_hh": (GATES[op] * H,), "zoneout_h": (T, B, Hs),
                  "zoneout_c": (T, B, H), "recurrent_mask": (GATES[op], B, Hs),
                  "w_peephole": (3, H), "h0": (B, Hs)}.get(name, (B, H)))
        # x decides the dtype and the sizes: another float dtype or size of x is a valid call or
        # one where another argument is blamed, so x only gets the unambiguous kinds; so does
        # w_hr when it is given (it decides hidden_size and proj_size).
        kinds = None
        if name == "x":
            kinds = (0, 2, 4, 5)
        elif name == "w_hr":
            kinds = (0, 1, 2, 4, 5) if arrays[name] is not None else (0, 4, 5)
        value, expect = bad_array(rng, name, tuple(shape), dtype, kinds=kinds)
        call_arrays[name] = value
        if op != "lstm" and rng.integers(8) == 0:
            call_arrays[name] = arrays[name]
            which = rng.integers(3)
            if which == 0:
                call_arrays["c0"] = rand(rng, (B, H), dtype)
                expect = Err(ValueError, "c0: only an LSTM has a cell state")
            elif which == 1:
                call_arrays["w_peephole"] = rand(rng, (3, H), dtype)
                expect = Err(ValueError, "w_peephole: only an LSTM has peepholes")
            else:
                call_arrays["w_hr"] = rand(rng, (2, H), dtype)
                expect = Err(ValueError, "w_hr: only an LSTM has a projection")
    elif kind == 3:  # one invalid option
        which = rng.integers(6)
        if which == 5:
            call_options["zoneout"] = [1.0, -0.1, float("nan"), "0.1", None, True,
                                       2][rng.integers(7)]
            expect = Err((TypeError, ValueError), "zoneout: expected a float in [0, 1)")
        elif which == 0:
            call_op = JUNK[rng.integers(len(JUNK))] if rng.integers(2) else "LSTM"
            expect = Err((TypeError, ValueError), "op: expected 'rnn', 'lstm' or 'gru'")
        elif which == 1 and op == "rnn":
            call_options["nonlinearity"] = [None, "sigmoid", b"tanh", 0, "Tanh"][rng.integers(5)]
            expect = Err(ValueError, "nonlinearity: expected 'tanh' or 'relu'")
        elif which == 2:
            key = ["reset_after", "reverse", "batch_first", "training"][rng.integers(4)]
            call_options[key] = [1, 0, None, "yes", 1.0][rng.integers(5)]
            expect = incompatible(entry)
        elif which == 3 and B > 0:
            bad = rng.integers(1, T + 1, size=B).astype(np.int64)
            i = rng.integers(B)
            value = [0, -1, T + 1, 2**31, INT64_MAX, -2**63][rng.integers(6)]
            bad[i] = value
            call_options["lengths"] = bad
            expect = Err(ValueError, "lengths: every entry must be in 1..T")
        elif which == 4:
            call_options["lengths"] = [np.zeros(B, np.float64), "abc", np.zeros((B, 1), np.int64),
                                       np.zeros(B + 1, np.int64)][rng.integers(4)]
            expect = Err((TypeError, ValueError), "lengths: expected")
    args = [call_arrays[k] for k in ARRAY_ORDER]
    kw_arrays = keyword_arrays(call_arrays, call_options["training"] is True)
    if entry == "recurrent_forward":
        call = lambda: _C.recurrent_forward(call_op, *args, **call_options,  # noqa: E731
                                            **kw_arrays)
    else:
        call = lambda: positional_forward(call_op, args, call_options, kw_arrays)  # noqa: E731
    if expect is not None:
        return entry, call, expect

    def check(out):
        plain = _C.recurrent_forward(op, *[arrays[k] for k in ARRAY_ORDER], **options,
                                     **keyword_arrays(arrays, options["training"]))
        same(without_ctx(out), without_ctx(plain), "recurrent_forward")
        want = reference_forward(op, arrays, options, options["training"])
        names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
        for i, name in enumerate(names):
            close(out[i], want[i], dtype, f"recurrent_forward {op} {name}")
        if (out[3] is not None) != options["training"]:
            raise Failure("recurrent_forward: a ctx exactly when training")
    return entry, call, Ok(check)


def recurrent_backward_case(rng):
    op, arrays, options, (T, B, I, H, dtype, Hs) = recurrent_setup(rng)
    options["training"] = True
    out = _C.recurrent_forward(op, *[arrays[k] for k in ARRAY_ORDER], **options,
                               **keyword_arrays(arrays, True))
    ctx = out[-1]
    y_shape = out[0].shape
    grads = {"dy": rand(rng, y_shape, dtype) if rng.integers(4) else None,
             "dh_n": rand(rng, (B, Hs), dtype) if rng.integers(2) else None,
             "dc_n": rand(rng, (B, H), dtype) if op == "lstm" and rng.integers(2) else None}
    call_grads, call_ctx, call_op, expect = dict(grads), ctx, op, None
    kind = rng.integers(4)
    if kind == 1:
        name = ["dy", "dh_n", "dc_n"][rng.integers(3)]
        if grads[name] is not None:
            call_grads[name] = odd_layout(rng, grads[name])
    elif kind == 2:
        name = ["dy", "dh_n", "dc_n"][rng.integers(3 if op == "lstm" else 2)]
        shape = y_shape if name == "dy" else (B, Hs) if name == "dh_n" else (B, H)
        value, expect = bad_array(rng, name, tuple(shape), dtype)
        call_grads[name] = value
    elif kind == 3:
        which = rng.integers(3)
        if which == 0:
            call_ctx = [None, {}, "ctx", _C.RecurrentCtx.__new__(_C.RecurrentCtx)][rng.integers(4)]
            expect = Err((TypeError, ValueError), "ctx: ")
        elif which == 1:
            call_op = [o for o in GATES if o != op][rng.integers(2)]
            expect = Err(ValueError, f"ctx: expected the ctx of {call_op}_forward")
        else:
            call_op = JUNK[rng.integers(len(JUNK))]
            expect = Err((TypeError, ValueError), "op: expected")
    call = lambda: _C.recurrent_backward(call_op, call_ctx, call_grads["dy"],  # noqa: E731
                                         call_grads["dh_n"], call_grads["dc_n"])
    if expect is not None:
        return "recurrent_backward", call, expect

    def check(got):
        plain = _C.recurrent_backward(op, ctx, *[None if grads[k] is None else grads[k]
                                                 for k in ("dy", "dh_n", "dc_n")])
        same(got, plain, "recurrent_backward")
        ref_out = reference_forward(op, arrays, options, True)
        g64 = {k: None if v is None else v.astype(np.float64) for k, v in grads.items()}
        if op != "lstm":
            g64.pop("dc_n")
        want = getattr(R, op + "_backward")(ref_out[-1], **g64)
        assert set(got) == set(want), (sorted(got), sorted(want))
        for name in want:
            close(got[name], want[name], dtype, f"recurrent_backward {op} d{name}")
    return "recurrent_backward", call, Ok(check)


# ------------------------------------------------------------------ LayerNorm recurrent

LN_ORDER = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0", "ln_ih_weight", "ln_hh_weight",
            "ln_c_weight", "ln_c_bias"]


def layer_norm_setup(rng):
    """A valid LayerNorm LSTM/GRU call: op, arrays, options, sizes."""
    op = ["lstm", "gru"][rng.integers(2)]
    _, arrays, options, (T, B, I, H, dtype, _) = recurrent_setup(rng)
    G = GATES[op]
    x = arrays["x"]
    maybe = lambda shape: rand(rng, shape, dtype) + 1 if rng.integers(2) else None  # noqa: E731
    arrays = {"x": x, "w_ih": rand(rng, (G * H, I), dtype), "w_hh": rand(rng, (G * H, H), dtype),
              "b_ih": arrays["b_ih"] if arrays["b_ih"] is None else rand(rng, (G * H,), dtype),
              "b_hh": arrays["b_hh"] if arrays["b_hh"] is None else rand(rng, (G * H,), dtype),
              "h0": rand(rng, (B, H), dtype) if rng.integers(2) else None,
              "c0": rand(rng, (B, H), dtype) if op == "lstm" and rng.integers(2) else None,
              "ln_ih_weight": maybe((G * H,)), "ln_hh_weight": maybe((G * H,)),
              "ln_c_weight": maybe((H,)) if op == "lstm" else None,
              "ln_c_bias": maybe((H,)) if op == "lstm" else None}
    options = {"eps": float(rng.choice([1e-5, 1e-3, 0.5])), "lengths": options["lengths"],
               "reverse": options["reverse"], "batch_first": options["batch_first"],
               "training": options["training"], "zoneout": 0.0, "zoneout_h": None,
               "zoneout_c": None}
    # zoneout: the rate, and masks of h (and c) that the training calls pass
    if rng.integers(3) == 0:
        options["zoneout"] = float(rng.choice([0.2, 0.5]))
        if options["training"]:
            layer_norm_masks(rng, op, options, T, B, H, dtype)
    return op, arrays, options, (T, B, I, H, dtype)


def layer_norm_masks(rng, op, options, T, B, H, dtype):
    """Zoneout masks of h (and c) for a training call with options["zoneout"] > 0."""
    options["zoneout_h"] = (rng.random((T, B, H)) < 0.5).astype(dtype)
    if op == "lstm":
        options["zoneout_c"] = (rng.random((T, B, H)) < 0.5).astype(dtype)


def layer_norm_reference(op, arrays, options, training, dtype=np.float64):
    args = {k: (None if v is None else np.asarray(v, dtype)) for k, v in arrays.items()}
    if op == "gru":
        for k in ("c0", "ln_c_weight", "ln_c_bias"):
            args.pop(k)
    kw = dict(options, training=training, dtype=dtype)
    masks = {name: kw.pop(name) for name in ("zoneout_h", "zoneout_c")}
    if training and kw["zoneout"] > 0:
        kw["masks"] = {name: np.asarray(m, dtype) for name, m in masks.items() if m is not None}
    return getattr(R, f"layer_norm_{op}_forward")(**args, **kw)


def layer_norm_forward_case(rng):
    op, arrays, options, (T, B, I, H, dtype) = layer_norm_setup(rng)
    G = GATES[op]
    call_arrays, call_options, call_op, expect = dict(arrays), dict(options), op, None
    kind = rng.integers(4)
    if kind == 1:  # a valid layout of one array
        name = LN_ORDER[rng.integers(len(LN_ORDER))]
        if arrays[name] is not None:
            call_arrays[name] = odd_layout(rng, arrays[name])
    elif kind == 2:  # one invalid array
        names = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "ln_ih_weight", "ln_hh_weight"]
        names += ["c0", "ln_c_weight", "ln_c_bias"] if op == "lstm" else []
        name = names[rng.integers(len(names))]
        default = {"h0": (B, H), "c0": (B, H), "ln_c_weight": (H,), "ln_c_bias": (H,)}
        shape = (np.shape(arrays[name]) if arrays[name] is not None else
                 default.get(name, (G * H,)))
        kinds = (0, 2, 4, 5) if name == "x" else None
        call_arrays[name], expect = bad_array(rng, name, tuple(shape), dtype, kinds=kinds)
        if op == "gru" and rng.integers(6) == 0:
            call_arrays[name] = arrays[name]
            other = ["c0", "ln_c_weight", "ln_c_bias"][rng.integers(3)]
            call_arrays[other] = rand(rng, (B, H) if other == "c0" else (H,), dtype)
            expect = Err(ValueError, f"{other}: only")
    elif kind == 3:  # one invalid option
        which = rng.integers(5)
        if which == 0:
            call_op = [JUNK[rng.integers(len(JUNK))], "rnn", "LSTM"][rng.integers(3)]
            expect = Err((TypeError, ValueError), "op: expected 'lstm' or 'gru'")
        elif which == 4:
            if rng.integers(2):
                call_options["zoneout"] = [1.0, -0.1, float("nan"), "0.1", None, True,
                                           np.float64(1.5)][rng.integers(7)]
                expect = Err((TypeError, ValueError), "zoneout: expected a float in [0, 1)")
            elif options["zoneout_h"] is not None:  # training without its masks
                name = ["zoneout_h", "zoneout_c"][rng.integers(2 if op == "lstm" else 1)]
                call_options[name] = None
                expect = Err(ValueError, f"{name}: required when training with zoneout > 0")
            else:  # masks where none are used
                call_options["zoneout_h"] = np.zeros((T, B, H), dtype)
                expect = Err(ValueError, "zoneout_h: only for training=True with zoneout > 0")
        elif which == 1:
            call_options["eps"] = [0.0, -1e-5, float("nan"), float("inf"), "1e-5", None, True,
                                   -2**63][rng.integers(8)]
            expect = Err((TypeError, ValueError), "eps: expected")
        elif which == 2:
            key = ["reverse", "batch_first", "training"][rng.integers(3)]
            call_options[key] = [1, 0, None, "yes", 1.0][rng.integers(5)]
            expect = incompatible("layer_norm_recurrent_forward")
        elif B > 0:
            bad = rng.integers(1, T + 1, size=B).astype(np.int64)
            bad[rng.integers(B)] = [0, -1, T + 1, INT64_MAX][rng.integers(4)]
            call_options["lengths"] = bad
            expect = Err(ValueError, "lengths: every entry must be in 1..T")
    args = [call_arrays[k] for k in LN_ORDER]
    call = lambda: _C.layer_norm_recurrent_forward(call_op, *args, **call_options)  # noqa: E731
    if expect is not None:
        return "layer_norm_recurrent_forward", call, expect

    def check(out):
        plain = _C.layer_norm_recurrent_forward(op, *[arrays[k] for k in LN_ORDER], **options)
        same(without_ctx(out), without_ctx(plain), "layer_norm_recurrent_forward")
        want = layer_norm_reference(op, arrays, options, options["training"])
        names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
        for i, name in enumerate(names):
            close(out[i], want[i], dtype, f"layer_norm_recurrent_forward {op} {name}")
        if (out[3] is not None) != options["training"]:
            raise Failure("layer_norm_recurrent_forward: a ctx exactly when training")
    return "layer_norm_recurrent_forward", call, Ok(check)


def layer_norm_backward_case(rng):
    op, arrays, options, (T, B, I, H, dtype) = layer_norm_setup(rng)
    if not options["training"] and options["zoneout"] > 0:
        layer_norm_masks(rng, op, options, T, B, H, dtype)
    options["training"] = True
    out = _C.layer_norm_recurrent_forward(op, *[arrays[k] for k in LN_ORDER], **options)
    ctx, y_shape = out[-1], out[0].shape
    grads = {"dy": rand(rng, y_shape, dtype) if rng.integers(4) else None,
             "dh_n": rand(rng, (B, H), dtype) if rng.integers(2) else None,
             "dc_n": rand(rng, (B, H), dtype) if op == "lstm" and rng.integers(2) else None}
    call_grads, call_ctx, call_op, expect = dict(grads), ctx, op, None
    kind = rng.integers(4)
    if kind == 1:
        name = ["dy", "dh_n", "dc_n"][rng.integers(3)]
        if grads[name] is not None:
            call_grads[name] = odd_layout(rng, grads[name])
    elif kind == 2:
        name = ["dy", "dh_n", "dc_n"][rng.integers(3 if op == "lstm" else 2)]
        value, expect = bad_array(rng, name, tuple(y_shape if name == "dy" else (B, H)), dtype)
        call_grads[name] = value
    elif kind == 3:
        which = rng.integers(3)
        if which == 0:
            call_ctx = [None, {}, "ctx", _C.LayerNormRecurrentCtx.__new__(_C.LayerNormRecurrentCtx),
                        _C.recurrent_forward("gru", np.zeros((1, 1, 1)), np.zeros((3, 1)),
                                             np.zeros((3, 1)), None, None, None, None,
                                             nonlinearity="tanh", reset_after=True, lengths=None,
                                             reverse=False, batch_first=False,
                                             training=True)[-1]][rng.integers(5)]
            expect = Err((TypeError, ValueError), "ctx: ")
        elif which == 1:
            call_op = "gru" if op == "lstm" else "lstm"
            expect = Err(ValueError, f"ctx: expected the ctx of layer_norm_{call_op}_forward")
        else:
            call_op = JUNK[rng.integers(len(JUNK))]
            expect = Err((TypeError, ValueError), "op: expected")
    call = lambda: _C.layer_norm_recurrent_backward(  # noqa: E731
        call_op, call_ctx, call_grads["dy"], call_grads["dh_n"], call_grads["dc_n"])
    if expect is not None:
        return "layer_norm_recurrent_backward", call, expect

    def check(got):
        plain = _C.layer_norm_recurrent_backward(op, ctx, grads["dy"], grads["dh_n"],
                                                 grads["dc_n"])
        same(got, plain, "layer_norm_recurrent_backward")
        ref_ctx = layer_norm_reference(op, arrays, options, True)[-1]
        g64 = {k: None if v is None else v.astype(np.float64) for k, v in grads.items()}
        if op != "lstm":
            g64.pop("dc_n")
        want = getattr(R, f"layer_norm_{op}_backward")(ref_ctx, **g64)
        if set(want) != set(got):
            raise Failure(f"layer_norm_recurrent_backward: keys {sorted(got)} != {sorted(want)}")
        want32 = {}
        if dtype == np.float32:
            ctx32 = layer_norm_reference(op, arrays, options, True, np.float32)[-1]
            g32 = {k: None if v is None else v.astype(np.float32) for k, v in g64.items()}
            want32 = getattr(R, f"layer_norm_{op}_backward")(ctx32, **g32)
        for name in want:
            close(got[name], want[name], dtype, f"layer_norm_recurrent_backward {op} d{name}",
                  want32.get(name))
    return "layer_norm_recurrent_backward", call, Ok(check)


# ------------------------------------------------------------------ conv and pools


def seq_layout(B, L, C, channels_last):
    return (B, L, C) if channels_last else (B, C, L)


def predicted_size_error(dims):
    """The bindings' checked_size: whether the product of dims overflows int64 / 8."""
    n = 1
    for d in dims:
        if d != 0 and n > INT64_MAX // 8 // d:
            return True
        n *= d
    return False


def int_option(rng, small):
    """A valid small int, or an integer near a limit (or a non-int)."""
    r = rng.integers(20)
    if r < 16:
        return int(small)
    if r < 19:
        value = EDGE_INTS[rng.integers(len(EDGE_INTS))]
        return np.int64(value) if -2**63 <= value <= INT64_MAX and rng.integers(4) == 0 else value
    return [1.0, True, None, "2", np.float32(2)][rng.integers(5)]


def int_verdict(value, name, low):
    """None if value is an int >= low that fits in int64, else the expected error."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return Err(TypeError, f"{name}: expected")
    if value < low or value > INT64_MAX:
        return Err(ValueError, f"{name}: expected an int >= {low}")
    return None


def conv_arrays(rng):
    """A small convolution's groups, sizes, dtype, layout and arrays x, w, b (b: None or not)."""
    groups = int(rng.integers(1, 3))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    K = int(rng.integers(1, 4))
    B, L = int(rng.integers(0, 3)), int(rng.integers(1, 9))
    dtype = np.float32 if rng.integers(2) else np.float64
    channels_last = bool(rng.integers(2))
    x = rand(rng, seq_layout(B, L, c_in, channels_last), dtype)
    w = rand(rng, (c_out, c_in // groups, K), dtype)
    b = rand(rng, (c_out,), dtype) if rng.integers(2) else None
    return groups, c_in, c_out, K, B, L, dtype, channels_last, x, w, b


def conv_case(rng, backward):
    groups, c_in, c_out, K, B, L, dtype, channels_last, x, w, b = conv_arrays(rng)
    stride, dilation = int_option(rng, rng.integers(1, 3)), int_option(rng, rng.integers(1, 3))
    groups_arg = int_option(rng, groups)
    padding = ["valid", "same", "causal", int_option(rng, rng.integers(0, 3)),
               (int_option(rng, 1), int_option(rng, 0))][rng.integers(5)]
    expect = (int_verdict(stride, "stride", 1) or int_verdict(dilation, "dilation", 1)
              or int_verdict(groups_arg, "groups", 1))
    if expect is None and (c_in % groups_arg or c_out % groups_arg):
        expect = Err(ValueError, "groups: expected a divisor")
    if expect is None and groups_arg != groups:
        expect = Err(ValueError, "w: expected shape")
    if expect is None and K > 1 and dilation > MAX_EXTENT // (K - 1):
        expect = Err(ValueError, "dilation: ")
    span = 1 if expect is not None else dilation * (K - 1) + 1
    if expect is None:
        if isinstance(padding, str) and padding not in ("valid", "same", "causal"):
            expect, left, right = Err(ValueError, "padding: expected"), 0, 0
        elif isinstance(padding, str):
            left = {"valid": 0, "same": None, "causal": span - 1}[padding]
            if left is None:
                out = (L - 1) // stride + 1
                total = max((out - 1) * stride + span - L, 0)
                left, right = total // 2, total - total // 2
            else:
                right = 0
        else:
            pair = padding if isinstance(padding, tuple) else (padding, padding)
            names = ("padding[0]", "padding[1]") if isinstance(padding, tuple) else ("padding", "padding")
            expect = int_verdict(pair[0], names[0], 0) or int_verdict(pair[1], names[1], 0)
            if expect is None and (pair[0] > MAX_EXTENT or pair[1] > MAX_EXTENT):
                expect = Err(ValueError, "padding: ")
            left, right = pair if expect is None else (0, 0)
    if expect is None:
        padded = L + left + right
        if padded < span:
            expect = Err(ValueError, "w: kernel_size")
        else:
            l_out = (padded - span) // stride + 1
            if predicted_size_error([B, max(l_out, L), max(c_out, c_in)]):
                expect = Err(ValueError, "x and y: sizes")
            elif B * l_out * c_out > 2**22 or (B == 0 and l_out > 2**22):
                return None  # valid, but too large to run (or to check) here
    # The reference pads physically: it checks only calls of a modest padded length.
    cheap = expect is None and L + left + right <= 4096
    call_x, call_w, call_b = x, w, b
    if expect is None and rng.integers(3) == 0:  # a valid layout, or one invalid array
        if rng.integers(2):
            call_x = odd_layout(rng, x)
        else:
            name = ["x", "w", "b"][rng.integers(3)]
            shape = {"x": x.shape, "w": w.shape, "b": (c_out,)}[name]
            # x decides the dtype and sizes: it only gets the unambiguous kinds of error
            value, expect = bad_array(rng, name, tuple(shape), dtype,
                                      kinds=(0, 2, 4, 5) if name == "x" else None)
            call_x, call_w, call_b = [value if n == name else v
                                      for n, v in (("x", x), ("w", w), ("b", b))]
            if name == "w" and isinstance(value, np.ndarray) and value.ndim == 3 and \
                    value.dtype == dtype and value.shape[1] == w.shape[1] and 0 not in value.shape:
                return None  # another out_channels or kernel_size: valid, or blamed on b or padding
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups_arg,
              channels_last=channels_last, training=backward)
    if expect is None and dtype == np.float32 and channels_last and groups == 1 and \
            stride == 1 and dilation == 1 and K == 3 and rng.integers(2):
        kw["algorithm"] = "winograd"  # the Winograd forward, on a shape it supports
    add = None  # add=: summed into y (forward) or dx (backward), bitwise as adding afterwards
    if expect is None and rng.integers(3) == 0:
        shape = (B, l_out, c_out) if channels_last else (B, c_out, l_out)
        add = rand(rng, (shape if not backward else x.shape), dtype)
        if not backward and rng.integers(4) == 0:  # of another shape: refused, named
            add, expect = add[:, :, :-1] if add.shape[2] > 1 else add[:, :, :0], \
                Err(ValueError, "add: expected shape")
    if expect is not None or not backward:
        call = lambda: _C.conv1d_forward(call_x, call_w, call_b, add=add, **kw)  # noqa: E731

        def check(out):
            plain = _C.conv1d_forward(x, w, b, **kw)
            same(out[0], plain[0] if add is None else plain[0] + add, "conv1d_forward")
            if not cheap:
                return
            want = R.conv1d_forward(x.astype(np.float64), w.astype(np.float64),
                                    None if b is None else b.astype(np.float64), stride=stride,
                                    padding=padding, dilation=dilation, groups=groups,
                                    channels_last=channels_last)[0]
            close(out[0], want if add is None else want + add, dtype, "conv1d_forward")
        return "conv1d_forward", call, expect or Ok(check)
    y, ctx = _C.conv1d_forward(x, w, b, **kw)
    dy, call_dy, expect, kind = output_gradient(rng, y.shape, dtype)
    call_ctx = ctx
    if kind == 3:
        call_ctx = [None, {}, _C.Conv1dCtx.__new__(_C.Conv1dCtx)][rng.integers(3)]
        expect = Err((TypeError, ValueError), "ctx: ")
    call = lambda: _C.conv1d_backward(call_ctx, call_dy, add=add)  # noqa: E731

    def check_backward(got):
        plain = _C.conv1d_backward(ctx, dy)
        if add is not None:
            plain["x"] = plain["x"] + add
        same(got, plain, "conv1d_backward")
        if not cheap:
            return
        ref = R.conv1d_forward(x.astype(np.float64), w.astype(np.float64),
                               None if b is None else b.astype(np.float64), stride=stride,
                               padding=padding, dilation=dilation, groups=groups,
                               channels_last=channels_last, training=True)[1]
        want = R.conv1d_backward(ref, dy.astype(np.float64))
        if add is not None:
            want["x"] = want["x"] + add
        for name in want:
            close(got[name], want[name], dtype, f"conv1d_backward d{name}")
    return "conv1d_backward", call, expect or Ok(check_backward)


def conv_pool_case(rng):
    """conv1d_max_pool1d_forward: a convolution's arguments (any refusal is conv1d_forward's, word
    for word: the same checks) and max_pool1d's window over its output; bitwise the two calls."""
    groups, c_in, c_out, K, B, L, dtype, channels_last, x, w, b = conv_arrays(rng)

    def small(value):  # a valid small option, or now and then one that is not
        return value if rng.integers(16) else [0, -1, 1.0, True, None, "2"][rng.integers(6)]
    conv = dict(stride=small(int(rng.integers(1, 3))), dilation=small(int(rng.integers(1, 3))),
                groups=small(groups), channels_last=channels_last,
                padding=["valid", "same", "causal", small(int(rng.integers(0, 3))), "valid",
                         "same", "causal", "valid", "full"][rng.integers(9)],
                activation=[None, "relu", None, "relu", None, "relu", None, "relu", "tanh"][
                    rng.integers(9)])
    call_x, call_w, call_b = x, w, b
    replaced = rng.integers(6) == 0
    if replaced:  # one invalid array (refused as conv1d_forward refuses it)
        name = ["x", "w", "b"][rng.integers(3)]
        shape = {"x": x.shape, "w": w.shape, "b": (c_out,)}[name]
        value = bad_array(rng, name, tuple(shape), dtype)[0]
        call_x, call_w, call_b = [value if n == name else v
                                  for n, v in (("x", x), ("w", w), ("b", b))]
    try:
        y = _C.conv1d_forward(call_x, call_w, call_b, training=False, **conv)[0]
        expect = None
        if replaced:
            return None  # an array of another valid size or layout: a valid call of its own
    except (TypeError, ValueError) as exc:
        y, expect = None, Err(type(exc), str(exc))
    window = dict(pool_size=int_option(rng, rng.integers(1, 4)),
                  pool_stride=None if rng.integers(3) == 0 else int_option(rng, rng.integers(1, 3)),
                  pool_padding=["valid", "same", "valid", "same", "valid", "causal", 1, None][
                      rng.integers(8)])
    if expect is None:
        expect = max_pool_verdict(window["pool_size"], window["pool_stride"],
                                  window["pool_padding"], y.shape[1 if channels_last else 2],
                                  "pool_")
    training = bool(rng.integers(2))
    call = lambda: _C.conv1d_max_pool1d_forward(  # noqa: E731
        call_x, call_w, call_b, training=training, **conv, **window)

    def check(out):
        py, pctx = _C.pool1d_forward("max_pool1d", y, pool_size=window["pool_size"],
                                     stride=window["pool_stride"],
                                     padding=window["pool_padding"],
                                     channels_last=channels_last, training=True)
        same(out[0], py, "conv1d_max_pool1d_forward")
        want = R.conv1d_max_pool1d_forward(
            x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
            **conv, **window)[0]
        close(out[0], want, dtype, "conv1d_max_pool1d_forward")
        if not training:
            same(out[1:], (None, None), "conv1d_max_pool1d_forward ctxs")
            return
        dpy = rand(rng, py.shape, dtype)
        same(_C.pool1d_backward("max_pool1d", out[2], dpy),
             _C.pool1d_backward("max_pool1d", pctx, dpy), "conv1d_max_pool1d_forward winners")
        if conv["activation"] is None:  # (with a ReLU, conv1d_forward's ctx keeps y: the same)
            same(_C.conv1d_backward(out[1], dpy, pool=out[2]),
                 _C.conv1d_backward(_C.conv1d_forward(x, w, b, training=True, **conv)[1], dpy,
                                    pool=pctx), "conv1d_max_pool1d_forward ctxs' gradients")
    return "conv1d_max_pool1d_forward", call, expect or Ok(check)


def max_pool_verdict(size, stride, padding, length, prefix=""):
    """What a max pool's window arguments over ``length`` steps get: None (accepted) or the
    error naming the first bad one (``stride`` and ``padding`` named with ``prefix``)."""
    expect = int_verdict(size, "pool_size", 1)
    if expect is None and stride is not None:
        expect = int_verdict(stride, prefix + "stride", 1)
    if expect is None and size > MAX_EXTENT:
        expect = Err(ValueError, "pool_size: ")
    if expect is None and padding not in ("valid", "same"):
        expect = Err(TypeError if not isinstance(padding, str) else ValueError,
                     f"{prefix}padding: expected 'valid' or 'same'")
    if expect is None and padding == "valid" and size > length:
        expect = Err(ValueError, "pool_size: a window of")
    return expect


POOLS = ["max_pool1d", "global_max_pool1d", "global_avg_pool1d"]


def pool_case(rng, backward):
    op = POOLS[rng.integers(3)]
    B, L, C = int(rng.integers(0, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    dtype = np.float32 if rng.integers(2) else np.float64
    channels_last = bool(rng.integers(2))
    x = rand(rng, seq_layout(B, L, C, channels_last), dtype)
    window = dict(pool_size=None, stride=None, padding=None)
    expect = None
    if op == "max_pool1d":
        window = dict(pool_size=int_option(rng, rng.integers(1, 4)),
                      stride=None if rng.integers(3) == 0 else int_option(rng, rng.integers(1, 3)),
                      padding=["valid", "same", "causal", 1, None][min(rng.integers(8), 4)])
        expect = max_pool_verdict(window["pool_size"], window["stride"], window["padding"], L)
    elif rng.integers(4) == 0:
        key = ["pool_size", "stride", "padding"][rng.integers(3)]
        window[key] = [2, "valid", 0][rng.integers(3)]
        expect = Err(ValueError, f"{key}: {op} pools over all steps")
    call_op, call_x = op, x
    if expect is None and rng.integers(3) == 0:
        if rng.integers(2):
            call_x = odd_layout(rng, x)
        else:
            call_x, expect = bad_array(rng, "x", x.shape, dtype)
            if isinstance(call_x, np.ndarray) and call_x.dtype in (np.float32, np.float64) and (
                    call_x.ndim == 3 or call_x.dtype != dtype):
                return None  # x of another valid size or dtype: a valid call of its own
    if expect is None and rng.integers(8) == 0:
        call_op = [JUNK[rng.integers(len(JUNK))], "avg_pool1d", "MAX_POOL1D"][rng.integers(3)]
        expect = Err((TypeError, ValueError), "op: expected 'max_pool1d', 'global_max_pool1d' or "
                                              "'global_avg_pool1d'")
    kw = dict(window, channels_last=channels_last, training=backward)
    reference_kw = {k: v for k, v in window.items() if v is not None}
    if op == "max_pool1d" and window["stride"] is None:
        reference_kw["stride"] = None

    def reference(training=False):
        return getattr(R, op + "_forward")(x.astype(np.float64), channels_last=channels_last,
                                           training=training, **reference_kw)
    if expect is not None or not backward:
        call = lambda: _C.pool1d_forward(call_op, call_x, **kw)  # noqa: E731

        def check(out):
            same(out[0], _C.pool1d_forward(op, x, **kw)[0], "pool1d_forward")
            close(out[0], reference()[0], dtype, f"pool1d_forward {op}")
        return "pool1d_forward", call, expect or Ok(check)
    y, ctx = _C.pool1d_forward(op, x, **kw)
    dy, call_dy, expect, kind = output_gradient(rng, y.shape, dtype)
    call_ctx = ctx
    if kind == 3:
        other = [o for o in POOLS if o != op][rng.integers(2)]
        call_op = [other, None][rng.integers(2)]
        expect = (Err(ValueError, f"ctx: expected the ctx of {other}_forward") if call_op
                  else Err(TypeError, "op: expected"))
    call = lambda: _C.pool1d_backward(call_op, call_ctx, call_dy)  # noqa: E731

    def check_backward(got):
        same(got, _C.pool1d_backward(op, ctx, dy), "pool1d_backward")
        want = getattr(R, op + "_backward")(reference(True)[1], dy.astype(np.float64))
        close(got["x"], want["x"], dtype, f"pool1d_backward {op}")
    return "pool1d_backward", call, expect or Ok(check_backward)


# ------------------------------------------------------------------ runtime


def gemm_case(rng, packed):
    dtype = np.float32 if rng.integers(2) else np.float64
    M, N, K = (int(rng.integers(0, 40)) for _ in range(3))
    trans_a = bool(rng.integers(2)) and not packed
    trans_b = bool(rng.integers(2))
    a = rand(rng, (K, M) if trans_a else (M, K), dtype)
    b = rand(rng, (N, K) if trans_b else (K, N), dtype)
    beta = float([0.0, 1.0, 0.5][rng.integers(3)])
    c = rand(rng, (M, N), dtype) if rng.integers(2) else None
    kw = dict(trans_b=trans_b, beta=beta, c=c)
    if not packed:
        kw.update(trans_a=trans_a, alpha=float(rng.standard_normal()))
    else:
        if rng.integers(3) == 0 and N:
            n0 = int(rng.integers(0, N + 1))
            kw["cols"] = (n0, int(rng.integers(n0, N + 1)))
        kw["repeats"] = int(rng.integers(1, 3))
    name = "gemm_packed" if packed else "gemm"
    fn = getattr(_C, name)
    expect, call_a, call_b, call_kw = None, a, b, dict(kw)
    kind = rng.integers(4)
    if kind == 1:
        call_a, call_b = odd_layout(rng, a), odd_layout(rng, b)
    elif kind == 2:
        which = rng.integers(3)
        if which == 0:  # a decides the dtype and sizes: only the unambiguous kinds
            call_a, expect = bad_array(rng, "a", a.shape, dtype, kinds=(0, 2, 4, 5))
        elif which == 1:
            call_b, expect = bad_array(rng, "b", b.shape, dtype, kinds=(0, 1, 2, 4, 5))
        else:
            call_kw["c"], expect = bad_array(rng, "c", (M, N), dtype)
            if isinstance(call_kw["c"], np.ndarray) and call_kw["c"].dtype == dtype and \
                    call_kw["c"].shape == (M, N):
                expect = None
    elif kind == 3:
        key = "trans_b" if packed or rng.integers(2) else "trans_a"
        if packed and rng.integers(2):
            value = [(0, N + 1), (1, 0), (-1, 1), (0, 2**64), (0,), "ab", 5][rng.integers(7)]
            call_kw["cols"] = value
            expect = Err((TypeError, ValueError), "cols")
        else:
            call_kw[key] = [1, None, "no"][rng.integers(3)]
            expect = incompatible(name)
    call = lambda: fn(call_a, call_b, **call_kw)  # noqa: E731

    def check(got):
        same(got, fn(a, b, **kw), name)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        want = (a64.T if trans_a else a64) @ (b64.T if trans_b else b64) * kw.get("alpha", 1.0)
        base = np.zeros((M, N)) if c is None else c.astype(np.float64)
        if "cols" in kw:
            n0, n1 = kw["cols"]
            full = want + beta * base
            want = base.copy()
            want[:, n0:n1] = full[:, n0:n1]
        else:
            want = want + beta * base
        bound = (np.abs(a64).max(initial=0) * np.abs(b64).max(initial=0) * max(K, 1) + 1)
        if got.shape != want.shape or (got.size and np.abs(got - want).max() > 1e-5 * bound):
            raise Failure(f"{name}: wrong product")
    return name, call, expect or Ok(check)


def gemm_batched_case(rng):
    dtype = np.float32 if rng.integers(2) else np.float64
    B, M, N, K = (int(rng.integers(0, 12)) for _ in range(4))
    trans_a, trans_b = bool(rng.integers(2)), bool(rng.integers(2))
    a = rand(rng, (B, K, M) if trans_a else (B, M, K), dtype)
    b = rand(rng, (B, N, K) if trans_b else (B, K, N), dtype)
    kw = dict(trans_a=trans_a, trans_b=trans_b)
    name = "gemm_batched"
    expect, call_a, call_b, call_kw = None, a, b, dict(kw)
    kind = rng.integers(4)
    if kind == 1:
        call_a, call_b = odd_layout(rng, a), odd_layout(rng, b)
    elif kind == 2:
        if rng.integers(2):
            call_a, expect = bad_array(rng, "a", a.shape, dtype, kinds=(0, 2, 4, 5))
        else:
            call_b, expect = bad_array(rng, "b", b.shape, dtype, kinds=(0, 1, 2, 4, 5))
    elif kind == 3:
        if rng.integers(2):  # the batch or the inner size of b disagrees with a's
            axis = 0 if rng.integers(2) else (1 if not trans_b else 2)
            bad = list(b.shape)
            bad[axis] += 1
            call_b, expect = np.zeros(tuple(bad), dtype), Err(ValueError, "b: ")
        else:
            call_kw["trans_a" if rng.integers(2) else "trans_b"] = [1, None, "no"][rng.integers(3)]
            expect = incompatible(name)
    call = lambda: _C.gemm_batched(call_a, call_b, **call_kw)  # noqa: E731

    def check(got):
        same(got, _C.gemm_batched(a, b, **kw), name)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        want = (np.swapaxes(a64, 1, 2) if trans_a else a64) @ (np.swapaxes(b64, 1, 2) if trans_b else b64)
        bound = np.abs(a64).max(initial=0) * np.abs(b64).max(initial=0) * max(K, 1) + 1
        if got.shape != want.shape or (got.size and np.abs(got - want).max() > 1e-5 * bound):
            raise Failure(f"{name}: wrong product")
    return name, call, expect or Ok(check)


def use_openmp_case(rng):
    """A valid call switches to a loaded OpenMP runtime (the system's libgomp is loaded for it
    when the process has none) and the check switches back at once, so the fuzzer's other calls
    stay on the package's own pool (tests/test_thread_pool_openmp.py covers the switch itself)."""
    loaded = _C.loaded_openmp_runtimes()
    if not loaded:
        import ctypes.util
        name = ctypes.util.find_library("gomp")
        if name:
            ctypes.CDLL(name)
            loaded = _C.loaded_openmp_runtimes()
    if loaded and rng.integers(2):
        def check(_):
            switched = _C.get_thread_pool()
            _C.use_own_pool()
            if switched != ("openmp", loaded[0]):
                raise Failure(f"use_openmp: the pool is {switched}")
        return "use_openmp", lambda: _C.use_openmp(loaded[0]), Ok(check)
    value = ["", "libgomp", "/nowhere/libgomp.so.1", "x" * 5000, 5, None, 2.5][rng.integers(7)]
    call = lambda: _C.use_openmp(value)  # noqa: E731
    if not isinstance(value, str):
        return "use_openmp", call, incompatible("use_openmp")
    return "use_openmp", call, Err(RuntimeError, f"'{value}' is not a loaded OpenMP runtime")

def round_bf16_case(rng):
    shape = tuple(int(n) for n in rng.integers(0, 9, size=rng.integers(1, 4)))
    a = rand(rng, shape, np.float32) * float(10.0 ** rng.integers(-40, 39))
    if rng.integers(3) == 0:
        bad = [np.zeros(shape, np.float64), np.zeros(shape, np.int32), "a", None][rng.integers(4)]
        return "round_bf16", lambda: _C.round_bf16(bad), Err(TypeError, "a: expected")

    def check(got):
        # round to nearest, ties to even, on the float32 bits (NaN stays NaN)
        bits = a.view(np.uint32).astype(np.uint64)
        want = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
        want = np.where(np.isnan(a), a, want)
        if got.shape != a.shape or not np.array_equal(got, want, equal_nan=True):
            raise Failure("round_bf16: not rounded to the nearest bfloat16")
    return "round_bf16", lambda: _C.round_bf16(odd_layout(rng, a)), Ok(check)


def threads_case(rng):
    value = [1, 2, 2, 0, -1, 1025, 2**31, 2**63, 2**64, True, 1.0, "2", None, np.int64(2)][rng.integers(14)]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 1 <= value <= 2:
        def check(_):
            if _C.get_num_threads() != value:
                raise Failure("set_num_threads: not applied")
        return "set_num_threads", lambda: _C.set_num_threads(value), Ok(check)
    error = TypeError if isinstance(value, (bool, float, str, type(None))) else ValueError
    return "set_num_threads", lambda: _C.set_num_threads(value), Err(error, "n: expected")


def isa_setting_case(rng, setter, getter, supported, others, prefix):
    """set_isa or set_bf16_isa: a supported name (applied) or one of others (refused)."""
    value = [supported[rng.integers(len(supported))], *others][rng.integers(len(others) + 1)]
    set_name = setter.__name__
    if value in supported:
        def check(_):
            if getter() != value:
                raise Failure(f"{set_name}: not applied")
        return set_name, lambda: setter(value), Ok(check)
    if not isinstance(value, str):
        return set_name, lambda: setter(value), incompatible(set_name)
    return set_name, lambda: setter(value), Err(ValueError, prefix)


def isa_case(rng):
    return isa_setting_case(rng, _C.set_isa, _C.active_isa, _C.supported_isas(),
                            ["sse", "", "AVX2", "avx1024", None, 2], "isa: ")


def bf16_isa_case(rng):
    supported = _C.supported_bf16_isas()
    return isa_setting_case(rng, _C.set_bf16_isa, _C.active_bf16_isa, supported,
                            [supported[0], "avx512", "", "AMX", None, 3], "bf16_isa: ")


def window_case(rng):
    value = [0, -1, 1, 64, 4096, 2**20, INT64_MAX, -2**63, 2**63, "1"][rng.integers(10)]
    if isinstance(value, int) and -2**63 <= value <= INT64_MAX:
        return "_set_projection_window_bytes", lambda: _C._set_projection_window_bytes(value), Ok()
    return ("_set_projection_window_bytes", lambda: _C._set_projection_window_bytes(value),
            incompatible("_set_projection_window_bytes"))


def small_batch_case(rng):
    value = [True, False, 1, 0, None, "yes"][rng.integers(6)]
    call = lambda: _C._set_small_batch_enabled(value)
    if isinstance(value, bool):
        return "_set_small_batch_enabled", call, Ok()
    return "_set_small_batch_enabled", call, incompatible("_set_small_batch_enabled")


def small_batch_split_case(rng):
    value = [True, False, 1, 0, None, "yes"][rng.integers(6)]
    call = lambda: _C._set_small_batch_split(value)
    if isinstance(value, bool):
        return "_set_small_batch_split", call, Ok()
    return "_set_small_batch_split", call, incompatible("_set_small_batch_split")


def chunks_case(rng):
    n = [0, 1, 5, 100, 2**31, 2**62, INT64_MAX, -1, -2**63][rng.integers(9)]
    grain = [1, 3, 1000, 2**62, INT64_MAX, 0, -5][rng.integers(7)]
    inner = int(rng.integers(0, 3))
    raise_at = -1 if rng.integers(2) else int(rng.integers(0, 10))
    call = lambda: _C.parallel_for_chunks(n, grain, raise_at, inner)  # noqa: E731
    if 0 <= raise_at < n:
        return "parallel_for_chunks", call, Err(RuntimeError, "parallel_for_chunks: raised in the chunk")

    def check(chunks):
        covered = 0
        threads = _C.get_num_threads()
        for begin, end, inner_chunks in chunks:
            # a nested parallel_for runs serially; one run by the caller alone may split
            inner_ok = (inner_chunks == 0 if not inner else
                        inner_chunks == 1 if len(chunks) > 1 else 1 <= inner_chunks <= threads)
            if not (0 <= begin < end <= max(n, 0)) or not inner_ok:
                raise Failure(f"parallel_for_chunks: chunk {(begin, end, inner_chunks)} of n={n}")
            covered += end - begin
        if covered != max(n, 0):
            raise Failure(f"parallel_for_chunks: chunks cover {covered} of {n}")
    return "parallel_for_chunks", call, Ok(check)


def gated_case(rng, backward):
    """gated_activation_forward / _backward: a (..., 2C), dz (..., C)."""
    dtype = np.float32 if rng.integers(2) else np.float64
    lead = tuple(int(rng.integers(0, 5)) for _ in range(rng.integers(0, 3)))
    C = int(rng.integers(1, 40))
    a = rand(rng, lead + (2 * C,), dtype) * 4
    dz = rand(rng, lead + (C,), dtype)
    name = "gated_activation_backward" if backward else "gated_activation_forward"
    fn = getattr(_C, name)
    args = (a, dz) if backward else (a,)
    call_args, expect = list(args), None
    kind = rng.integers(4)
    if kind == 1:
        call_args = [odd_layout(rng, v) for v in args]
    elif kind == 2:
        if backward and rng.integers(2):
            call_args[1], expect = bad_array(rng, "dz", dz.shape, dtype, kinds=(0, 1, 2, 3, 4, 5))
        else:
            call_args[0], expect = bad_array(rng, "a", a.shape, dtype, kinds=(0, 4, 5))
    elif kind == 3:  # an odd or empty last axis
        odd = lead + (int(rng.choice([0, 1, 2 * C + 1])),)
        call_args[0], expect = np.zeros(odd, dtype), Err(ValueError, "a: expected")
        if backward and odd[-1] == 0:  # the check of a comes first
            expect = Err(ValueError, "a: expected")
    call = lambda: fn(*call_args)  # noqa: E731

    def check(got):
        same(got, fn(*args), name)
        a64 = a.astype(np.float64)
        f, g = np.tanh(a64[..., :C]), 1 / (1 + np.exp(-a64[..., C:]))
        if backward:
            d = dz.astype(np.float64)
            want = np.concatenate([d * g * (1 - f * f), d * f * g * (1 - g)], axis=-1)
        else:
            want = f * g
        close(got, want, dtype, name)
    return name, call, expect or Ok(check)


def adam_case(rng):
    """adam_update: w, g, m, v (v_max or None) of one shape, updated in place; the result is
    bitwise that of the same call on fresh C-contiguous copies, and near a float64 NumPy step."""
    dtype = np.float32 if rng.integers(2) else np.float64
    shape = tuple(int(rng.integers(0, 6)) for _ in range(rng.integers(0, 4)))
    w, g, m = (np.array(rand(rng, shape, dtype)) for _ in range(3))
    v = np.array(np.abs(rand(rng, shape, dtype)))
    v_max = np.array(np.abs(rand(rng, shape, dtype))) if rng.integers(2) else None
    rule = ["keras", "torch"][rng.integers(2)]
    T = np.dtype(dtype).type
    kw = dict(rule=rule, beta1=float(T(0.9)), one_minus_beta1=float(T(0.1)),
              beta2=float(T(0.999)), one_minus_beta2=float(T(0.001)), lr=float(T(0.01)),
              eps=float(T(1e-7)), bias2_sqrt=float(T(0.5)),
              grad_mul=float(rng.choice([1.0, 2.0])), grad_div=float(rng.choice([1.0, 3.0])))
    start = [w.copy(), g.copy(), m.copy(), v.copy(), None if v_max is None else v_max.copy()]
    outs = {"w": w, "m": m, "v": v, "v_max": v_max}
    call_g, expect = g, None
    kind = rng.integers(5)
    if kind == 1 and shape:  # another valid layout of the gradient (read only)
        call_g = odd_layout(rng, g)
    elif kind == 2:  # an invalid gradient (not a number: a scalar fits the shape ())
        call_g, expect = bad_array(rng, "g", shape, dtype, kinds=None if shape else (0, 1, 2, 5))
    elif kind == 3:  # an invalid array to update
        name = ["w", "m", "v", "v_max"][rng.integers(4)]
        base = w if outs[name] is None else outs[name]
        how = rng.integers(4)
        if how == 0 and base.size > 1 and base.ndim:  # a layout it cannot write through
            outs[name] = np.flip(base.copy(), 0) if rng.integers(2) else np.asfortranarray(
                base) if base.ndim > 1 and min(base.shape) > 1 else base.astype(">" + base.dtype.str[1:])
            if outs[name].flags.c_contiguous and outs[name].dtype.isnative:
                outs[name] = {"w": w, "m": m, "v": v, "v_max": v_max}[name]  # still valid
            else:
                expect = Err(ValueError, f"{name}: expected a writeable")
        elif how == 1 and base.size:  # read-only
            ro = base.copy()
            ro.setflags(write=False)
            outs[name], expect = ro, Err(ValueError, f"{name}: expected a writeable")
        elif how == 2 and name != "w":  # the same memory as w
            outs[name] = w if w.size else outs[name]
            if w.size:
                expect = Err(ValueError, f"{name}: shares memory with w")
        else:
            outs[name], expect = bad_array(rng, name, shape, dtype, kinds=(0, 1, 2, 3))
            if name == "w" and isinstance(outs[name], np.ndarray) and \
                    outs[name].dtype.kind == "f" and outs[name].dtype.itemsize in (4, 8):
                expect = Err(ValueError, "g: expected")  # w sets the dtype and shape: g differs
                if outs[name].dtype != w.dtype:
                    expect = Err(TypeError, "g: expected dtype")
    elif kind == 4:  # an unknown rule or a junk coefficient
        if rng.integers(2):
            kw["rule"] = ["adam", "", 1, None][rng.integers(4)]
            expect = Err((TypeError, ValueError), "rule: expected 'keras' or 'torch'")
        else:
            junk = [j for j in JUNK if not isinstance(j, float)]
            kw["lr"], expect = junk[rng.integers(len(junk))], incompatible("adam_update")
    call = lambda: (_C.adam_update(outs["w"], call_g, outs["m"], outs["v"], outs["v_max"],  # noqa: E731
                                   **kw), outs)[1]

    def check(got):
        ref = [a if a is None else np.array(a, order="C") for a in start]
        _C.adam_update(ref[0], ref[1], ref[2], ref[3], ref[4], **kw)
        for name, r in zip(["w", "m", "v", "v_max"], [ref[0], ref[2], ref[3], ref[4]]):
            same(got[name], r, f"adam_update {name}")
        # a float64 NumPy step of the same rule
        w0, g0, m0, v0, x0 = (None if a is None else a.astype(np.float64) for a in start)
        g0 = (g0 * kw["grad_mul"]) / kw["grad_div"]
        if rule == "keras":
            m1 = m0 * kw["beta1"] + kw["one_minus_beta1"] * g0
        else:
            m1 = m0 + (g0 - m0) * kw["one_minus_beta1"]
        v1 = v0 * kw["beta2"] + kw["one_minus_beta2"] * g0 * g0
        if x0 is not None:
            v1 = np.maximum(x0, v1)
        if rule == "keras":
            w1 = w0 - m1 * kw["lr"] / (np.sqrt(v1) + kw["eps"])
        else:
            w1 = w0 - kw["lr"] * m1 / (np.sqrt(v1) / kw["bias2_sqrt"] + kw["eps"])
        close(got["w"], w1, dtype, "adam_update w")
    return "adam_update", call, expect or Ok(check)


def adam_many_case(rng):
    """adam_update_many: 0 to 3 parameters of their own dtypes, shapes and amsgrad; the result
    is bitwise that of one adam_update call each on copies, in list order; a bad entry (a
    list of another length, a bad array or constants tuple at some index) raises naming it,
    and nothing is updated."""
    n = int(rng.integers(0, 4))
    rule = ["keras", "torch"][rng.integers(2)]
    ws, gs, ms, vs, v_maxs, constants = [], [], [], [], [], []
    for _ in range(n):
        dtype = np.float32 if rng.integers(2) else np.float64
        shape = tuple(int(rng.integers(0, 6)) for _ in range(rng.integers(0, 3)))
        ws.append(np.array(rand(rng, shape, dtype)))
        gs.append(np.array(rand(rng, shape, dtype)))
        ms.append(np.array(rand(rng, shape, dtype)))
        vs.append(np.array(np.abs(rand(rng, shape, dtype))))
        v_maxs.append(np.array(np.abs(rand(rng, shape, dtype))) if rng.integers(2) else None)
        T = np.dtype(dtype).type
        constants.append((T(0.9), T(0.1), T(0.999), T(0.001), T(0.01), T(1e-7), T(0.5),
                          float(rng.choice([1.0, 2.0])), float(rng.choice([1.0, 3.0]))))
    if not rng.integers(3):
        v_maxs = None if not any(v is not None for v in v_maxs) else v_maxs
    start = [[a if a is None else a.copy() for a in arrays] for arrays in
             (ws, gs, ms, vs, v_maxs or [None] * n)]
    args = {"ws": ws, "gs": gs, "ms": ms, "vs": vs, "v_maxs": v_maxs, "constants": constants}
    expect = None
    kind = rng.integers(5)
    if kind == 1:  # a list of another length, or not a list
        name = ["gs", "ms", "vs", "constants"][rng.integers(4)]
        if rng.integers(2):
            args[name] = list(args[name]) + [args[name][0] if n else ws]
            expect = Err(ValueError, f"{name}: expected {n}")
        else:
            args[name] = {"a": 1} if rng.integers(2) else 7
            expect = Err(TypeError, f"{name}: expected a list or tuple")
    elif kind == 2 and n:  # a bad array at index i
        i = int(rng.integers(n))
        name = ["ws", "gs", "ms", "vs"][rng.integers(4)]
        shape, dtype = ws[i].shape, ws[i].dtype
        args[name] = list(args[name])
        args[name][i], expect = bad_array(rng, f"{name}[{i}]", shape, dtype, kinds=(0, 1, 2, 3))
        if name == "ws" and isinstance(args[name][i], np.ndarray) and \
                args[name][i].dtype.kind == "f" and args[name][i].dtype.itemsize in (4, 8):
            expect = Err((TypeError, ValueError), f"gs[{i}]: expected")  # ws sets dtype and shape
    elif kind == 3 and n:  # a bad constants tuple at index i
        i = int(rng.integers(n))
        args["constants"] = list(constants)
        if rng.integers(2):
            args["constants"][i] = constants[i][:int(rng.integers(9))]
            expect = Err((TypeError, ValueError), f"constants[{i}]: expected")
        else:
            k = int(rng.integers(9))
            args["constants"][i] = constants[i][:k] + ("fast",) + constants[i][k + 1:]
            expect = Err(TypeError, f"constants[{i}][{k}]: expected a float")
    elif kind == 4:
        args["rule"] = ["adam", "", 1, None][rng.integers(4)]
        expect = Err((TypeError, ValueError), "rule: expected 'keras' or 'torch'")
    rule_arg = args.pop("rule", rule)
    call = lambda: (_C.adam_update_many(**args, rule=rule_arg), None)[1]  # noqa: E731

    def check(_):
        ref = [[a if a is None else a.copy() for a in arrays] for arrays in start]
        for i in range(n):
            _C.adam_update(ref[0][i], ref[1][i], ref[2][i], ref[3][i], ref[4][i], rule=rule,
                           **dict(zip(["beta1", "one_minus_beta1", "beta2", "one_minus_beta2",
                                       "lr", "eps", "bias2_sqrt", "grad_mul", "grad_div"],
                                      constants[i])))
        for i in range(n):
            for name, got, r in (("ws", ws, ref[0]), ("ms", ms, ref[2]), ("vs", vs, ref[3]),
                                 ("v_maxs", v_maxs or [None] * n, ref[4])):
                same(got[i], r[i], f"adam_update_many {name}[{i}]")

    if expect is not None:  # checked before any update: the lists' arrays as they were
        def untouched():
            for arrays, was in zip((ws, gs, ms, vs, v_maxs or [None] * n), start):
                for a, b in zip(arrays, was):
                    same(a, b, "adam_update_many after an error")
        expect.after = untouched
    return "adam_update_many", call, expect or Ok(check)


def sum_squares_case(rng):
    """sum_squares: any float array, any layout; near math.fsum of the float64 squares."""
    dtype = np.float32 if rng.integers(2) else np.float64
    shape = tuple(int(rng.integers(0, 9)) for _ in range(rng.integers(0, 4)))
    x = rand(rng, shape, dtype) * 3
    arg, expect = x, None
    kind = rng.integers(3)
    if kind == 1 and shape:  # (odd_layout makes a 0-d array 1-d)
        arg = odd_layout(rng, x)
    elif kind == 2:
        arg, expect = bad_array(rng, "x", shape, dtype, kinds=(0, 5))  # (junk 1.5 is valid)
    call = lambda: _C.sum_squares(arg)  # noqa: E731

    def check(got):
        if got != _C.sum_squares(np.array(x, order="C")):
            raise Failure("sum_squares: differs from the call on a C-contiguous array")
        want = math.fsum((x.astype(np.float64) ** 2).ravel().tolist())
        if not (isinstance(got, float) and abs(got - want) <= 1e-14 * max(want, 1.0)):
            raise Failure(f"sum_squares: {got!r}, exact {want!r}")
    return "sum_squares", call, expect or Ok(check)


def bad_keep(rng, count, p, writeable):
    """An invalid keep= (the mask bits of count elements, (count + 7) // 8 uint8) for rate p,
    and its error."""
    size = (count + 7) // 8
    how = rng.integers(6)
    if how == 0:
        return [0] * size, Err(TypeError, "keep: expected None or a uint8 NumPy array")
    if how == 1:
        return np.zeros(size, rng.choice([np.int8, np.float32, np.uint16])), \
            Err(TypeError, "keep: expected a uint8 array")
    if how == 2:
        return np.zeros((1, size), np.uint8), Err(ValueError, "keep: expected a 1-D array")
    if how == 3:
        return np.zeros(size + 1 + int(rng.integers(3)), np.uint8), \
            Err(ValueError, f"keep: expected {size} bytes")
    if how == 4 and size > 1:
        return np.zeros(2 * size, np.uint8)[::2], Err(ValueError, "keep: expected a ")
    if how == 5 and writeable:
        keep = np.zeros(size, np.uint8)
        keep.setflags(write=False)
        return keep, Err(ValueError, "keep: expected a writeable")
    if p > 0:
        return np.zeros(size + 1, np.uint8), Err(ValueError, f"keep: expected {size} bytes")
    return np.zeros(size, np.uint8), Err(ValueError, "keep: needs a dropout (p > 0)")


def embedding_case(rng):
    """embedding_backward: ids (1-D integers in 0..rows-1), dy (ids.size, dim), grad (rows, dim)
    updated in place, padding_idx None or a row, p in [0, 1), a seed and zero; the result is
    bitwise np.add.at's (ids equal to padding_idx skipped) on the starting grad (zeros with
    zero=True), of dy dropped by rnnfast.reference.dropout when p > 0."""
    dtype = np.float32 if rng.integers(2) else np.float64
    rows, dim, n = int(rng.integers(1, 9)), int(rng.integers(0, 40)), int(rng.integers(0, 60))
    ids = rng.integers(0, rows, n).astype(rng.choice([np.int64, np.int32, np.uint8, np.int16]))
    dy, grad = rand(rng, (n, dim), dtype), rand(rng, (rows, dim), dtype)
    start = grad.copy()
    padding = None if rng.integers(2) else int(rng.integers(0, rows))
    p = [0.0, 0.5, float(rng.random())][rng.integers(3)]
    seed = [0, 2 ** 64 - 1, int(rng.integers(0, 2 ** 63))][rng.integers(3)]
    call_ids, call_dy, call_grad, call_padding, expect = ids, dy, grad, padding, None
    call_p, call_seed = p, seed
    zero = bool(rng.integers(2))  # grad's contents ignored, taken as zeros
    call_keep = None
    kind = rng.integers(10)
    if kind == 1 and n:  # other valid layouts of the read-only arguments
        call_dy = odd_layout(rng, dy)
        call_ids = np.flip(np.flip(ids).copy()) if rng.integers(2) else ids.tolist()
    elif kind == 2:  # an invalid dy
        call_dy, expect = bad_array(rng, "dy", (n, dim), dtype)
    elif kind == 3:  # an id out of range, non-integer ids, or ids of another rank
        how = rng.integers(3)
        if how == 0:
            call_ids = np.append(ids, [rows if rng.integers(2) else -1]).astype(np.int64)
            call_dy = rand(rng, (n + 1, dim), dtype)
            expect = Err(ValueError, "ids: every entry must be in")
        elif how == 1:
            call_ids, expect = ids.astype(np.float64), Err(TypeError, "ids: expected an integer")
        else:
            call_ids, expect = ids.reshape(1, n), Err(ValueError, "ids: expected a 1-D array")
    elif kind == 4:  # an invalid grad: read-only, another layout, dtype or rank
        how = rng.integers(3)
        if how == 0 and grad.size:
            call_grad = grad.copy()
            call_grad.setflags(write=False)
            expect = Err(ValueError, "grad: expected a writeable")
        elif how == 1 and rows > 1 and dim > 1:
            call_grad, expect = np.asfortranarray(grad), Err(ValueError, "grad: expected a writeable")
        else:
            call_grad, expect = bad_array(rng, "grad", (rows, dim), dtype, kinds=(0, 2, 5))
            if isinstance(call_grad, np.ndarray) and call_grad.dtype.kind == "f" and \
                    call_grad.dtype.itemsize in (4, 8):  # a float grad of another rank
                expect = Err(ValueError, "grad: expected a 2-D array")
    elif kind == 5:  # a padding index that is not a row
        call_padding = [rows, -1, 1.5, "0"][rng.integers(4)]
        expect = Err(ValueError if isinstance(call_padding, int) else TypeError, "padding_idx: expected")
    elif kind == 7:  # a rate or a seed out of range
        if rng.integers(2):
            call_p = [1.0, -0.1, float("nan")][rng.integers(3)]
            expect = Err(ValueError, "p: expected a float in [0, 1)")
        else:
            call_p, call_seed = 0.5, [-1, 2 ** 64, 1.5, None][rng.integers(4)]
            expect = Err((TypeError, ValueError), "seed: expected an int in 0..2**64-1")
    elif kind == 8 and p > 0:  # the mask's bits (as embedding_forward keeps them) read
        from rnnfast.reference import dropout as reference_dropout
        call_keep = np.packbits(reference_dropout(np.ones(n * dim, dtype), p, seed) != 0,
                                bitorder="little")
    elif kind == 9:  # an invalid keep
        call_keep, expect = bad_keep(rng, n * dim, p, writeable=False)
    call = lambda: (_C.embedding_backward(call_ids, call_dy, call_grad,  # noqa: E731
                                          padding_idx=call_padding, p=call_p, seed=call_seed,
                                          zero=zero, keep=call_keep),
                    call_grad)[1]

    def check(got):
        from rnnfast.reference import dropout as reference_dropout
        want = np.zeros_like(start) if zero else start.copy()
        keep = np.ones(n, bool) if padding is None else ids != padding
        rows_of = reference_dropout(dy, p, seed) if p else dy
        np.add.at(want, ids[keep].astype(np.int64), rows_of[keep])
        same(got, want, "embedding_backward grad")
    return "embedding_backward", call, expect or Ok(check)


def embedding_forward_case(rng):
    """embedding_forward: ids (integers of any shape in 0..rows-1), weight (rows, dim) float32 /
    float64 in any layout, p in [0, 1), seed in 0..2**64-1; the result is bitwise
    rnnfast.reference.dropout of np.take's rows (the rows themselves for p = 0)."""
    from rnnfast.reference import dropout as reference_dropout
    dtype = np.float32 if rng.integers(2) else np.float64
    rows, dim = int(rng.integers(1, 9)), int(rng.integers(0, 40))
    shape = tuple(int(d) for d in rng.integers(0, 7, int(rng.integers(0, 3))))
    ids = rng.integers(0, rows, shape).astype(rng.choice([np.int64, np.int32, np.uint8]))
    weight = rand(rng, (rows, dim), dtype)
    p = [0.0, 0.5, 0.999, float(rng.random())][rng.integers(4)]
    seed = [0, 2 ** 64 - 1, int(rng.integers(0, 2 ** 63))][rng.integers(3)]
    call_ids, call_w, call_p, call_seed, expect = ids, weight, p, seed, None
    call_keep = None
    kind = rng.integers(8)
    if kind == 1 and dim > 1:
        call_w = odd_layout(rng, weight)
    elif kind == 2:
        call_w, expect = bad_array(rng, "weight", (rows, dim), dtype, kinds=(0, 2, 5))
        if isinstance(call_w, np.ndarray) and call_w.dtype in (np.float32, np.float64):
            expect = Err(ValueError, "weight: expected a 2-D array")
    elif kind == 3:  # an id out of range or non-integer ids
        if rng.integers(2):
            call_ids = np.append(ids, [rows if rng.integers(2) else -1]).astype(np.int64)
            expect = Err(ValueError, "ids: every entry must be in")
        else:
            call_ids, expect = ids.astype(np.float64), Err(TypeError, "ids: expected an integer")
    elif kind == 4:
        call_p = [1.0, -0.1, float("nan"), 2.0][rng.integers(4)]
        expect = Err(ValueError, "p: expected a float in [0, 1)")
    elif kind == 5:
        call_seed = [-1, 2 ** 64, 1.5, "1", None][rng.integers(5)]
        expect = Err((TypeError, ValueError), "seed: expected an int in 0..2**64-1")
    elif kind == 6 and p > 0:  # the mask kept as bits too
        call_keep = np.full((ids.size * dim + 7) // 8, 0xA5, np.uint8)
    elif kind == 7:
        call_keep, expect = bad_keep(rng, ids.size * dim, p, writeable=True)
    call = lambda: _C.embedding_forward(call_ids, call_w, call_p, call_seed,  # noqa: E731
                                        keep=call_keep)

    def check(got):
        rows_of = np.take(weight, ids.astype(np.int64), axis=0)
        same(got, reference_dropout(rows_of, p, seed) if p else rows_of, "embedding_forward")
        if call_keep is not None:
            same(call_keep, np.packbits(reference_dropout(np.ones(ids.size * dim, dtype), p, seed)
                                        != 0, bitorder="little"), "embedding_forward keep")
    return "embedding_forward", call, expect or Ok(check)


def dropout_case(rng):
    """dropout: x (any shape, float32/float64, any layout), p in [0, 1), seed in 0..2**64-1; the
    result is bitwise rnnfast.reference.dropout's."""
    from rnnfast.reference import dropout as reference_dropout
    dtype = np.float32 if rng.integers(2) else np.float64
    shape = tuple(int(d) for d in rng.integers(0, 7, int(rng.integers(0, 4))))
    x = rand(rng, shape, dtype)
    p = [0.0, 0.5, 0.999, float(rng.random())][rng.integers(4)]
    seed = [0, 2 ** 64 - 1, int(rng.integers(0, 2 ** 63))][rng.integers(3)]
    call_x, call_p, call_seed, expect = x, p, seed, None
    kind = rng.integers(5)
    if kind == 1 and x.ndim:
        call_x = odd_layout(rng, x)
    elif kind == 2:
        call_x, expect = bad_array(rng, "x", shape, dtype, kinds=(0, 5))  # any shape is valid
    elif kind == 3:
        call_p = [1.0, -0.1, float("nan"), 2.0][rng.integers(4)]
        expect = Err(ValueError, "p: expected a float in [0, 1)")
    elif kind == 4:
        call_seed = [-1, 2 ** 64, 1.5, "1", None][rng.integers(5)]
        expect = Err((TypeError, ValueError), "seed: expected an int in 0..2**64-1")
    call = lambda: _C.dropout(call_x, call_p, call_seed)  # noqa: E731

    def check(got):
        same(got, reference_dropout(x, p, seed), "dropout")
    return "dropout", call, expect or Ok(check)


def recurrent_masks_case(rng):
    """recurrent_masks: three shapes (tuples or lists of 0-3 ints, or None), the rates, a seed in
    0..2**64-1 and the dtype's name; each mask is bitwise rnnfast.reference.masks.draw_mask's."""
    from rnnfast.reference.masks import MASK_NAMES, draw_mask
    shapes = [None if rng.integers(4) == 0 else
              tuple(int(d) for d in rng.integers(0, 7, int(rng.integers(0, 4))))
              for _ in MASK_NAMES]
    rates = [[0.0, 0.5, 0.999, float(rng.random())][rng.integers(4)] for _ in range(2)]
    seed = [0, 2 ** 64 - 1, int(rng.integers(0, 2 ** 63))][rng.integers(3)]
    dtype = ["float32", "float64"][rng.integers(2)]
    call_shapes, call_rates, call_seed, call_dtype = list(shapes), list(rates), seed, dtype
    expect = None
    kind = rng.integers(7)
    k = int(rng.integers(3))
    if kind == 1 and shapes[k] is not None:
        call_shapes[k] = list(shapes[k])  # a list is a shape too
    elif kind == 2:
        call_shapes[k] = [3, "x", 2.0, {}, np.zeros(2)][rng.integers(5)]
        expect = Err(TypeError, f"{MASK_NAMES[k]}: expected a shape")
    elif kind == 3:
        bad = [-1, -2 ** 63, 2 ** 64][rng.integers(3)]
        call_shapes[k] = (2, bad)
        expect = Err(ValueError, f"{MASK_NAMES[k]}: expected an int >= 0")
    elif kind == 4:
        call_rates[k % 2] = [1.0, -0.1, float("nan"), 2.0][rng.integers(4)]
        expect = Err(ValueError, ["zoneout", "recurrent_dropout"][k % 2] +
                     ": expected a float in [0, 1)")
    elif kind == 5:
        call_seed = [-1, 2 ** 64, 1.5, "1", None, True][rng.integers(6)]
        expect = Err((TypeError, ValueError), "seed: expected an int in 0..2**64-1")
    elif kind == 6:
        call_dtype = ["float16", "int32", None, np.float32][rng.integers(4)]
        expect = Err((TypeError, ValueError), "dtype: expected 'float32' or 'float64'")
    call = lambda: _C.recurrent_masks(*call_shapes, zoneout=call_rates[0],  # noqa: E731
                                      recurrent_dropout=call_rates[1], seed=call_seed,
                                      dtype=call_dtype)

    def check(got):
        for name, shape, m, p in zip(MASK_NAMES, shapes, got, [rates[0], rates[0], rates[1]]):
            if shape is None:
                assert m is None, f"recurrent_masks {name}: expected None"
                continue
            assert m.dtype == np.dtype(dtype) and m.flags.c_contiguous, f"recurrent_masks {name}"
            same(m, draw_mask(seed, name, shape, p, dtype), f"recurrent_masks {name}")
    return "recurrent_masks", call, expect or Ok(check)


def array_memory_case(rng):
    """The training loops' NumPy memory handler: a scope opened and closed (arrays allocated,
    freed and resized inside it), or a bad argument."""
    kind = int(rng.integers(4))
    if kind == 0:
        return "_array_memory_enter", lambda: _C._array_memory_enter(1), \
            incompatible("_array_memory_enter")
    if kind == 1:
        value = JUNK[rng.integers(1, len(JUNK))]
        return "_array_memory_exit", lambda: _C._array_memory_exit(value), \
            Err(TypeError, "previous: expected what _array_memory_enter() returned")
    n = int(rng.choice([1, 1000, 70_000, 300_000, 1_100_000]))

    def scope():
        previous = _C._array_memory_enter()
        try:
            a = np.full(n, 3.0, np.float32)
            b = np.zeros(n, np.float32)
            del a
            c = np.ones(n, np.float32)
            c.resize(n * 2 + 1, refcheck=False)
            stats = _C._array_memory_stats()
        finally:
            _C._array_memory_exit(previous)
        return b, c, stats

    def check(result):
        b, c, stats = result
        assert not b.any() and (c[:n] == 1).all() and not c[n:].any(), "_array_memory: values"
        assert stats["scopes"] >= 1 and stats["idle_bytes"] <= stats["max_idle_bytes"]
    return "_array_memory_enter", scope, Ok(check)


def no_argument_case(name):
    def make(rng):
        fn = getattr(_C, name)
        if rng.integers(4) == 0:
            return name, lambda: fn(1), incompatible(name)
        return name, fn, Ok()
    return make


CASES = {
    "recurrent_forward": recurrent_forward_case,
    "recurrent_forward_positional": lambda rng: recurrent_forward_case(
        rng, "recurrent_forward_positional"),
    "recurrent_backward": recurrent_backward_case,
    "layer_norm_recurrent_forward": layer_norm_forward_case,
    "layer_norm_recurrent_backward": layer_norm_backward_case,
    "conv1d_forward": lambda rng: conv_case(rng, False),
    "conv1d_backward": lambda rng: conv_case(rng, True),
    "conv1d_max_pool1d_forward": conv_pool_case,
    "pool1d_forward": lambda rng: pool_case(rng, False),
    "pool1d_backward": lambda rng: pool_case(rng, True),
    "gemm": lambda rng: gemm_case(rng, False),
    "gemm_packed": lambda rng: gemm_case(rng, True),
    "gemm_batched": gemm_batched_case,
    "gated_activation_forward": lambda rng: gated_case(rng, False),
    "gated_activation_backward": lambda rng: gated_case(rng, True),
    "adam_update": adam_case,
    "adam_update_many": adam_many_case,
    "sum_squares": sum_squares_case,
    "embedding_backward": embedding_case,
    "embedding_forward": embedding_forward_case,
    "dropout": dropout_case,
    "recurrent_masks": recurrent_masks_case,
    "use_openmp": use_openmp_case,
    "set_bf16_isa": bf16_isa_case,
    "round_bf16": round_bf16_case,
    "set_num_threads": threads_case,
    "set_isa": isa_case,
    "_set_projection_window_bytes": window_case,
    "_set_small_batch_enabled": small_batch_case,
    "_set_small_batch_split": small_batch_split_case,
    "parallel_for_chunks": chunks_case,
    "_array_memory_enter": array_memory_case,
    "_array_memory_exit": array_memory_case,
    **{name: no_argument_case(name) for name in
       ("get_num_threads", "active_isa", "supported_isas", "build_info", "get_thread_pool",
        "loaded_openmp_runtimes", "use_own_pool", "active_bf16_isa", "supported_bf16_isas",
        "_array_memory_stats")},
}


def entry_points():
    return sorted(n for n in dir(_C) if callable(getattr(_C, n)) and
                  not isinstance(getattr(_C, n), type) and not n.startswith("__"))


def run_one(entry, call, expect):
    """Runs one call; raises Failure when the outcome is not the expected one."""
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - every exception is judged here
        if isinstance(expect, Ok):
            raise Failure(f"{entry}: a valid call raised {type(error).__name__}: {error}") from error
        if not isinstance(error, expect.types):
            raise Failure(f"{entry}: expected {[t.__name__ for t in expect.types]} "
                          f"'{expect.prefix}...', got {type(error).__name__}: {error}") from error
        if not str(error).startswith(expect.prefix):
            raise Failure(f"{entry}: expected a message starting '{expect.prefix}', got "
                          f"{type(error).__name__}: {error}") from error
        if getattr(expect, "after", None) is not None:  # (what a refused call must leave)
            expect.after()
        return "refused"
    if isinstance(expect, Err):
        raise Failure(f"{entry}: accepted an invalid call (expected {expect.types[0].__name__} "
                      f"'{expect.prefix}...')")
    if expect.check is not None:
        expect.check(result)
    return "accepted"


def fuzz(calls, seed, only=None, progress=None, keep_going=False, heartbeat=None,
         heartbeat_seconds=60.0):
    """calls per entry point; returns {entry: {"accepted": n, "refused": n, "seconds": s,
    "cpu_seconds": s}} (wall-clock and this process's CPU time). Raises Failure with the entry
    point, seed and call index at the first wrong outcome; with keep_going, the entry point's
    tally gets "failure" (that message) and the next one runs. heartbeat(entry, tally) is
    called every heartbeat_seconds during an entry point's run, with the counts so far."""
    missing = set(entry_points()) - set(CASES)
    if missing:
        raise Failure(f"entry points the fuzzer does not know: {sorted(missing)}")
    unknown = set(only or ()) - set(CASES)
    if unknown:
        raise Failure(f"no such entry points: {sorted(unknown)}")
    saved = (_C.get_num_threads(), _C.active_isa(), _C.active_bf16_isa())
    counts = {}
    try:
        for entry in sorted(CASES):
            if only is not None and entry not in only:
                continue
            rng = np.random.default_rng([seed, sorted(CASES).index(entry)])
            tally = counts[entry] = {"accepted": 0, "refused": 0}
            start, cpu_start = time.perf_counter(), time.process_time()
            next_beat = start + heartbeat_seconds
            done = 0
            try:
                while done < calls:
                    if heartbeat and time.perf_counter() >= next_beat:
                        next_beat += heartbeat_seconds
                        heartbeat(entry, dict(tally, seconds=time.perf_counter() - start,
                                              cpu_seconds=time.process_time() - cpu_start))
                    case = CASES[entry](rng)
                    if case is None:
                        continue
                    name, call, expect = case
                    try:
                        tally[run_one(name, call, expect)] += 1
                    except Failure as failure:
                        raise Failure(f"{failure} (seed {seed}, call {done} of {entry})") from failure
                    done += 1
            except Failure as failure:
                if not keep_going:
                    raise
                tally["failure"] = str(failure)
            finally:
                tally["seconds"] = time.perf_counter() - start
                tally["cpu_seconds"] = time.process_time() - cpu_start
            if progress:
                progress(entry, tally)
    finally:
        _C.set_num_threads(saved[0])
        _C.set_isa(saved[1])
        _C.set_bf16_isa(saved[2])
        _C._set_projection_window_bytes(0)
        _C._set_small_batch_enabled(True)
        _C._set_small_batch_split(False)
    return counts


def shard(entries, spec):
    """The K-th of N parts of entries ("K/N", K = 1..N), every N-th from the K-th."""
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard: expected K/N, got {spec!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard: expected 1 <= K <= N, got {spec!r}")
    return sorted(entries)[k - 1::n]


def child_command(args, entry):
    """The command line of the child process that fuzzes ``entry`` (run_isolated)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--calls", str(args.calls),
           "--seed", str(args.seed), "--only", entry, "--keep-going",
           "--heartbeat", str(getattr(args, "heartbeat", 60.0))]
    return cmd + (["--log", args.log] if args.log else [])


def run_isolated(args, entries, command=child_command):
    """Each entry point in a child process of this script (same interpreter and environment, so
    also the sanitizer runtimes); a child that dies is logged as crashed with its exit status.
    Returns the exit status of the whole run (1 if any entry point failed or crashed)."""
    pending, running, bad = list(entries), {}, []
    while pending or running:
        while pending and len(running) < args.jobs:
            entry = pending.pop(0)
            running[entry] = (subprocess.Popen(command(args, entry)), time.perf_counter())
        time.sleep(0.2)
        for entry, (child, began) in list(running.items()):
            code = child.poll()
            if code is None:
                continue
            del running[entry]
            if code == 0:
                continue
            bad.append(entry)
            if code == 1:  # a wrong outcome: the child logged and printed it
                continue
            seconds = time.perf_counter() - began
            print(f"{entry:30} CRASHED with exit status {code} after {seconds:.1f} s",
                  file=sys.stderr, flush=True)
            if args.log:
                with open(args.log, "a") as log:
                    log.write(json.dumps({"entry": entry, "seed": args.seed, "calls": None,
                                          "seconds": round(seconds, 3), "outcome": "crashed",
                                          "exit_status": code}) + "\n")
    if bad:
        print(f"wrong outcomes or crashes in {bad}", file=sys.stderr)
        return 1
    print(f"{len(entries)} entry points x {args.calls} calls, every outcome as expected")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per entry point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="entry points to fuzz (default: all)")
    parser.add_argument("--shard", metavar="K/N", help="the K-th of N parts of the entry points")
    parser.add_argument("--log", metavar="PATH",
                        help="append one JSON line per finished entry point to PATH")
    parser.add_argument("--keep-going", action="store_true",
                        help="after a wrong outcome, go on with the next entry point")
    parser.add_argument("--isolate", action="store_true",
                        help="each entry point in its own process: a crash (or a sanitizer "
                             "report, which ends the process) is logged and the next one runs")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --isolate, the entry points run at the same time")
    parser.add_argument("--heartbeat", type=float, default=60.0, metavar="SECONDS",
                        help="print the counts and rates of the running entry point this often "
                             "(0: never)")
    parser.add_argument("--list", action="store_true", help="print the entry points and exit")
    args = parser.parse_args(argv)
    only = args.only
    if args.shard:
        try:
            only = shard(only if only is not None else CASES, args.shard)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    if args.list:
        print("\n".join(sorted(only if only is not None else CASES)))
        return 0
    if args.jobs < 1:
        parser.error("--jobs: expected a positive count")
    start = time.perf_counter()
    print(f"rnnfast {rnnfast.__version__} from {rnnfast.__file__}, isa {_C.active_isa()}, "
          f"seed {args.seed}, {args.calls} calls per entry point", flush=True)
    if args.isolate:
        return run_isolated(args, sorted(only if only is not None else CASES))

    def rates(tally):
        n = tally["accepted"] + tally["refused"]
        return (n, n / tally["seconds"] if tally["seconds"] > 0 else float("inf"),
                n / tally["cpu_seconds"] if tally["cpu_seconds"] > 0 else float("inf"))

    def beat(entry, tally):
        n, rate, cpu_rate = rates(tally)
        print(f"{entry:30} {n:8d} calls so far, {tally['seconds']:8.1f} s, {rate:8.1f} calls/s, "
              f"{cpu_rate:8.1f} calls per CPU second (running)", flush=True)

    def progress(entry, tally):
        n, rate, cpu_rate = rates(tally)
        outcome = "FAILED" if "failure" in tally else "ok"
        print(f"{entry:30} {n:8d} calls: {tally['accepted']:8d} accepted, {tally['refused']:8d} "
              f"refused as expected, {tally['seconds']:8.1f} s, {rate:8.0f} calls/s, "
              f"{cpu_rate:8.0f} calls per CPU second, {outcome} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if "failure" in tally:
            print(f"FAILED: {tally['failure']}", file=sys.stderr, flush=True)
        if args.log:
            record = {"entry": entry, "seed": args.seed, "calls": n, "accepted": tally["accepted"],
                      "refused": tally["refused"], "seconds": round(tally["seconds"], 3),
                      "calls_per_second": round(rate, 1),
                      "cpu_seconds": round(tally["cpu_seconds"], 3),
                      "calls_per_cpu_second": round(cpu_rate, 1), "outcome": outcome,
                      "failure": tally.get("failure"), "isa": _C.active_isa()}
            with open(args.log, "a") as log:
                log.write(json.dumps(record) + "\n")
    try:
        counts = fuzz(args.calls, args.seed, only, progress, keep_going=args.keep_going,
                      heartbeat=beat if args.heartbeat > 0 else None,
                      heartbeat_seconds=args.heartbeat)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    total = sum(t["accepted"] + t["refused"] for t in counts.values())
    failed = sorted(e for e, t in counts.items() if "failure" in t)
    if failed:
        print(f"{total} calls over {len(counts)} entry points; wrong outcomes in {failed}",
              file=sys.stderr)
        return 1
    print(f"{total} calls over {len(counts)} entry points, every outcome as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
