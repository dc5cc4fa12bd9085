"""Thread safety and determinism of every op: eight Python threads calling the kernels at once
(sharing ctxs, while another thread changes the thread count) get exactly the serial results;
separate processes get bitwise identical results for the same inputs, for 1, 2 and 3 threads."""
import hashlib
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F
from recurrent_cases import CELLS, make_inputs, upstream

POOLS = {
    "max_pool1d": dict(pool_size=3, stride=2, padding="same"),
    "global_max_pool1d": {},
    "global_avg_pool1d": {},
}


def make_jobs(rng):
    """(name, fn) pairs; fn() runs a forward and its backward and returns every result. The
    shapes are large enough for the kernels to use the pool."""
    jobs = []
    for i, (op, kw, cell) in enumerate(CELLS):
        dtype = np.float32 if i % 2 == 0 else np.float64
        args, lens = make_inputs(rng, op, 12, 9, 24, 48, dtype, lengths=True)
        grads = upstream(rng, op, (12, 9, 48), 9, 48, dtype)

        def run(op=op, kw=kw, args=args, lens=lens, grads=grads):
            out = getattr(F, op + "_forward")(**args, **kw, lengths=lens, training=True)
            got = getattr(F, op + "_backward")(out[-1], **grads)
            return list(out[:-1]) + [got[k] for k in sorted(got) if got[k] is not None]

        jobs.append((cell, run))
    for channels_last in (True, False):
        x = rng.standard_normal((4, 300, 16) if channels_last else (4, 16, 300)).astype(np.float32)
        w = rng.standard_normal((24, 8, 3)).astype(np.float32)
        b = rng.standard_normal(24).astype(np.float32)
        kw = dict(padding="causal", dilation=2, groups=2, channels_last=channels_last)
        dy = rng.standard_normal(F.conv1d_forward(x, w, b, **kw)[0].shape).astype(np.float32)

        def run_conv(x=x, w=w, b=b, kw=kw, dy=dy):
            y, ctx = F.conv1d_forward(x, w, b, training=True, **kw)
            g = F.conv1d_backward(ctx, dy)
            return [y, g["x"], g["w"], g["b"]]

        jobs.append(("conv-cl" if channels_last else "conv-cf", run_conv))
    x = rng.standard_normal((8, 200, 16))
    for name, kw in POOLS.items():
        forward, backward = getattr(F, name + "_forward"), getattr(F, name + "_backward")
        dy = rng.standard_normal(forward(x, **kw)[0].shape)

        def run_pool(forward=forward, backward=backward, kw=kw, dy=dy):
            y, ctx = forward(x, training=True, **kw)
            return [y, backward(ctx, dy)["x"]]

        jobs.append((name, run_pool))
    return jobs


def test_eight_threads_get_the_serial_results(rng, threads):
    rnnfast.set_num_threads(2)
    jobs = make_jobs(rng)
    want = {name: run() for name, run in jobs}
    # A shared ctx, used for backward by every thread at once.
    args, lens = make_inputs(rng, "lstm", 10, 6, 8, 16, np.float32, lengths=True)
    grads = upstream(rng, "lstm", (10, 6, 16), 6, 16, np.float32)
    shared = F.lstm_forward(**args, lengths=lens, training=True)[-1]
    shared_want = F.lstm_backward(shared, **grads)

    errors, done = [], threading.Event()
    barrier = threading.Barrier(9)

    def work(i):
        try:
            order = jobs[i:] + jobs[:i]  # every thread starts on a different op
            barrier.wait()
            for _ in range(6):
                for name, run in order:
                    for a, b in zip(run(), want[name]):
                        if not np.array_equal(a, b):
                            raise AssertionError(f"thread {i}: {name} differs from its serial result")
                got = F.lstm_backward(shared, **grads)
                for k, v in shared_want.items():
                    if v is not None and not np.array_equal(got[k], v):
                        raise AssertionError(f"thread {i}: shared ctx gradient {k} differs")
        except Exception as e:  # reported by the main thread
            errors.append(e)

    def toggle():
        barrier.wait()
        n = 0
        while not done.is_set():
            rnnfast.set_num_threads(1 + n % 3)
            n += 1
            done.wait(0.002)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    toggler = threading.Thread(target=toggle)
    for t in workers + [toggler]:
        t.start()
    for t in workers:
        t.join(timeout=300)
    done.set()
    toggler.join(timeout=60)
    assert not any(t.is_alive() for t in workers + [toggler])
    assert errors == []


DIGEST_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    sys.path[:0] = [{package_root!r}, {tests!r}]  # the rnnfast this test imported
    import numpy as np
    import rnnfast
    from test_reliability_threads import make_jobs
    out = []
    for n in (1, 2, 3):
        rnnfast.set_num_threads(n)
        h = hashlib.sha256()
        for name, run in make_jobs(np.random.default_rng(7)):
            for a in run():
                h.update(name.encode())
                h.update(np.ascontiguousarray(a).tobytes())
        out.append(h.hexdigest())
    print(" ".join(out))
""")


def test_bitwise_identical_across_processes_and_thread_counts():
    """Same inputs: the same bits in separate processes (no state, no uninitialised memory, no
    address dependence) and for 1, 2 and 3 threads."""
    script = DIGEST_SCRIPT.format(package_root=str(Path(rnnfast.__file__).resolve().parents[1]),
                                  tests=str(Path(__file__).resolve().parent))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(out.stdout.split())
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 1, "results depend on the thread count"
    # And the digest is that of this process.
    h = hashlib.sha256()
    saved = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(2)
        for name, run in make_jobs(np.random.default_rng(7)):
            for a in run():
                h.update(name.encode())
                h.update(np.ascontiguousarray(a).tobytes())
    finally:
        rnnfast.set_num_threads(saved)
    assert h.hexdigest() == runs[0][0]


def gil_cases(rng):
    """Calls of a few milliseconds at least, on contiguous inputs (no NumPy copy, which could
    release the GIL itself)."""
    T, B, I, H = 48, 16, 64, 96
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = (rng.standard_normal((4 * H, I)) * 0.1).astype(np.float32)
    w_hh = (rng.standard_normal((4 * H, H)) * 0.1).astype(np.float32)
    y, _, _, ctx = F.lstm_forward(x, w_ih, w_hh, training=True)
    cx = rng.standard_normal((16, 1000, 32)).astype(np.float32)
    cw = (rng.standard_normal((32, 32, 5)) * 0.1).astype(np.float32)
    cy, cctx = F.conv1d_forward(cx, cw, training=True)
    py_, pctx = F.max_pool1d_forward(cx, pool_size=3, stride=1, training=True)
    a = rng.standard_normal((384, 384)).astype(np.float32)
    return {
        "lstm_forward": lambda: F.lstm_forward(x, w_ih, w_hh),
        "lstm_backward": lambda: F.lstm_backward(ctx, y),
        "conv1d_forward": lambda: F.conv1d_forward(cx, cw),
        "conv1d_backward": lambda: F.conv1d_backward(cctx, cy),
        "max_pool1d_forward": lambda: F.max_pool1d_forward(cx, pool_size=3, stride=1),
        "max_pool1d_backward": lambda: F.max_pool1d_backward(pctx, py_),
        "gemm": lambda: _C.gemm(a, a),
    }


def ran_during(call):
    """Whether this thread ran Python code while call() ran on another thread.

    With a switch interval far longer than the call, the interpreter never takes the GIL from a
    thread by force: this thread gets it only when the caller gives it up. A kernel that holds
    the GIL gives it up only after it has returned; one that releases it lets this thread run
    while it computes. Independent of the machine's load."""
    started, finished, returned = threading.Event(), threading.Event(), []

    def work():
        started.set()
        call()
        returned.append(time.perf_counter())
        finished.set()

    ticks = []
    saved = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        while not finished.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0002)  # gives the GIL back, so the caller can retake it at once
        worker.join()
    finally:
        sys.setswitchinterval(saved)
    return bool(ticks) and ticks[0] < returned[0]


def test_the_gil_probe_tells_held_from_released():
    assert any(ran_during(lambda: time.sleep(0.05)) for _ in range(5))  # releases the GIL
    assert not any(ran_during(lambda: sum(i * i for i in range(300_000)))  # holds it
                   for _ in range(3))


def test_kernels_release_the_gil(rng, threads):
    """Every kernel lets other Python threads run while it computes. The speed-up this gives on
    two cores is measured in bench/test_bench_gil.py."""
    rnnfast.set_num_threads(1)
    # A kernel holding the GIL can never pass; one that releases it may still fail an attempt
    # when the OS does not schedule this thread before the call ends (a busy machine).
    held = [name for name, call in gil_cases(rng).items()
            if not any(ran_during(call) for _ in range(5))]
    assert held == []
