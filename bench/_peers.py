"""Inputs, the implementations being measured ("peers"), and the check of their results.

A peer turns a ``Case`` into a ``Run``: ``call()`` is what gets timed, ``extract(call())``
turns its raw result into NumPy arrays named like the oracle's (``y``, ``h_n``, ``c_n`` and,
for a training step, ``dx``, ``dh0``, ``dc0``, ``dw_ih``, ``dw_hh``, ``db_ih``, ``db_hh``).
Every peer is checked against the oracle (PyTorch in float64, same weights) before it is timed.

Precision ``"bfloat16"`` (``compare.py --precision``): rnnfast with ``precision="bfloat16"`` and
PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (float32 parameters), checked
against the same float64 oracle by issue 16's rule: each output's and gradient's error (root
mean square) at most twice that of PyTorch under autocast on the same case (``check_bf16``).

Adding a peer: write a class with ``name``, ``dtype``, ``modes`` and
``prepare(case, mode) -> Run`` (and, if it needs optional packages, ``unavailable()``
returning why it cannot run, or None), then register it in ``PEERS``. ``compare.py --peers``
and the pytest suite pick it up; modes a peer lacks are left empty in the table.
"""
import importlib
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import _env
import _onnx
from _shapes import Cell, Shape

WEIGHT_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")

# DESIGN.md's numerical contract, as max |got - ref| / max(1, max |ref|) against float64:
# (outputs, gradients) per dtype.
TOLERANCES = {
    np.dtype(np.float32): (1e-4, 1e-3),
    np.dtype(np.float64): (1e-10, 1e-10),
}


@dataclass
class Case:
    """Seeded inputs of one cell and shape, float32 values (stored exactly in float64 too)."""

    cell: Cell
    shape: Shape
    arrays: dict
    _by_dtype: dict = field(default_factory=dict, repr=False)

    def inputs(self, dtype) -> dict:
        """The arrays in ``dtype`` (float64 copies hold exactly the float32 values)."""
        dtype = np.dtype(dtype)
        if dtype not in self._by_dtype:
            self._by_dtype[dtype] = {k: v.astype(dtype) for k, v in self.arrays.items()}
        return self._by_dtype[dtype]

    def state_names(self) -> tuple:
        return ("h0", "c0") if self.cell.has_cell_state else ("h0",)

    def output_keys(self) -> tuple:
        return ("y", "h_n", "c_n") if self.cell.has_cell_state else ("y", "h_n")

    def grad_keys(self) -> tuple:
        return tuple("d" + k for k in ("x",) + self.state_names() + WEIGHT_NAMES)


def make_case(cell: Cell, shape: Shape) -> Case:
    """Inputs drawn like PyTorch's init (weights ~ U(-1/sqrt(H), 1/sqrt(H))), seeded per case."""
    rng = np.random.default_rng(zlib.crc32(f"{cell.name}/{shape.name}".encode()))
    T, B, I, H, G = shape.T, shape.B, shape.I, shape.H, cell.gates
    k = 1.0 / np.sqrt(H)

    def uniform(size, bound):
        return rng.uniform(-bound, bound, size=size).astype(np.float32)

    arrays = {
        "x": uniform((T, B, I), 1.0),
        "w_ih": uniform((G * H, I), k),
        "w_hh": uniform((G * H, H), k),
        "b_ih": uniform((G * H,), k),
        "b_hh": uniform((G * H,), k),
        "h0": uniform((B, H), 0.5),
    }
    if cell.has_cell_state:
        arrays["c0"] = uniform((B, H), 0.5)
    arrays["dy"] = uniform((T, B, H), 1.0)
    return Case(cell, shape, arrays)


@dataclass
class Run:
    """``call()`` is timed; ``extract(call())`` gives the named NumPy results for the check."""

    call: Callable[[], object]
    extract: Callable[[object], dict]


class FunctionalPeer:
    """A module with DESIGN.md's ``<cell>_forward`` / ``<cell>_backward``, called directly.

    Raises ``RuntimeError`` if the module lacks the functions: nothing is ever substituted.
    """

    modes = ("inference", "training")

    def __init__(self, name: str, module_name: str, dtype, precision: str = "float32"):
        self.name = name
        self.module_name = module_name
        self.dtype = np.dtype(dtype)
        self.precision = precision

    def _function(self, cell: Cell, which: str):
        module = importlib.import_module(self.module_name)
        function_name = f"{cell.name}_{which}"
        function = getattr(module, function_name, None)
        if function is None:
            raise RuntimeError(
                f"{self.module_name}.{function_name} does not exist: the {self.name!r} "
                f"benchmark measures exactly that function and has no fallback"
            )
        return function

    def prepare(self, case: Case, mode: str) -> Run:
        a = case.inputs(self.dtype)
        forward = self._function(case.cell, "forward")
        args = (a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"]) + tuple(
            a[s] for s in case.state_names()
        )
        kwargs = {"nonlinearity": "tanh"} if case.cell.name == "rnn" else {}
        outputs = case.output_keys()
        if self.precision != "float32":
            kwargs["precision"] = self.precision

        if mode == "inference":
            call_kwargs = dict(kwargs)
            if self.precision == "bfloat16":
                # weights that stay the same from call to call (a model serving requests): their
                # bfloat16 packings are made at the first call and reused, as bench/bf16.py does
                call_kwargs["weights_token"] = importlib.import_module(
                    self.module_name).new_weights_token()

            def call():
                return forward(*args, training=False, **call_kwargs)

            def extract(result):
                return dict(zip(outputs, result[:-1]))

            return Run(call, extract)

        backward = self._function(case.cell, "backward")
        dy = a["dy"]

        def call():
            *values, ctx = forward(*args, training=True, **kwargs)
            return values, backward(ctx, dy)

        def extract(result):
            values, grads = result
            named = dict(zip(outputs, values))
            for name in ("x",) + case.state_names() + WEIGHT_NAMES:
                if name not in grads:
                    raise AssertionError(f"{self.name}: backward returned no gradient {name!r}")
                named["d" + name] = grads[name]
            return named

        return Run(call, extract)


class TorchPeer:
    """``torch.nn.RNN/LSTM/GRU`` (one layer, time-major) holding the case's weights; with
    ``autocast``, called under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (float32
    parameters and inputs, as autocast users hold them; outputs read back as float32)."""

    name = "torch"
    modes = ("inference", "training")

    def __init__(self, dtype=np.float32, autocast: bool = False):
        self.dtype = np.dtype(dtype)
        self.autocast = autocast

    def _module(self, case: Case, a: dict):
        import torch

        I, H = case.shape.I, case.shape.H
        if case.cell.name == "rnn":
            module = torch.nn.RNN(I, H, nonlinearity="tanh")
        elif case.cell.name == "lstm":
            module = torch.nn.LSTM(I, H)
        elif case.cell.name == "gru":
            module = torch.nn.GRU(I, H)
        else:
            raise ValueError(f"cell: expected rnn, lstm or gru, got {case.cell.name!r}")
        module = module.to(torch.float64 if self.dtype == np.float64 else torch.float32)
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        module.load_state_dict({n: torch.from_numpy(a[w]) for n, w in zip(names, WEIGHT_NAMES)})
        return module

    def prepare(self, case: Case, mode: str) -> Run:
        import torch

        a = case.inputs(self.dtype)
        module = self._module(case, a)
        B, H = case.shape.B, case.shape.H
        lstm = case.cell.has_cell_state
        outputs = case.output_keys()
        training = mode == "training"
        x = torch.from_numpy(a["x"]).requires_grad_(training)
        states = [torch.from_numpy(a[s].reshape(1, B, H)).requires_grad_(training) for s in case.state_names()]
        hx = tuple(states) if lstm else states[0]

        def named_outputs(y, state):
            state = state if lstm else (state,)
            arrays = [y] + [s.reshape(B, H) for s in state]
            return {k: t.detach().to(torch.float32 if self.autocast else t.dtype).numpy()
                    for k, t in zip(outputs, arrays)}

        def forward():
            if self.autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(x, hx)
            return module(x, hx)

        if not training:

            def call():
                with torch.inference_mode():
                    return forward()

            return Run(call, lambda result: named_outputs(*result))

        leaves = [x] + states + list(module.parameters())
        dy = torch.from_numpy(a["dy"])
        grad_keys = case.grad_keys()

        def call():
            y, state = forward()
            return y, state, torch.autograd.grad(y, leaves, grad_outputs=dy.to(y.dtype))

        def extract(result):
            y, state, grads = result
            named = named_outputs(y, state)
            for key, g in zip(grad_keys, grads):
                named[key] = g.numpy().reshape(B, H) if key in ("dh0", "dc0") else g.numpy()
            return named

        return Run(call, extract)


class OnnxRuntimePeer:
    """One ONNX ``RNN``/``LSTM``/``GRU`` node holding the case's weights (``_onnx.build_model``,
    fixed T and B), run by an ONNX Runtime ``InferenceSession`` on the CPU with
    ``intra_op_num_threads`` = the benchmark's thread count and one inter-op thread. Inference
    only; the states go in and ``Y``, ``Y_h`` (, ``Y_c``) come out as in ``torch.nn``."""

    name = "onnxruntime"
    modes = ("inference",)
    dtype = np.dtype(np.float32)

    @staticmethod
    def unavailable() -> Optional[str]:
        return _onnx.missing()

    def prepare(self, case: Case, mode: str) -> Run:
        if mode not in self.modes:
            raise ValueError(f"mode: {self.name} measures only {self.modes}, got {mode!r}")
        a = case.inputs(self.dtype)
        cell = case.cell.name
        model = _onnx.build_model(cell, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"],
                                  T=case.shape.T, B=case.shape.B)
        session = _onnx.session(model, _env.current_threads())
        feeds = {"X": a["x"], **_onnx.state_feeds(cell, a["h0"], a.get("c0"))}
        names = [o.name for o in session.get_outputs()]
        outputs = case.output_keys()

        def call():
            return session.run(names, feeds)

        def extract(result):
            y, *states = result
            return dict(zip(outputs, [y[:, 0]] + [state[0] for state in states]))

        return Run(call, extract)


PEERS = {
    "rnnfast": FunctionalPeer("rnnfast", "rnnfast.functional", np.float32),
    "torch": TorchPeer(np.float32),
    "onnxruntime": OnnxRuntimePeer(),
}

# The peers of --precision bfloat16 (ONNX Runtime has no bfloat16 recurrent kernels on the CPU).
BF16_PEERS = {
    "rnnfast": FunctionalPeer("rnnfast", "rnnfast.functional", np.float32, precision="bfloat16"),
    "torch": TorchPeer(np.float32, autocast=True),
}


def peers_for(precision: str) -> dict:
    """The peers measured at ``precision`` ("float32" or "bfloat16"), by name."""
    if precision == "float32":
        return PEERS
    if precision == "bfloat16":
        return BF16_PEERS
    raise ValueError(f"precision: expected 'float32' or 'bfloat16', got {precision!r}")


# The plain-NumPy oracle of the tests, in its own dtype (float64); slow, core shapes only.
REFERENCE = FunctionalPeer("reference", "rnnfast.reference", np.float64)


def compute_oracle(case: Case) -> dict:
    """PyTorch in float64 on the same inputs: outputs and gradients of a training step."""
    run = TorchPeer(np.float64).prepare(case, "training")
    return run.extract(run.call())


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max(1, max |ref|), in float64."""
    got = np.asarray(got, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    return float(np.max(np.abs(got - ref))) / scale if ref.size else 0.0


def checked_run(peer, case: Case, mode: str, checked: Callable, oracle: dict) -> tuple:
    """``(run, seconds of its first call, checked(peer, case, mode, results, oracle))``: a peer's
    run prepared, called once and its results checked before anything is timed."""
    run = peer.prepare(case, mode)
    start = time.perf_counter()
    result = run.call()
    first = time.perf_counter() - start
    return run, first, checked(peer, case, mode, run.extract(result), oracle)


def rms_error(got: np.ndarray, ref: np.ndarray) -> float:
    d = np.asarray(got, dtype=np.float64) - ref
    return float(np.sqrt(np.mean(d * d))) if d.size else 0.0


def _named_arrays(peer, case: Case, mode: str, result: dict, oracle: dict, failures: list) -> dict:
    """The results to check, by key, reshaped like the oracle's; a miss goes to ``failures``."""
    keys = case.output_keys() + (case.grad_keys() if mode == "training" else ())
    arrays = {}
    for key in keys:
        if key not in result:
            failures.append(f"{key}: missing")
            continue
        got, ref = np.asarray(result[key]), oracle[key]
        if got.shape == (1,) + ref.shape and key in ("h_n", "c_n"):
            got = got[0]
        if got.shape != ref.shape:
            failures.append(f"{key}: shape {got.shape}, expected {ref.shape}")
        elif got.dtype != peer.dtype:
            failures.append(f"{key}: dtype {got.dtype}, expected {peer.dtype}")
        elif not np.all(np.isfinite(got)):
            failures.append(f"{key}: not finite")
        else:
            arrays[key] = got
    return arrays


def _disagrees(peer, case: Case, mode: str, failures: list, what: str) -> AssertionError:
    return AssertionError(f"{peer.name} {case.cell.name} {case.shape.label} {mode} disagrees "
                          f"with {what}: " + "; ".join(failures))


def check_bf16(peer, case: Case, mode: str, result: dict, oracle: dict, yardstick: dict) -> dict:
    """Issue 16's rule for a bfloat16 peer: against the float64 oracle, each output's and
    gradient's RMS error at most twice that of ``yardstick`` (PyTorch under autocast bfloat16,
    a training step on the same case). Returns the largest ratio of the outputs and, for
    training, of the gradients (PyTorch's own row: 1 by definition)."""
    failures = []
    worst = {"outputs": 0.0, "grads": 0.0}
    for key, got in _named_arrays(peer, case, mode, result, oracle, failures).items():
        theirs = rms_error(yardstick[key], oracle[key])
        ratio = rms_error(got, oracle[key]) / theirs if theirs > 0 else 0.0
        kind = "grads" if key.startswith("d") else "outputs"
        worst[kind] = max(worst[kind], ratio)
        if ratio > 2.0:
            failures.append(f"{key}: RMS error {ratio:.3g}x PyTorch autocast's (at most 2)")
    if failures:
        raise _disagrees(peer, case, mode, failures, "PyTorch float64 within 2x autocast's error")
    return worst if mode == "training" else {"outputs": worst["outputs"]}


def check(peer, case: Case, mode: str, result: dict, oracle: dict) -> dict:
    """Compare a peer's results with the oracle; AssertionError listing every miss.

    Returns the largest relative error of the outputs and, for training, of the gradients.
    """
    out_tol, grad_tol = TOLERANCES[peer.dtype]
    failures = []
    worst = {"outputs": 0.0, "grads": 0.0}
    for key, got in _named_arrays(peer, case, mode, result, oracle, failures).items():
        kind = "grads" if key.startswith("d") else "outputs"
        tol = grad_tol if kind == "grads" else out_tol
        err = relative_error(got, oracle[key])
        worst[kind] = max(worst[kind], err)
        if err > tol:
            failures.append(f"{key}: relative error {err:.3g} > {tol:g}")
    if failures:
        raise _disagrees(peer, case, mode, failures, "PyTorch float64")
    return worst if mode == "training" else {"outputs": worst["outputs"]}
