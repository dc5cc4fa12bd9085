"""Recurrent kernels vs PyTorch and ONNX Runtime: pytest bench/test_bench_recurrent.py --benchmark-only

One benchmark per cell x shape x mode x peer, float32, grouped so that rnnfast, torch and
onnxruntime (inference only; skipped without onnx and onnxruntime) of one problem sit side by
side; the NumPy reference (float64) joins on the core shapes. Every peer's result is checked
against PyTorch in float64 before it is timed.
"""
import functools
import math

import pytest

from _peers import PEERS, REFERENCE, check, checked_run, compute_oracle, make_case
from _shapes import CELLS, CORE_SHAPES, MODES, SHAPES, flops

# Seconds of timed rounds a fast peer gets (at least MIN_ROUNDS, at most MAX_ROUNDS).
TARGET_SECONDS = 2.0
MIN_ROUNDS = 3
MAX_ROUNDS = 50
REFERENCE_ROUNDS = 2

# A test that fails before timing (a missing kernel, a wrong result) reports that failure;
# pytest-benchmark's extra "fixture was not used" warning would only repeat it as an error.
pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")


def _params():
    params = []
    for cell in CELLS:
        for shape in SHAPES:
            for mode in MODES:
                peers = [p for p in PEERS if mode in PEERS[p].modes]
                peers += ["reference"] if shape in CORE_SHAPES else []
                for peer in peers:
                    params.append(pytest.param(cell, shape, mode, peer, id=f"{cell}-{shape}-{mode}-{peer}"))
    return params


@functools.lru_cache(maxsize=1)
def _case_and_oracle(cell_name, shape_name):
    case = make_case(CELLS[cell_name], SHAPES[shape_name])
    return case, compute_oracle(case)


@pytest.mark.parametrize("cell_name, shape_name, mode, peer_name", _params())
def test_recurrent(benchmark, bench_threads, cell_name, shape_name, mode, peer_name):
    peer = REFERENCE if peer_name == "reference" else PEERS[peer_name]
    unavailable = getattr(peer, "unavailable", None)
    if unavailable and unavailable():
        pytest.skip(unavailable())
    case, oracle = _case_and_oracle(cell_name, shape_name)
    run, first_call, errors = checked_run(peer, case, mode, check, oracle)

    if peer is REFERENCE:
        rounds, warmup = REFERENCE_ROUNDS, 0
    else:
        rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / max(first_call, 1e-6))))
        warmup = 1

    count = flops(case.cell, case.shape, mode)
    benchmark.group = f"{cell_name} {case.shape.label} {mode}"
    benchmark.extra_info.update(
        cell=cell_name,
        shape=shape_name,
        T=case.shape.T,
        B=case.shape.B,
        I=case.shape.I,
        H=case.shape.H,
        mode=mode,
        peer=peer_name,
        dtype=str(peer.dtype),
        threads=bench_threads,
        flop=count,
        max_rel_error=errors,
    )
    benchmark.pedantic(run.call, rounds=rounds, warmup_rounds=warmup, iterations=1)
    if benchmark.stats:
        benchmark.extra_info["gflops"] = count / benchmark.stats.stats.median / 1e9
