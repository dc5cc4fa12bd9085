"""The package's float32 GEMM against MKL (``torch.matmul``) on every GEMM the LSTM kernels issue.

For each shape (T, B, I, H) of bench/_shapes.py (medium, char, large, xl), with rows = T * B and
GH = 4 * H: the input projection x W_ih^T (rows x GH x I), dx = dgates W_ih (rows x I x GH), the
merged weight gradient dgates^T [x | h] (GH x (I + H) x rows, A transposed), and the per-step
products on pre-packed weights, forward h W_hh^T (B x GH x H) and backward dgates W_hh
(B x H x GH). The two libraries alternate call by call in one process; each figure is the minimum
over the rounds of the calling thread's CPU time (``time.thread_time``), which other processes on
a busy machine do not inflate at 1 thread (at 2 threads use ``--wall`` on an idle machine).
The step rows run ``repeats`` products inside one ``_C.gemm_packed`` call (B packed once per
call, amortised); torch's rows are one ``torch.matmul(..., out=)`` per product.

    python bench/gemm_vs_mkl.py --threads 1 --rounds 10
    python bench/gemm_vs_mkl.py --threads 2 --rounds 10 --wall --only large xl
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


def products(T, B, I, H):
    rows, gh = T * B, 4 * H
    return [("input projection", "nt", rows, gh, I), ("dx", "nn", rows, I, gh),
            ("dW", "tn", gh, I + H, rows), ("step forward", "packed_t", B, gh, H),
            ("step backward", "packed", B, H, gh)]


def operands(kind, M, N, K, rng):
    a = rng.standard_normal((K, M) if kind == "tn" else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if kind in ("nt", "packed_t") else (K, N), dtype=np.float32)
    a_op = a.T if kind == "tn" else a
    b_op = b.T if kind in ("nt", "packed_t") else b
    return a, b, a_op, b_op


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=list(SHAPES))
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = parser.parse_args()
    rnnfast.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.thread_time
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, min of {args.rounds} rounds, "
          f"{'wall' if args.wall else 'CPU'} time; ratio = MKL time / rnnfast time")
    for name in args.only:
        for what, kind, M, N, K in products(*SHAPES[name]):
            a, b, a_op, b_op = operands(kind, M, N, K, rng)
            reps = max(1, int(2e8 / (2.0 * M * N * K)))
            if kind.startswith("packed"):
                reps = max(reps, 50)  # the packing of B, once per call, stays under ~2%
            ta, tb = torch.from_numpy(a_op), torch.from_numpy(b_op)
            tc = torch.empty((M, N), dtype=torch.float32)
            if kind.startswith("packed"):
                trans = kind == "packed_t"
                ours = lambda: _C.gemm_packed(a, b, trans_b=trans, repeats=reps)  # noqa: E731
            else:
                ta_, tb_ = kind == "tn", kind == "nt"
                ours = lambda: [_C.gemm(a, b, trans_a=ta_, trans_b=tb_)  # noqa: E731
                                for _ in range(reps)]

            def mkl():
                for _ in range(reps):
                    torch.matmul(ta, tb, out=tc)

            got = _C.gemm_packed(a, b, trans_b=kind == "packed_t") if kind.startswith("packed") \
                else _C.gemm(a, b, trans_a=kind == "tn", trans_b=kind == "nt")
            want = a_op.astype(np.float64) @ b_op.astype(np.float64)
            scale = np.abs(a_op).astype(np.float64) @ np.abs(b_op).astype(np.float64)
            assert np.all(np.abs(got - want) <= (K + 4) * np.finfo(np.float32).eps * scale), what
            best = {"ours": float("inf"), "mkl": float("inf")}
            mkl()
            for _ in range(args.rounds):
                for key, fn in (("ours", ours), ("mkl", mkl)):
                    t0 = clock()
                    fn()
                    best[key] = min(best[key], (clock() - t0) / reps)
            print(f"{name:6s} {what:16s} {M:5d} x {N:5d} x {K:5d}"
                  f"  rnnfast {best['ours'] * 1e3:8.3f} ms  MKL {best['mkl'] * 1e3:8.3f} ms  ratio {best['mkl'] / best['ours']:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
