"""The kernels on the threads of a loaded OpenMP runtime (PyTorch's GNU libgomp) instead of the
package's own pool: the switch and its settings, the same bits as on the own pool, the static
split with any number of threads the runtime grants, nesting, errors, concurrent callers, fork,
interpreter exit, and the own pool wherever no runtime is loaded."""
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import rnnfast
from rnnfast import _C, _config
from subprocess_env import PACKAGE_PARENT, python_env
from test_reliability_threads import make_jobs


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=python_env(**env),
                          cwd=str(PACKAGE_PARENT), capture_output=True, text=True, timeout=300)


def loaded_torch_runtime():
    """PyTorch imported; the path of the OpenMP runtime it brought (skips without one)."""
    torch = pytest.importorskip("torch")
    runtimes = _C.loaded_openmp_runtimes()
    if not runtimes:
        pytest.skip("this PyTorch does not run on GNU OpenMP")
    home = os.path.join(os.path.dirname(os.path.realpath(torch.__file__)), "")
    own = [r for r in runtimes if os.path.realpath(r).startswith(home)]
    return (own or runtimes)[0]


@pytest.fixture
def pools(threads):
    """Switches between the two pools; restores the pool and the 'chosen' flag afterwards."""
    runtime = loaded_torch_runtime()
    saved_pool, saved_runtime = _C.get_thread_pool()
    saved_chosen = _config._pool_chosen

    def use(name):
        rnnfast.set_thread_pool(name, runtime if name == "openmp" else None)
        assert rnnfast.get_thread_pool() == name

    yield use
    if saved_pool == "openmp":
        _C.use_openmp(saved_runtime)
    else:
        _C.use_own_pool()
    _config._pool_chosen = saved_chosen


def all_results(seed=7):
    out = []
    for name, run in make_jobs(np.random.default_rng(seed)):
        out += [(name, a) for a in run()]
    rng = np.random.default_rng(seed + 1)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(20, 32, 64), (512, 64),
                                                                  (512, 128)]]
    y, h, c, ctx = rnnfast.functional.lstm_forward(*args, training=True)
    grads = rnnfast.functional.lstm_backward(ctx, y)
    out += [("lstm-H128", a) for a in (y, h, c)] + [("lstm-H128", grads[k]) for k in sorted(grads)
                                                    if grads[k] is not None]
    a = rng.standard_normal((301, 257)).astype(np.float32)
    out.append(("gemm", _C.gemm(a, a, trans_b=True)))
    return out


# ---- The switch ----

def test_own_pool_without_pytorch():
    done = run_python("""
        import sys, rnnfast
        from rnnfast import _C
        c = rnnfast.get_config()
        print(c["thread_pool"], c["openmp_runtime"], "torch" in sys.modules)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rnnfast", "None", "False"]


def test_importing_rnnfast_torch_selects_pytorchs_threads():
    runtime = loaded_torch_runtime()
    done = run_python("""
        import io, torch, rnnfast
        before = rnnfast.get_thread_pool()
        import rnnfast.torch
        c = rnnfast.get_config()
        out = io.StringIO()
        rnnfast.show_config(file=out)
        print(before)
        print(c["thread_pool"])
        print(c["openmp_runtime"])
        print([line for line in out.getvalue().splitlines() if line.startswith("thread pool")][0])
    """)
    assert done.returncode == 0, done.stderr
    before, pool, path, line = done.stdout.splitlines()
    assert (before, pool) == ("rnnfast", "openmp")
    assert os.path.realpath(path) == os.path.realpath(runtime)
    assert line == f"thread pool: openmp ({path})"


@pytest.mark.parametrize("how", ["environment", "call"])
def test_a_chosen_pool_stays(how):
    loaded_torch_runtime()
    code = "import rnnfast\n"
    if how == "call":
        code += "rnnfast.set_thread_pool('rnnfast')\n"
    code += "import rnnfast.torch\nprint(rnnfast.get_thread_pool())\n"
    done = run_python(code, **({"RNNFAST_THREAD_POOL": " RNNfast "} if how == "environment"
                               else {}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rnnfast"


def test_environment_auto_is_the_default():
    loaded_torch_runtime()
    done = run_python("import rnnfast.torch, rnnfast; print(rnnfast.get_thread_pool())",
                      RNNFAST_THREAD_POOL="auto")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "openmp"


@pytest.mark.parametrize("value", ["openmp", "own", "1"])
def test_environment_rejects_other_values(value):
    done = run_python("import rnnfast", RNNFAST_THREAD_POOL=value)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"ValueError: RNNFAST_THREAD_POOL: expected 'auto' or 'rnnfast', got {value!r}")


def test_set_thread_pool_rejects_bad_arguments(pools):
    before = rnnfast.get_thread_pool()
    with pytest.raises(TypeError, match="name: expected a str, got int"):
        rnnfast.set_thread_pool(1)
    with pytest.raises(ValueError, match="name: expected 'rnnfast' or 'openmp', got 'omp'"):
        rnnfast.set_thread_pool("omp")
    with pytest.raises(ValueError, match="library: only for the 'openmp' pool"):
        rnnfast.set_thread_pool("rnnfast", "libgomp.so.1")
    with pytest.raises(RuntimeError) as info:
        rnnfast.set_thread_pool("openmp", "/nowhere/libgomp.so.1")
    message = str(info.value)
    assert message.startswith("'/nowhere/libgomp.so.1' is not a loaded OpenMP runtime")
    assert _C.loaded_openmp_runtimes()[0] in message
    assert rnnfast.get_thread_pool() == before


def test_without_an_openmp_runtime_the_own_pool_runs():
    """No OpenMP runtime loaded: 'openmp' is refused with the reason, the kernels run on the own
    pool with the same bits as in this process."""
    done = run_python("""
        import sys, hashlib
        import numpy as np, rnnfast
        from rnnfast import _C
        sys.path.insert(0, %r)
        from test_thread_pool_openmp import all_results
        assert "torch" not in sys.modules
        print(_C.loaded_openmp_runtimes())
        try:
            rnnfast.set_thread_pool("openmp")
        except RuntimeError as e:
            print(e)
        print(rnnfast.get_thread_pool())
        rnnfast.set_num_threads(2)
        h = hashlib.sha256()
        for name, a in all_results():
            h.update(np.ascontiguousarray(a).tobytes())
        print(h.hexdigest())
    """ % os.path.dirname(os.path.abspath(__file__)))
    assert done.returncode == 0, done.stderr
    runtimes, error, pool, digest = done.stdout.splitlines()
    assert runtimes == "[]"
    assert error == ("'libgomp' is not a loaded OpenMP runtime (GNU libgomp with GOMP_parallel); "
                     "loaded: none")
    assert pool == "rnnfast"
    saved = rnnfast.get_num_threads()
    try:
        import hashlib

        rnnfast.set_num_threads(2)
        h = hashlib.sha256()
        for name, a in all_results():
            h.update(np.ascontiguousarray(a).tobytes())
    finally:
        rnnfast.set_num_threads(saved)
    assert digest == h.hexdigest()


# ---- The regions on the OpenMP threads ----

@pytest.mark.parametrize("t", [1, 2, 3, 5])
@pytest.mark.parametrize("n,grain", [(1, 1), (2, 1), (10, 1), (10, 4), (7, 100), (1000, 3)])
def test_static_split(pools, t, n, grain):
    pools("openmp")
    rnnfast.set_num_threads(t)
    nc = min(t, -(-n // grain))
    assert _C.parallel_for_chunks(n, grain) == [(c * n // nc, (c + 1) * n // nc, 0)
                                                for c in range(nc)]


@pytest.mark.parametrize("t", [2, 3])
@pytest.mark.parametrize("per_thread", [2, 8])
@pytest.mark.parametrize("n", [3, 10, 1000])
def test_static_split_with_chunks_per_thread(pools, t, per_thread, n):
    pools("openmp")
    rnnfast.set_num_threads(t)
    nc = min(t * per_thread, n)
    for _ in range(10):
        assert _C.parallel_for_chunks(n, 1, per_thread=per_thread) == [
            (c * n // nc, (c + 1) * n // nc, 0) for c in range(nc)]


def test_nested_call_runs_serially(pools):
    pools("openmp")
    rnnfast.set_num_threads(2)
    assert _C.parallel_for_chunks(10, 1, inner=8) == [(0, 5, 1), (5, 10, 1)]


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("raise_at", [0, 9])
def test_exception_reaches_the_caller(pools, t, raise_at):
    pools("openmp")
    rnnfast.set_num_threads(t)
    with pytest.raises(RuntimeError, match=f"raised in the chunk holding {raise_at}"):
        _C.parallel_for_chunks(10, 1, raise_at=raise_at)
    assert len(_C.parallel_for_chunks(10, 1)) == t


def test_kernels_give_the_own_pools_bits(pools):
    """Every kernel (recurrent forward and backward of every cell, conv, pools, GEMM) gives the
    same bits on the OpenMP threads as on the own pool, at 1, 2, 3 and 4 threads, while the
    thread count changes between calls."""
    pools("rnnfast")
    rnnfast.set_num_threads(2)
    want = all_results()
    for t in (2, 1, 3, 4, 2):
        rnnfast.set_num_threads(t)
        pools("openmp")
        got = all_results()
        assert [name for name, _ in got] == [name for name, _ in want]
        for (name, a), (_, b) in zip(got, want):
            assert np.array_equal(a, b), f"{name} at {t} threads differs from the own pool's"


def test_torch_ops_between_the_calls_change_nothing(pools):
    import torch

    pools("openmp")
    rnnfast.set_num_threads(2)
    torch.set_num_threads(2)
    want = all_results()
    m = torch.randn(300, 300)
    for _ in range(3):
        (m @ m).relu_().sum()  # PyTorch's team is awake and spinning
        got = all_results()
        for (name, a), (_, b) in zip(got, want):
            assert np.array_equal(a, b), name


def test_regions_run_on_pytorchs_threads():
    """After a torch op at 2 threads, running the kernels on 'openmp' adds no thread to the
    process; the own pool adds its worker."""
    loaded_torch_runtime()
    done = run_python("""
        import os, torch, numpy as np, rnnfast, rnnfast.torch
        from rnnfast import _C
        def count():
            return len(os.listdir("/proc/self/task"))
        torch.set_num_threads(2)
        rnnfast.set_num_threads(2)
        m = torch.randn(400, 400)
        (m @ m).sum()
        torch.nn.functional.relu(torch.randn(1 << 20)).sum()
        before = count()
        a = np.ones((300, 300), np.float32)
        for _ in range(3):
            _C.gemm(a, a)
        on_openmp = count()
        rnnfast.set_thread_pool("rnnfast")
        _C.gemm(a, a)
        print(before, on_openmp, count())
    """)
    assert done.returncode == 0, done.stderr
    before, on_openmp, on_own = map(int, done.stdout.split())
    assert on_openmp == before
    assert on_own == before + 1


def test_fewer_threads_than_asked():
    """OMP_THREAD_LIMIT=1: the runtime grants one thread for a region of 3 chunks; that thread
    runs them all, with the same bits."""
    loaded_torch_runtime()
    done = run_python("""
        import sys, hashlib, numpy as np, torch, rnnfast, rnnfast.torch
        from rnnfast import _C
        sys.path.insert(0, %r)
        from test_thread_pool_openmp import all_results
        assert rnnfast.get_thread_pool() == "openmp"
        rnnfast.set_num_threads(3)
        print(_C.parallel_for_chunks(10, 1))
        digests = []
        for pool in ("openmp", "rnnfast"):
            rnnfast.set_thread_pool(pool)
            h = hashlib.sha256()
            for name, a in all_results():
                h.update(np.ascontiguousarray(a).tobytes())
            digests.append(h.hexdigest())
        print(digests[0] == digests[1])
    """ % os.path.dirname(os.path.abspath(__file__)), OMP_THREAD_LIMIT="1")
    assert done.returncode == 0, done.stderr
    chunks, same = done.stdout.splitlines()
    assert chunks == "[(0, 3, 0), (3, 6, 0), (6, 10, 0)]"
    assert same == "True"


def test_concurrent_callers_match_serial(rng, pools):
    """Eight Python threads at once: one owns the OpenMP team, the others run serially; every
    result equals its serial value bitwise."""
    pools("openmp")
    rnnfast.set_num_threads(2)
    jobs = []
    for i in range(8):
        a = rng.standard_normal((40 + 7 * i, 96)).astype(np.float32 if i % 2 else np.float64)
        b = rng.standard_normal((130, 96)).astype(a.dtype)
        jobs.append((a, b, _C.gemm(a, b, trans_b=True)))
    errors = []
    barrier = threading.Barrier(len(jobs))

    def work(a, b, want):
        try:
            barrier.wait()
            for _ in range(25):
                np.testing.assert_array_equal(_C.gemm(a, b, trans_b=True), want)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=job) for job in jobs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_runs_on_a_fresh_own_pool(pools):
    """The OpenMP threads are the parent's: the child runs on its own pool (with the same
    bits), lists no runtime and refuses 'openmp'; the parent stays on 'openmp'."""
    import torch

    pools("openmp")
    rnnfast.set_num_threads(2)
    torch.set_num_threads(2)
    a = np.random.default_rng(2).standard_normal((200, 150))
    want = _C.gemm(a, a, trans_b=True)  # the OpenMP team exists now
    (torch.randn(300, 300) @ torch.randn(300, 300)).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ok = rnnfast.get_thread_pool() == "rnnfast" and _C.loaded_openmp_runtimes() == []
            ok = ok and np.array_equal(_C.gemm(a, a, trans_b=True), want)
            ok = ok and len(_C.parallel_for_chunks(10)) == 2
            try:
                rnnfast.set_thread_pool("openmp")
                ok = False
            except RuntimeError as e:
                ok = ok and "child made by fork()" in str(e)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert rnnfast.get_thread_pool() == "openmp"
    np.testing.assert_array_equal(_C.gemm(a, a, trans_b=True), want)


EXIT_SCRIPT = """
import threading, time, numpy as np, torch, rnnfast, rnnfast.torch
from rnnfast import _C
assert rnnfast.get_thread_pool() == "openmp"
rnnfast.set_num_threads(2)
a = np.ones((1200, 1200), np.float32)
_C.gemm(a[:300, :300], a[:300, :300])
if {in_kernel}:
    started = threading.Event()
    def long_call():
        started.set()
        for _ in range(50):
            _C.gemm(a, a)
    threading.Thread(target=long_call, daemon=True).start()
    started.wait()
    time.sleep(0.02)
print("ok")
"""


@pytest.mark.parametrize("in_kernel", [False, True])
def test_interpreter_exit_is_clean(in_kernel):
    loaded_torch_runtime()
    done = run_python(EXIT_SCRIPT.format(in_kernel=in_kernel))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
