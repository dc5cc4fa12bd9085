"""Does a parallel call's second thread join in time? The share of a product the calling thread
computes itself, back to back and after idle gaps, on rnnfast's own pool.

    python bench/pool_wake.py                       # 2 threads, 40 rounds per gap
    python bench/pool_wake.py --settles 0 0.001 0.05 --rounds 100 --m 3200 --k 512 --n 128

A parallel call splits its work into one chunk per thread; the calling thread runs chunk 0 and
then every chunk no worker has claimed yet (parallel_for in csrc/include/rnnfast/threads.h).
When a worker wakes late, the caller runs its chunk too, and the call takes the one-thread
time. This script times the calling thread's CPU time (``time.thread_time``) of one GEMM
(``rnnfast._C.gemm``, ``--m`` x ``--k`` times ``--k`` x ``--n``, float32, written in place)
after a gap of ``--settles`` seconds (0: right after the same product), and reports, per gap,
the minimum and median caller CPU time, the median share of the one-thread time that is, and how
many calls the caller computed at least 75% of the one-thread time of (then the worker joined too
late to take its chunk). Products of up to ~32 M multiply-adds per thread are cut into several
parts per thread that the threads claim one at a time (csrc/kernels/gemm.cc, ``refine_grid``), so
a late worker still takes the parts the caller has not reached: the share then falls between
one half and one. The calling
thread's CPU time is what it computed itself, so a busy machine moves this count far less than
it moves the wall clock, and the figure needs no idle machine to be read: "late" calls are the
wake-up cost, whatever their wall time. (The caller's CPU time also holds its wait for the
worker's chunk: at most the pool's spin, 60 us, before it sleeps. On the OpenMP threads the
caller spins at the runtime's barrier for as long as the other thread runs, so this count says
nothing there: the script runs on the own pool only.)

NumPy's OpenBLAS is held to one thread (``OPENBLAS_NUM_THREADS=1`` unless set): this script
makes no BLAS call, but OpenBLAS starts its threads when NumPy is imported, and each spins
without yielding for 2^28 TSC ticks (about 100 ms here) before it sleeps, as after every threaded
call: on 2 cores it took the second one from our worker during the first calls (96 x 500 x 64
back to back: 40 of 40 calls late with it, 1 of 40 without; bench/RESULTS.md, session 14).
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

_env.use_inplace_build()
if __name__ == "__main__":  # before NumPy loads OpenBLAS (see above); not for an importer
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import _C  # noqa: E402


def caller_cpu(a, b, out, settle, rounds):
    """The calling thread's CPU time of one product after each gap (seconds)."""
    times = []
    for _ in range(rounds):
        if settle:
            time.sleep(settle)
        else:
            _C.gemm(a, b, out=out)
        start = time.thread_time()
        _C.gemm(a, b, out=out)
        times.append(time.thread_time() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40, help="timed calls per gap")
    parser.add_argument("--settles", type=float, nargs="+", default=[0, 0.0001, 0.001, 0.01, 0.05],
                        help="idle gaps before a call, seconds (0: back to back)")
    parser.add_argument("--m", type=int, default=3200)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--n", type=int, default=128)
    args = parser.parse_args(argv)
    if args.threads < 2:
        parser.error("--threads: expected at least 2 (a worker to wake)")
    rnnfast.set_thread_pool("rnnfast")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.m, args.k), dtype=np.float32)
    b = rng.standard_normal((args.k, args.n), dtype=np.float32)
    out = np.empty((args.m, args.n), np.float32)
    rnnfast.set_num_threads(1)
    one = min(caller_cpu(a, b, out, 0, 10))
    rnnfast.set_num_threads(args.threads)
    for _ in range(10):
        _C.gemm(a, b, out=out)
    print(f"rnnfast {rnnfast.__version__}, pool {rnnfast.get_thread_pool()}, {args.threads} "
          f"threads; Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}")
    print(f"product {args.m}x{args.k} @ {args.k}x{args.n} float32; one thread: caller CPU "
          f"{one * 1e3:.3f} ms (min of 10)")
    print(f"{'gap s':>8} {'caller min ms':>13} {'caller med ms':>13} {'late calls':>10} "
          f"{'share med':>9}")
    for settle in args.settles:
        times = caller_cpu(a, b, out, settle, args.rounds)
        late = sum(t >= 0.75 * one for t in times)
        median = statistics.median(times)
        print(f"{settle:8.4f} {min(times) * 1e3:13.3f} {median * 1e3:13.3f} "
              f"{late:>5}/{len(times):<4} {median / one:9.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
