"""The thread pool: thread-count validation, the static split, nesting, errors, concurrent
callers, fork and interpreter exit."""
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import rnnfast
from rnnfast import _C


def test_default_is_the_usable_cores():
    env = {k: v for k, v in os.environ.items() if k != "RNNFAST_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", "import rnnfast; print(rnnfast.get_num_threads())"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert int(out.stdout) == len(os.sched_getaffinity(0))


def test_environment_variable_sets_the_count():
    env = dict(os.environ, RNNFAST_NUM_THREADS="3")
    out = subprocess.run(
        [sys.executable, "-c", "import rnnfast; print(rnnfast.get_num_threads())"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "3"


def test_set_get_roundtrip(threads):
    for n in (1, 3, 2, 7):
        rnnfast.set_num_threads(n)
        assert rnnfast.get_num_threads() == n
        assert _C.get_num_threads() == n


@pytest.mark.parametrize("bad", [0, -1, -100, 1025, 10**6, 2**63, 2**64, -(2**64), 10**30,
                                 np.int64(0), np.uint64(2**64 - 1)])
def test_set_num_threads_rejects_counts_out_of_range(threads, bad):
    """1..1024: more threads than a default CPU set describes only oversubscribe the machine."""
    before = rnnfast.get_num_threads()
    for setter in (rnnfast.set_num_threads, _C.set_num_threads):
        with pytest.raises(ValueError) as info:
            setter(bad)
        assert str(info.value) == f"n: expected a number of threads in 1..1024, got {int(bad)}"
        assert rnnfast.get_num_threads() == before


@pytest.mark.parametrize("bad", ["2", 2.0, None, True, False, [2], np.bool_(True), np.float32(2)])
def test_set_num_threads_rejects_non_int(threads, bad):
    before = rnnfast.get_num_threads()
    for setter in (rnnfast.set_num_threads, _C.set_num_threads):
        with pytest.raises(TypeError) as info:
            setter(bad)
        assert str(info.value) == f"n: expected an int, got {type(bad)}"
        assert rnnfast.get_num_threads() == before


def test_set_num_threads_takes_the_bounds_and_numpy_integers(threads):
    for n in (1024, np.int32(3), np.uint8(1), 1):
        rnnfast.set_num_threads(n)
        assert rnnfast.get_num_threads() == int(n)


@pytest.mark.parametrize("t", [1, 2, 3, 5])
@pytest.mark.parametrize("n,grain", [(1, 1), (2, 1), (10, 1), (10, 4), (7, 100), (1000, 3), (5, 0)])
def test_static_split(threads, t, n, grain):
    """Chunk c of nc covers [c*n/nc, (c+1)*n/nc), nc = min(threads, ceil(n / grain))."""
    rnnfast.set_num_threads(t)
    g = max(grain, 1)
    nc = min(t, -(-n // g))
    want = [(c * n // nc, (c + 1) * n // nc, 0) for c in range(nc)]
    assert _C.parallel_for_chunks(n, grain) == want


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("per_thread", [2, 4, 8])
@pytest.mark.parametrize("n,grain", [(1, 1), (3, 1), (10, 1), (10, 4), (1000, 3), (100000, 1)])
def test_static_split_with_chunks_per_thread(threads, t, per_thread, n, grain):
    """With per_thread, nc = min(threads * per_thread, ceil(n / grain)) (1 at one thread); the
    split is as static."""
    rnnfast.set_num_threads(t)
    nc = min(t * per_thread, -(-n // grain)) if t > 1 else 1
    want = [(c * n // nc, (c + 1) * n // nc, 0) for c in range(nc)]
    for _ in range(20):  # which thread claims a chunk varies from call to call, the chunks do not
        assert _C.parallel_for_chunks(n, grain, per_thread=per_thread) == want


def test_chunks_per_thread_is_checked():
    for bad in (0, -1, 9):
        with pytest.raises(ValueError, match=f"per_thread: expected 1..8, got {bad}"):
            _C.parallel_for_chunks(10, 1, per_thread=bad)


@pytest.mark.parametrize("t", [2, 3])
@pytest.mark.parametrize("raise_at", [0, 5, 9])
def test_exception_reaches_the_caller_with_chunks_per_thread(threads, t, raise_at):
    rnnfast.set_num_threads(t)
    with pytest.raises(RuntimeError, match=f"raised in the chunk holding {raise_at}"):
        _C.parallel_for_chunks(10, 1, raise_at=raise_at, per_thread=4)
    assert len(_C.parallel_for_chunks(10, 1, per_thread=4)) == min(10, 4 * t)


def test_empty_range_makes_no_call(threads):
    rnnfast.set_num_threads(2)
    assert _C.parallel_for_chunks(0) == []
    assert _C.parallel_for_chunks(-5) == []


def test_nested_call_runs_serially(threads):
    rnnfast.set_num_threads(2)
    chunks = _C.parallel_for_chunks(10, 1, inner=8)
    assert [c[:2] for c in chunks] == [(0, 5), (5, 10)]
    assert all(c[2] == 1 for c in chunks)


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("raise_at", [0, 9])
def test_exception_reaches_the_caller(threads, t, raise_at):
    rnnfast.set_num_threads(t)
    with pytest.raises(RuntimeError, match=f"raised in the chunk holding {raise_at}"):
        _C.parallel_for_chunks(10, 1, raise_at=raise_at)
    # The pool still works afterwards.
    assert len(_C.parallel_for_chunks(10, 1)) == t


def test_resizing_between_calls(threads):
    a = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    want = _C.gemm(a, a, trans_b=True)
    for t in (2, 4, 1, 3, 2):
        rnnfast.set_num_threads(t)
        assert len(_C.parallel_for_chunks(100)) == t
        np.testing.assert_array_equal(_C.gemm(a, a, trans_b=True), want)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs per-thread affinity")
def test_woken_workers_keep_their_affinity(threads):
    """A worker woken onto its caller's CPU moves itself off it by narrowing its affinity for a
    moment (threads.cc, leave_cpu): afterwards every thread of the process may run where it could
    before, and the products keep their values."""
    a = np.random.default_rng(2).standard_normal((96, 500)).astype(np.float32)
    b = np.random.default_rng(3).standard_normal((500, 64)).astype(np.float32)
    want = _C.gemm(a, b)
    before = {tid: os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")}
    pool = rnnfast.get_thread_pool()
    rnnfast.set_thread_pool("rnnfast")
    rnnfast.set_num_threads(2)
    try:
        for _ in range(40):
            time.sleep(0.002)  # the workers stop spinning after 60 us and sleep: calls wake them
            for _ in range(3):
                np.testing.assert_array_equal(_C.gemm(a, b), want)
    finally:
        rnnfast.set_thread_pool(pool)
    allowed = os.sched_getaffinity(0)
    for tid in os.listdir("/proc/self/task"):
        try:
            got = os.sched_getaffinity(int(tid))
        except OSError:  # a thread that ended meanwhile
            continue
        assert got == before.get(tid, allowed), tid


def test_concurrent_callers_match_serial(rng, threads):
    """Eight Python threads at once (the GIL is released in the kernels): one of them gets the
    pool, the others run serially; every result equals its serial value bitwise."""
    rnnfast.set_num_threads(2)
    jobs = []
    for i in range(8):
        dtype = np.float32 if i % 2 else np.float64
        a = rng.standard_normal((40 + 7 * i, 96)).astype(dtype)
        b = rng.standard_normal((130, 96)).astype(dtype)
        jobs.append((a, b))
    want = [(_C.gemm(a, b, trans_b=True), _C.gemm_packed(a[:16], b, trans_b=True)) for a, b in jobs]
    errors = []
    barrier = threading.Barrier(len(jobs))

    def work(i):
        try:
            a, b = jobs[i]
            barrier.wait()
            for _ in range(25):
                np.testing.assert_array_equal(_C.gemm(a, b, trans_b=True), want[i][0])
                np.testing.assert_array_equal(_C.gemm_packed(a[:16], b, trans_b=True), want[i][1])
        except Exception as e:  # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_a_fresh_pool(threads):
    rnnfast.set_num_threads(2)
    a = np.random.default_rng(2).standard_normal((200, 150))
    want = _C.gemm(a, a, trans_b=True)  # the parent's pool has a worker now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ok = np.array_equal(_C.gemm(a, a, trans_b=True), want)
            ok = ok and len(_C.parallel_for_chunks(10)) == 2
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    np.testing.assert_array_equal(_C.gemm(a, a, trans_b=True), want)


EXIT_SCRIPT = """
import threading, time, numpy as np, rnnfast
from rnnfast import _C
rnnfast.set_num_threads(2)
a = np.ones((1200, 1200), np.float32)
_C.gemm(a[:300, :300], a[:300, :300])  # the pool has its worker now
if {in_kernel}:
    started = threading.Event()
    def long_call():
        started.set()
        _C.gemm(a, a)
    threading.Thread(target=long_call, daemon=True).start()
    started.wait()
    time.sleep(0.02)
print("ok")
"""


# Every function of rnnfast._C, called in a loop by a daemon thread of its own while the
# interpreter exits. Each call is valid; the module's functions must all be here.
EVERY_ENTRY_SCRIPT = """
import sys, threading, numpy as np, rnnfast
from rnnfast import _C
rnnfast.set_num_threads(2)
rng = np.random.default_rng(0)
f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
x, w_ih, w_hh = f(64, 8, 32), f(128, 32), f(128, 32)
opts = dict(nonlinearity="tanh", reset_after=True, lengths=None, reverse=False,
            batch_first=False, training=True)
rctx = _C.recurrent_forward("lstm", x, w_ih, w_hh, None, None, None, None, **opts)[-1]
zh = (rng.random((64, 8, 32)) < 0.3).astype(np.float32)
lnctx = _C.layer_norm_recurrent_forward("gru", x, w_ih[:96], w_hh[:96], None, None, None, None,
                                       None, None, None, None, eps=1e-5, lengths=None,
                                       reverse=False, batch_first=False, training=True,
                                       zoneout=0.3, zoneout_h=zh, zoneout_c=None)[-1]
cx, cw = f(8, 300, 16), f(16, 16, 5)
conv = dict(stride=1, padding="same", dilation=1, groups=1, channels_last=True, training=True)
cctx = _C.conv1d_forward(cx, cw, None, **conv)[1]
pool = dict(pool_size=3, stride=1, padding="valid", channels_last=True, training=True)
pctx = _C.pool1d_forward("max_pool1d", cx, **pool)[1]
a = f(300, 300)
a3 = f(4, 64, 64)
aw, am, av = a.copy(), np.zeros_like(a), np.zeros_like(a)
ids, eg = rng.integers(0, 50, 300), np.zeros((50, 300), np.float32)
ek = np.zeros(300 * 300 // 8, np.uint8)  # the dropout mask's bits of a (300, 300) lookup
isa = _C.active_isa()
bf16_isa = _C.active_bf16_isa()
def refused(call, error):
    try:
        call()
    except error:
        pass
calls = {
    "get_num_threads": lambda: _C.get_num_threads(),
    "set_num_threads": lambda: _C.set_num_threads(2),
    "_set_projection_window_bytes": lambda: _C._set_projection_window_bytes(0),
    "_set_small_batch_enabled": lambda: _C._set_small_batch_enabled(True),
    "_set_small_batch_split": lambda: _C._set_small_batch_split(False),
    "active_isa": lambda: _C.active_isa(),
    "supported_isas": lambda: _C.supported_isas(),
    "set_isa": lambda: _C.set_isa(isa),
    "build_info": lambda: _C.build_info(),
    "gemm": lambda: _C.gemm(a, a, trans_b=True),
    "gemm_packed": lambda: _C.gemm_packed(a, a, trans_b=True),
    "parallel_for_chunks": lambda: _C.parallel_for_chunks(1000, inner=2),
    "recurrent_forward": lambda: _C.recurrent_forward("lstm", x, w_ih, w_hh, None, None, None,
                                                      None, **opts),
    "recurrent_forward_positional": lambda: _C.recurrent_forward_positional(
        "lstm", x, w_ih, w_hh, None, None, None, None, "tanh", True, None, False, False, True,
        "float32", None, None, 0.0, None, None, None),
    "recurrent_backward": lambda: _C.recurrent_backward("lstm", rctx, x[..., :32], None, None),
    "layer_norm_recurrent_forward": lambda: _C.layer_norm_recurrent_forward(
        "lstm", x, w_ih, w_hh, None, None, None, None, None, None, None, None, eps=1e-5,
        lengths=None, reverse=False, batch_first=False, training=True, zoneout=0.3,
        zoneout_h=zh, zoneout_c=zh),
    "layer_norm_recurrent_backward": lambda: _C.layer_norm_recurrent_backward(
        "gru", lnctx, x[..., :32], None, None),
    "conv1d_forward": lambda: _C.conv1d_forward(cx, cw, None, **conv),
    "conv1d_backward": lambda: _C.conv1d_backward(cctx, cx),
    "conv1d_max_pool1d_forward": lambda: _C.conv1d_max_pool1d_forward(
        cx, cw, None, **conv, activation="relu", pool_size=4, pool_stride=None,
        pool_padding="valid"),
    "pool1d_forward": lambda: _C.pool1d_forward("max_pool1d", cx, **pool),
    "pool1d_backward": lambda: _C.pool1d_backward("max_pool1d", pctx, cx[:, :298]),
    "ctx methods": lambda: (repr(rctx), rctx.op, repr(cctx), repr(pctx), pctx.op,
                            pctx.input_shape, repr(lnctx), lnctx.op),
    "gemm_batched": lambda: _C.gemm_batched(a3, a3, trans_b=True),
    "gated_activation_forward": lambda: _C.gated_activation_forward(a),
    "gated_activation_backward": lambda: _C.gated_activation_backward(a, a[:, :150]),
    "get_thread_pool": lambda: _C.get_thread_pool(),
    "loaded_openmp_runtimes": lambda: _C.loaded_openmp_runtimes(),
    "use_own_pool": lambda: _C.use_own_pool(),
    "use_openmp": lambda: refused(lambda: _C.use_openmp("no-such-runtime"), RuntimeError),
    "active_bf16_isa": lambda: _C.active_bf16_isa(),
    "supported_bf16_isas": lambda: _C.supported_bf16_isas(),
    "set_bf16_isa": lambda: _C.set_bf16_isa(bf16_isa),
    "round_bf16": lambda: _C.round_bf16(a),
    "adam_update": lambda: _C.adam_update(aw, a, am, av, None, rule="keras", beta1=0.9,
                                          one_minus_beta1=0.1, beta2=0.999,
                                          one_minus_beta2=0.001, lr=1e-3, eps=1e-7),
    "adam_update_many": lambda: _C.adam_update_many(
        [aw], [a], [am], [av], None, [(0.9, 0.1, 0.999, 0.001, 1e-3, 1e-7, 1.0, 1.0, 1.0)],
        rule="keras"),
    "sum_squares": lambda: _C.sum_squares(a),
    "embedding_backward": lambda: _C.embedding_backward(ids, a, eg, p=0.5, keep=ek),
    "embedding_forward": lambda: _C.embedding_forward(ids, eg, 0.5, 1, keep=ek),
    "dropout": lambda: _C.dropout(a, 0.5, 1),
    "_array_memory_enter": lambda: _C._array_memory_exit(_C._array_memory_enter()),
    "_array_memory_exit": lambda: _C._array_memory_exit(None),
    "_array_memory_stats": lambda: _C._array_memory_stats(),
    "recurrent_masks": lambda: _C.recurrent_masks((100, 32, 64), (100, 32, 64), (4, 32, 64),
                                                  zoneout=0.2, recurrent_dropout=0.3,
                                                  seed=1, dtype="float32"),
}
functions = {n for n in dir(_C) if callable(getattr(_C, n)) and not isinstance(getattr(_C, n), type)
             and not n.startswith("__")}
missing = functions - set(calls)
if missing:
    sys.exit(f"entry points without an exit case: {sorted(missing)}")
started = {name: threading.Event() for name in calls}
def loop(name, call):
    while True:
        call()
        started[name].set()
for name, call in calls.items():
    threading.Thread(target=loop, args=(name, call), daemon=True).start()
for name, event in started.items():
    if not event.wait(60):
        sys.exit(f"{name} never returned")
print("ok")
"""


@pytest.mark.parametrize("run", range(3))
def test_interpreter_exit_is_clean_with_every_entry_point_busy(run):
    """Daemon threads calling every function of rnnfast._C (and the ctx methods) in loops while
    the interpreter exits: each is caught wherever it is (arriving at a binding, converting
    arguments, inside a kernel, taking the GIL back) and the exit is clean: no crash, no hang."""
    out = subprocess.run([sys.executable, "-c", EVERY_ENTRY_SCRIPT], capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("in_kernel", [False, True])
def test_interpreter_exit_is_clean(in_kernel):
    """Exit with an idle pool (joined), and while a daemon thread is inside a kernel on the pool
    (the pool is left alone; the thread must not take the GIL back): no hang, no crash."""
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT.format(in_kernel=in_kernel)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
