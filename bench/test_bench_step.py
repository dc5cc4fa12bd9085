"""Single-step generation latency: pytest bench/test_bench_step.py --benchmark-only

One benchmark per implementation of one LSTM step (``_step.py``: rnnfast's ``RecurrentStep`` and
``lstm_forward`` with T=1, ``torch.nn.LSTMCell``, ``torch.nn.LSTM`` with T=1, an ONNX Runtime
LSTM node with T=1), B=1, I=64, H=256, float32, the state in from Python and out to Python,
each call's state feeding the next. Each is checked first over chained steps against PyTorch in
float64. A last benchmark times NumPy's matrix-vector product of the weights a step reads: the
floor of any step on the machine. ``extra_info`` holds the median in microseconds per call and
the issue's target for rnnfast (at most 5 us), which is reported, not asserted.
"""
import pytest

import _onnx
from _shapes import STEP_SHAPE, STEP_TARGET_US
from _step import FLOOR_NAME, STEP_PEERS, _floor, check_floor, check_step, step_case

GROUP = f"lstm step B={STEP_SHAPE.B} I={STEP_SHAPE.I} H={STEP_SHAPE.H}"

pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")


@pytest.fixture(scope="module")
def case():
    return step_case()


def _record(benchmark, name, threads, error):
    benchmark.group = GROUP
    benchmark.extra_info.update(implementation=name, threads=threads, B=STEP_SHAPE.B,
                                I=STEP_SHAPE.I, H=STEP_SHAPE.H, dtype="float32",
                                max_rel_error=error, target_us=STEP_TARGET_US)


def _record_median(benchmark):
    if benchmark.stats:
        benchmark.extra_info["us_per_call"] = benchmark.stats.stats.median * 1e6


@pytest.mark.parametrize("name", list(STEP_PEERS))
def test_step(benchmark, bench_threads, case, name):
    peer = STEP_PEERS[name]
    if peer.family == "onnxruntime" and _onnx.missing():
        pytest.skip(_onnx.missing())
    a, oracle = case
    run = peer.make(a)
    error = check_step(peer, run, a, oracle)
    x = run.inputs(a["x"][0])
    state = [run.state(a["h0"], a["c0"])]

    def call():
        state[0] = run.step(x, state[0])[1]

    _record(benchmark, name, bench_threads, error)
    with run.context():
        benchmark(call)
    _record_median(benchmark)


def test_step_floor(benchmark, case):
    a, _ = case
    run = _floor(a)
    error = check_floor(run, a)
    v = run.inputs(a["x"][0])
    _record(benchmark, FLOOR_NAME, "NumPy BLAS default", error)
    benchmark(run.step, v, None)
    _record_median(benchmark)
