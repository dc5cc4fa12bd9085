"""Single-step generation latency: one LSTM step per call, the state in from Python and out.

Each implementation ("step peer") gives a ``StepRun``: ``inputs(x)`` turns a ``(B, I)`` float32
array into what ``step`` takes (outside the timing), ``state(h0, c0)`` the initial state
likewise, ``step(x, state) -> (y, state)`` is one timed call, and ``to_numpy(y, state)`` gives
``(y, h, c)`` as ``(B, H)`` arrays for the check; ``context()`` is entered around the check and
the timing (``torch.inference_mode`` for PyTorch, so it is not paid per call).

The check runs ``STEP_SHAPE.T`` chained steps from a random state and compares every ``y`` and
the final ``h``, ``c`` with ``torch.nn.LSTM`` in float64 over the same sequence (DESIGN.md's
float32 tolerance). The timing chains the calls too (each call's state feeds the next, as in
generation) on one fixed input, in batches of ``n`` calls; the figure is seconds per call.
"""
import contextlib
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import _env
import _onnx
from _peers import TOLERANCES, compute_oracle, make_case, relative_error
from _shapes import CELLS, STEP_SHAPE, STEP_TARGET_US

WEIGHT_KEYS = ("w_ih", "w_hh", "b_ih", "b_hh")
# Seconds of one timed batch of calls.
BATCH_SECONDS = 0.05


@dataclass
class StepRun:
    inputs: Callable
    state: Callable
    step: Callable
    to_numpy: Callable
    context: Callable = field(default=contextlib.nullcontext)


def _rnnfast_recurrent_step(a: dict) -> StepRun:
    import rnnfast.nn
    from rnnfast.generation import RecurrentStep

    I, H = a["w_ih"].shape[1], a["w_hh"].shape[1]
    layer = rnnfast.nn.LSTM(I, H)
    layer.load_state_dict({"weight_ih_l0": a["w_ih"], "weight_hh_l0": a["w_hh"],
                           "bias_ih_l0": a["b_ih"], "bias_hh_l0": a["b_hh"]})
    layer.eval()
    stepper = RecurrentStep(layer)
    return StepRun(
        inputs=lambda x: x,
        state=lambda h0, c0: (h0[None], c0[None]),
        step=stepper,
        to_numpy=lambda y, state: (y, state[0][0], state[1][0]),
    )


def _rnnfast_functional(a: dict) -> StepRun:
    from rnnfast.functional import lstm_forward

    w_ih, w_hh, b_ih, b_hh = (a[k] for k in WEIGHT_KEYS)

    def step(x, state):
        y, h, c, _ = lstm_forward(x, w_ih, w_hh, b_ih, b_hh, state[0], state[1])
        return y, (h, c)

    return StepRun(
        inputs=lambda x: x[None],
        state=lambda h0, c0: (h0, c0),
        step=step,
        to_numpy=lambda y, state: (y[0], state[0], state[1]),
    )


def _torch_module(a: dict, cls):
    import torch

    I, H = a["w_ih"].shape[1], a["w_hh"].shape[1]
    module = cls(I, H)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    if cls is torch.nn.LSTM:
        names = tuple(n + "_l0" for n in names)
    module.load_state_dict({n: torch.from_numpy(a[k]) for n, k in zip(names, WEIGHT_KEYS)})
    return module.eval()


def _torch_cell(a: dict) -> StepRun:
    import torch

    cell = _torch_module(a, torch.nn.LSTMCell)

    def step(x, state):
        h, c = cell(x, state)
        return h, (h, c)

    return StepRun(
        inputs=torch.from_numpy,
        state=lambda h0, c0: (torch.from_numpy(h0), torch.from_numpy(c0)),
        step=step,
        to_numpy=lambda y, state: tuple(t.numpy() for t in (y,) + state),
        context=torch.inference_mode,
    )


def _torch_lstm(a: dict) -> StepRun:
    import torch

    lstm = _torch_module(a, torch.nn.LSTM)
    return StepRun(
        inputs=lambda x: torch.from_numpy(x[None]),
        state=lambda h0, c0: (torch.from_numpy(h0[None]), torch.from_numpy(c0[None])),
        step=lstm,
        to_numpy=lambda y, state: tuple(t[0].numpy() for t in (y,) + state),
        context=torch.inference_mode,
    )


def _onnxruntime(a: dict) -> StepRun:
    model = _onnx.build_model("lstm", *(a[k] for k in WEIGHT_KEYS), T=1, B=STEP_SHAPE.B,
                              with_y=False)
    session = _onnx.session(model, _env.current_threads())
    names = [o.name for o in session.get_outputs()]

    def step(x, state):
        h, c = session.run(names, {"X": x, "initial_h": state[0], "initial_c": state[1]})
        return h, (h, c)

    return StepRun(
        inputs=lambda x: x[None],
        state=lambda h0, c0: (h0[None], c0[None]),
        step=step,
        to_numpy=lambda y, state: (y[0], state[0][0], state[1][0]),
    )


@dataclass(frozen=True)
class StepPeer:
    name: str
    family: str  # the compare.py --peers name it belongs to
    make: Callable


STEP_PEERS = {
    p.name: p
    for p in (
        StepPeer("rnnfast RecurrentStep", "rnnfast", _rnnfast_recurrent_step),
        StepPeer("rnnfast lstm_forward (T=1)", "rnnfast", _rnnfast_functional),
        StepPeer("torch LSTMCell", "torch", _torch_cell),
        StepPeer("torch LSTM (T=1)", "torch", _torch_lstm),
        StepPeer("onnxruntime LSTM (T=1)", "onnxruntime", _onnxruntime),
    )
}


def _floor(a: dict) -> StepRun:
    """Not an LSTM step: NumPy's matrix-vector product of ``[w_ih w_hh]`` (``4H x (I+H)``) with
    ``[x; h]``, i.e. reading every weight a step needs once, without the gate math: a floor
    for any step on this machine (NumPy's BLAS at its own thread count)."""
    w = np.ascontiguousarray(np.concatenate([a["w_ih"], a["w_hh"]], axis=1))
    out = np.empty(w.shape[0], np.float32)

    def step(v, state):
        return np.dot(w, v, out=out), state

    return StepRun(
        inputs=lambda x: np.ascontiguousarray(np.concatenate([x[0], a["h0"][0]])),
        state=lambda h0, c0: None,
        step=step,
        to_numpy=lambda y, state: (y,),
    )


def check_floor(run: StepRun, a: dict) -> float:
    w = np.concatenate([a["w_ih"], a["w_hh"]], axis=1).astype(np.float64)
    v = run.inputs(a["x"][0])
    ref = w @ v.astype(np.float64)
    error = relative_error(run.step(v, None)[0], ref)
    if error > TOLERANCES[np.dtype(np.float32)][0]:
        raise AssertionError(f"NumPy matrix-vector product: relative error {error:.3g}")
    return error


FLOOR_NAME = "floor: NumPy [w_ih w_hh] @ [x; h], no gate math"


def step_case():
    """The seeded weights, a ``STEP_SHAPE.T``-step sequence and states, and the float64 oracle."""
    case = make_case(CELLS["lstm"], STEP_SHAPE)
    return case.inputs(np.float32), compute_oracle(case)


def check_step(peer: StepPeer, run: StepRun, a: dict, oracle: dict) -> float:
    """Chained steps over the case's sequence against the oracle: the largest relative error
    of ``y`` (every step), ``h_n`` and ``c_n``; AssertionError beyond the float32 tolerance."""
    tol = TOLERANCES[np.dtype(np.float32)][0]
    state = run.state(a["h0"], a["c0"])
    errors = {}
    steps = a["x"].shape[0]
    with run.context():
        for t in range(steps):
            y, state = run.step(run.inputs(a["x"][t]), state)
            y, h, c = run.to_numpy(y, state)
            results = [("y", y, oracle["y"][t])]
            if t == steps - 1:
                results += [("h_n", h, oracle["h_n"]), ("c_n", c, oracle["c_n"])]
            for key, got, ref in results:
                if got.dtype != np.float32:
                    raise AssertionError(f"{peer.name}: {key} has dtype {got.dtype}, "
                                         f"expected float32")
                errors[key] = max(errors.get(key, 0.0), relative_error(got, ref))
    worst = max(errors.values())
    if worst > tol:
        raise AssertionError(f"{peer.name}: one LSTM step at a time disagrees with PyTorch "
                             f"float64: " + "; ".join(f"{k} {e:.3g}" for k, e in errors.items()))
    return worst


def time_steps(run: StepRun, x, state, repeats: int) -> tuple:
    """Seconds per call of ``repeats`` batches of chained calls, and the calls per batch."""

    def batch(n):
        s = state
        start = time.perf_counter()
        for _ in range(n):
            _, s = run.step(x, s)
        return time.perf_counter() - start

    with run.context():
        gc.collect()
        n, elapsed = 1, batch(1)
        while elapsed < BATCH_SECONDS / 10:
            n *= 10
            elapsed = batch(n)
        n = max(1, round(n * BATCH_SECONDS / elapsed))
        return [batch(n) / n for _ in range(repeats)], n


def _row(threads, name: str, family: str, times: list, calls: int, error: float) -> dict:
    return {"threads": threads, "peer": name, "family": family,
            "median_us": statistics.median(times) * 1e6, "best_us": min(times) * 1e6,
            "times_us": [t * 1e6 for t in times], "calls_per_batch": calls,
            "max_rel_error": error}


def measure_steps(families, threads, repeats: int, log=print) -> list:
    """One row per thread count and step peer of the given ``--peers`` families, then the floor
    (``threads`` "BLAS": NumPy's own count)."""
    a, oracle = step_case()
    rows = []
    for n in threads:
        _env.set_threads(n)
        for peer in STEP_PEERS.values():
            if peer.family not in families:
                continue
            run = peer.make(a)
            error = check_step(peer, run, a, oracle)
            state = run.state(a["h0"], a["c0"])
            times, calls = time_steps(run, run.inputs(a["x"][0]), state, repeats)
            rows.append(_row(n, peer.name, peer.family, times, calls, error))
            log(f"[{n} thr] step {peer.name}: {rows[-1]['median_us']:.2f} us per call")
    run = _floor(a)
    error = check_floor(run, a)
    times, calls = time_steps(run, run.inputs(a["x"][0]), None, repeats)
    rows.append(_row("BLAS", FLOOR_NAME, "numpy", times, calls, error))
    log(f"step {FLOOR_NAME}: {rows[-1]['median_us']:.2f} us per call")
    return rows


def _fmt_ratio(ratio) -> str:
    return "—" if ratio is None else format(ratio, ".2f")


def step_markdown(rows: list, repeats: int) -> str:
    s = STEP_SHAPE
    lines = [
        f"## Single-step generation latency: LSTM, B={s.B}, I={s.I}, H={s.H}, float32",
        "",
        f"- One call = one step, state in from Python and out to Python, each call's state "
        f"feeding the next; median (and best) over {repeats} batches of about "
        f"{BATCH_SECONDS * 1e3:g} ms of calls, after a check of {s.T} chained steps against "
        f"PyTorch float64",
        f"- Target for rnnfast (issue \"Performance\"): at most {STEP_TARGET_US:g} us per call",
        f"- The last row is no step: NumPy's matrix-vector product of the {4 * s.H}x{s.I + s.H} "
        f"float32 weights a step reads ({4 * s.H * (s.I + s.H) * 4 / 2**20:.2f} MiB) with "
        f"[x; h], at NumPy's own BLAS thread count: roughly the floor of any step here",
        "",
        "| threads | implementation | us per call | best us | time / RecurrentStep's | max rel. error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = {r["threads"]: r["median_us"] for r in rows if r["peer"] == "rnnfast RecurrentStep"}
    for r in rows:
        ratio = r["median_us"] / base[r["threads"]] if r["threads"] in base else None
        lines.append(f"| {r['threads']} | {r['peer']} | {r['median_us']:.2f} | "
                     f"{r['best_us']:.2f} | {_fmt_ratio(ratio)} | {r['max_rel_error']:.1e} |")
    lines.append("")
    return "\n".join(lines)
