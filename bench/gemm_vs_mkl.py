"""The package's float32 GEMM against MKL (``torch.matmul``) on the GEMMs the kernels issue.

LSTM: for each shape (T, B, I, H) (medium, char, large, xl), with rows = T * B and GH = 4 * H:
the input projection x W_ih^T (rows x GH x I), dx = dgates W_ih (rows x I x GH), the merged
weight gradient dgates^T [x | h] (GH x (I + H) x rows, A transposed), and the per-step products
on pre-packed weights, forward h W_hh^T (B x GH x H) and backward dgates W_hh (B x H x GH).
Conv1D (``--only conv``): the products of one work item of bench/test_bench_conv.py's WaveNet
layer (B=32, L=1000, C=64, kernel 3) and IMDB layer (L=100, C 100 -> 64, kernel 5), channels-last
and channels-first, forward (patches x weights) and weight gradient (accumulated, beta = 1).

The two libraries alternate call by call in one process; each figure is the minimum over the
rounds. Both write C in place (``_C.gemm(..., out=)``, ``torch.matmul(..., out=)`` / ``addmm_``):
until session 10 ours went through ``c=``, which allocates the result and copies C into it on
every call (a fresh 6-32 MiB array for the large products: 5-16% of their time). At 1 thread the clock is the calling thread's CPU time (``time.thread_time``), which other
processes on a busy machine do not inflate; at more threads it is wall-clock time, and before
each timed call the script sleeps ``--settle`` seconds (default 0.05 at 2+ threads) so that the
other library's idle threads have stopped spinning: after a torch op, PyTorch's OpenMP threads
spin for milliseconds on the cores our pool needs (and ours spin for 60 us after our calls), so
back-to-back alternation measured whichever library ran second on a contended machine.
The step rows run ``repeats`` products inside one ``_C.gemm_packed`` call (B packed once per
call, amortised); torch's rows are one ``torch.matmul(..., out=)`` per product.

Each product is checked, before it is timed, against the float64 product computed by PyTorch,
not by NumPy's matmul: NumPy's OpenBLAS leaves a thread spinning without yielding for 2^28 TSC
ticks (about 100 ms here) after each threaded call, which took the second core from our pool's
worker during the first timed calls (bench/RESULTS.md, session 14); PyTorch's threads, which
spin too, are the ones the settle already waits for.

Our products run on the package's own thread pool (the default: this script does not import
``rnnfast.torch``, which would move them to PyTorch's OpenMP threads); ``--pools`` times them on
both, alternating with MKL, and adds the OpenMP threads' time and ratio to each row.

    python bench/gemm_vs_mkl.py --threads 1 --rounds 10
    python bench/gemm_vs_mkl.py --threads 2 --rounds 10 --only large xl conv
    python bench/gemm_vs_mkl.py --threads 2 --rounds 10 --pools
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _env  # noqa: E402

_env.use_inplace_build()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import _C  # noqa: E402

SHAPES = {"medium": (100, 32, 128, 128), "char": (100, 64, 64, 256),
          "large": (50, 64, 512, 512), "xl": (25, 64, 1024, 1024)}


def lstm_products(T, B, I, H):
    rows, gh = T * B, 4 * H
    return [("input projection", "nt", rows, gh, I), ("dx", "nn", rows, I, gh),
            ("dW", "tn", gh, I + H, rows), ("step forward", "packed_t", B, gh, H),
            ("step backward", "packed", B, H, gh)]


def conv_products():
    # (what, kind, M, N, K, beta): one time block of one sequence (csrc/kernels/conv1d.cc: about
    # 64K patch elements per block; WaveNet: patch 192 -> 334 steps, IMDB: patch 500 -> 96).
    out = []
    for name, steps, c_out, patch in (("wavenet", 334, 64, 192), ("imdb", 96, 64, 500)):
        out += [(f"{name} fwd cl", "nn", steps, c_out, patch, 0.0),
                (f"{name} fwd cf", "nn", c_out, steps, patch, 0.0),
                (f"{name} dW cl", "tn", patch, c_out, steps, 1.0),
                (f"{name} dW cf", "nt", c_out, patch, steps, 1.0)]
    return out


def cases(only):
    for name in only:
        if name == "conv":
            for what, kind, M, N, K, beta in conv_products():
                yield "conv", what, kind, M, N, K, beta
        else:
            for what, kind, M, N, K in lstm_products(*SHAPES[name]):
                yield name, what, kind, M, N, K, 0.0


def operands(kind, M, N, K, rng):
    a = rng.standard_normal((K, M) if kind == "tn" else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if kind in ("nt", "packed_t") else (K, N), dtype=np.float32)
    a_op = a.T if kind == "tn" else a
    b_op = b.T if kind in ("nt", "packed_t") else b
    return a, b, a_op, b_op


def reference(a_op, b_op):
    """op(A) op(B) and |op(A)| |op(B)| in float64 (PyTorch's, see the top of this file)."""
    a64, b64 = torch.from_numpy(a_op).double(), torch.from_numpy(b_op).double()
    return (a64 @ b64).numpy(), (a64.abs() @ b64.abs()).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=list(SHAPES) + ["conv"],
                        help="LSTM shapes (medium char large xl) and/or conv")
    parser.add_argument("--wall", action="store_true",
                        help="wall-clock time at 1 thread too (the default above 1 thread)")
    parser.add_argument("--pools", action="store_true",
                        help="also time our products on PyTorch's OpenMP threads")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds to sleep before each timed call (default 0 at 1 thread, "
                             "0.05 above)")
    args = parser.parse_args()
    rnnfast.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    wall = args.wall or args.threads > 1
    clock = time.perf_counter if wall else time.thread_time
    settle = args.settle if args.settle is not None else (0.05 if args.threads > 1 else 0.0)
    rng = np.random.default_rng(0)
    if args.pools and not _C.loaded_openmp_runtimes():
        parser.error("--pools: no OpenMP runtime is loaded (PyTorch without libgomp?)")
    rnnfast.set_thread_pool("rnnfast")
    print(f"threads {args.threads}, min of {args.rounds} rounds, {'wall' if wall else 'CPU'} "
          f"time, settle {settle} s; ratio = MKL time / rnnfast time; rnnfast on its own pool"
          + (" and on PyTorch's OpenMP threads (omp)" if args.pools else ""))
    for name, what, kind, M, N, K, beta in cases(args.only):
        a, b, a_op, b_op = operands(kind, M, N, K, rng)
        reps = max(1, int(2e8 / (2.0 * M * N * K)))
        if kind.startswith("packed"):
            reps = max(reps, 50)  # the packing of B, once per call, stays under ~2%
        ta, tb = torch.from_numpy(a_op), torch.from_numpy(b_op)
        c0 = rng.standard_normal((M, N), dtype=np.float32)
        ours_c, tc = c0.copy(), torch.from_numpy(c0.copy())
        if kind.startswith("packed"):
            trans = kind == "packed_t"
            ours = lambda: _C.gemm_packed(a, b, trans_b=trans, repeats=reps)  # noqa: E731
        else:
            ta_, tb_ = kind == "tn", kind == "nt"

            def ours():  # in place, as torch's out= and addmm_ (c= would copy C each call)
                for _ in range(reps):
                    _C.gemm(a, b, trans_a=ta_, trans_b=tb_, beta=beta, out=ours_c)

        def mkl():
            for _ in range(reps):
                if beta:
                    tc.addmm_(ta, tb)
                else:
                    torch.matmul(ta, tb, out=tc)

        got = _C.gemm_packed(a, b, trans_b=kind == "packed_t") if kind.startswith("packed") \
            else _C.gemm(a, b, trans_a=kind == "tn", trans_b=kind == "nt")
        want, scale = reference(a_op, b_op)
        assert np.all(np.abs(got - want) <= (K + 4) * np.finfo(np.float32).eps * scale), what
        # (key, our products' pool, function)
        timed = [("ours", "rnnfast", ours), ("mkl", "rnnfast", mkl)]
        if args.pools:
            timed.append(("omp", "openmp", ours))
        best = {key: float("inf") for key, _, _ in timed}
        for _, pool, fn in timed:
            rnnfast.set_thread_pool(pool)
            fn()
        for r in range(args.rounds):
            shift = r % len(timed)  # every variant runs first, second, ... in turn
            for key, pool, fn in timed[shift:] + timed[:shift]:
                rnnfast.set_thread_pool(pool)
                if settle:
                    time.sleep(settle)
                t0 = clock()
                fn()
                best[key] = min(best[key], (clock() - t0) / reps)
        omp = (f"  omp {best['omp'] * 1e3:8.3f} ms  ratio {best['mkl'] / best['omp']:5.2f}"
               if args.pools else "")
        print(f"{name:6s} {what:16s} {M:5d} x {N:5d} x {K:5d}"
              f"  rnnfast {best['ours'] * 1e3:8.3f} ms  MKL {best['mkl'] * 1e3:8.3f} ms"
              f"  ratio {best['mkl'] / best['ours']:5.2f}{omp}", flush=True)


if __name__ == "__main__":
    main()
