"""The ONNX Runtime peer's graph: one ONNX RNN/LSTM/GRU node from PyTorch-layout weights gives
PyTorch's results. Not a benchmark: ``pytest bench/test_onnx_peer.py`` (skipped without onnx and
onnxruntime).

Tiny shapes of each cell, checked against PyTorch in float64 (the benchmarks' oracle) with
DESIGN.md's float32 tolerance; then the same check with each part of the mapping undone (gate
order, the GRU's reset placement) must fail, so the check can tell a wrong mapping.
"""
import numpy as np
import pytest

import _onnx
from _peers import PEERS, TOLERANCES, Case, check, compute_oracle, make_case, relative_error
from _shapes import CELLS, Shape

pytestmark = pytest.mark.skipif(_onnx.missing() is not None, reason=str(_onnx.missing()))

TINY = (Shape("tiny", 3, 2, 5, 4), Shape("one_step", 1, 1, 3, 2), Shape("odd", 7, 3, 1, 5))
OUTPUT_TOL = TOLERANCES[np.dtype(np.float32)][0]


def scaled_case(cell_name: str, shape: Shape) -> Case:
    """A seeded case with weights and biases scaled up to U(-1, 1), so that a wrong gate order
    or a misplaced bias moves the outputs by far more than the tolerance."""
    case = make_case(CELLS[cell_name], shape)
    k = np.sqrt(shape.H)
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        case.arrays[name] = (case.arrays[name] * k).astype(np.float32)
    return case


def run_node(case: Case, **kwargs) -> dict:
    a = case.inputs(np.float32)
    cell = case.cell.name
    model = _onnx.build_model(cell, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], **kwargs)
    session = _onnx.session(model, 1)
    y, *states = session.run(None, {"X": a["x"], **_onnx.state_feeds(cell, a["h0"], a.get("c0"))})
    assert y.shape == (case.shape.T, 1, case.shape.B, case.shape.H)
    return dict(zip(case.output_keys(), [y[:, 0]] + [s[0] for s in states]))


def worst_error(case: Case, got: dict) -> float:
    oracle = compute_oracle(case)
    return max(relative_error(got[k], oracle[k]) for k in case.output_keys())


@pytest.mark.parametrize("shape", TINY, ids=lambda s: s.name)
@pytest.mark.parametrize("cell_name", list(CELLS))
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_dims", "symbolic_dims"])
def test_node_matches_torch(cell_name, shape, fixed):
    case = scaled_case(cell_name, shape)
    dims = {"T": shape.T, "B": shape.B} if fixed else {}
    got = run_node(case, **dims)
    assert all(v.dtype == np.float32 for v in got.values())
    assert worst_error(case, got) <= OUTPUT_TOL


def test_relu_rnn_matches_the_reference():
    from rnnfast import reference

    case = scaled_case("rnn", TINY[0])
    a = case.inputs(np.float32)
    model = _onnx.build_model("rnn", a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], nonlinearity="relu")
    y, h_n = _onnx.session(model, 1).run(None, {"X": a["x"], **_onnx.state_feeds("rnn", a["h0"])})
    a64 = case.inputs(np.float64)
    ref_y, ref_h, _ = reference.rnn_forward(a64["x"], a64["w_ih"], a64["w_hh"], a64["b_ih"],
                                            a64["b_hh"], a64["h0"], nonlinearity="relu")
    assert np.any(ref_y == 0), "the case should exercise relu's clipping"
    assert relative_error(y[:, 0], ref_y) <= OUTPUT_TOL
    assert relative_error(h_n[0], ref_h) <= OUTPUT_TOL


@pytest.mark.parametrize("cell_name", ["lstm", "gru"])
def test_pytorch_gate_order_would_be_caught(monkeypatch, cell_name):
    case = scaled_case(cell_name, TINY[0])
    monkeypatch.setitem(_onnx.GATE_ORDER, cell_name, tuple(range(CELLS[cell_name].gates)))
    assert worst_error(case, run_node(case)) > 100 * OUTPUT_TOL


def test_reset_before_would_be_caught(monkeypatch):
    case = scaled_case("gru", TINY[0])
    monkeypatch.setattr(_onnx, "GRU_LINEAR_BEFORE_RESET", 0)
    assert worst_error(case, run_node(case)) > 100 * OUTPUT_TOL


def test_reorder_gates_moves_whole_blocks():
    H = 3
    a = np.repeat(np.arange(4, dtype=np.float32), H)[:, None] * np.ones((1, 2), np.float32)
    lstm = _onnx.reorder_gates(a, "lstm")
    assert lstm[::H, 0].tolist() == [0, 3, 1, 2]  # i, o, f, c
    gru = _onnx.reorder_gates(a[:3 * H], "gru")
    assert gru[::H, 0].tolist() == [1, 0, 2]  # z, r, h
    with pytest.raises(ValueError, match="multiple of 4 gates"):
        _onnx.reorder_gates(a[:5], "lstm")


def test_bad_arguments_are_named():
    case = make_case(CELLS["lstm"], TINY[0])
    a = case.inputs(np.float64)
    with pytest.raises(TypeError, match="w_ih: expected float32"):
        _onnx.build_model("lstm", a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])
    a = case.inputs(np.float32)
    with pytest.raises(ValueError, match="cell"):
        _onnx.build_model("peephole", a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])
    with pytest.raises(ValueError, match="nonlinearity"):
        _onnx.build_model("rnn", a["w_ih"][:4], a["w_hh"][:4], a["b_ih"][:4], a["b_hh"][:4],
                          nonlinearity="gelu")


@pytest.mark.parametrize("cell_name", list(CELLS))
def test_the_peer_passes_the_benchmark_check(cell_name):
    """The peer as compare.py runs it: fixed dims, the session's thread count, its extract()."""
    peer = PEERS["onnxruntime"]
    case = make_case(CELLS[cell_name], TINY[0])
    run = peer.prepare(case, "inference")
    errors = check(peer, case, "inference", run.extract(run.call()), compute_oracle(case))
    assert errors["outputs"] <= OUTPUT_TOL
    with pytest.raises(ValueError, match="inference"):
        peer.prepare(case, "training")
