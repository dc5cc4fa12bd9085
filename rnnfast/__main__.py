"""``python -m rnnfast``: a short demo of the kernels.

For each cell (tanh RNN, LSTM, GRU) on a representative shape it checks the C++ kernels against
the NumPy reference (forward and all gradients), then times inference and a training step
(forward + backward) of both, and prints GFLOP/s and the speed-up over the reference.
``--config`` prints only the build and runtime configuration (``rnnfast.show_config()``).
"""
import argparse
import sys
import time

import numpy as np

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from rnnfast import show_config
from rnnfast._config import MAX_THREADS

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _inputs(rng, op, T, B, I, H, dtype):
    G = GATES[op]
    args = {
        "x": rng.standard_normal((T, B, I)),
        "w_ih": rng.standard_normal((G * H, I)) / np.sqrt(I),
        "w_hh": rng.standard_normal((G * H, H)) / np.sqrt(H),
        "b_ih": rng.standard_normal(G * H) * 0.1,
        "b_hh": rng.standard_normal(G * H) * 0.1,
    }
    return {k: v.astype(dtype) for k, v in args.items()}


def _step(module, op, args, grads):
    out = getattr(module, op + "_forward")(**args, training=True)
    return out, getattr(module, op + "_backward")(out[-1], **grads)


def _grads(rng, op, T, B, H, dtype):
    g = {"dy": rng.standard_normal((T, B, H)).astype(dtype)}
    if op == "lstm":
        g["dc_n"] = rng.standard_normal((B, H)).astype(dtype)
    return g


def _max_error(op, args, grads):
    """Largest relative error of the float32 kernels against the float64 reference."""
    args64 = {k: v.astype(np.float64) for k, v in args.items()}
    grads64 = {k: v.astype(np.float64) for k, v in grads.items()}
    (out, got), (ref_out, want) = _step(F, op, args, grads), _step(R, op, args64, grads64)
    errs = [np.abs(a - b).max() / max(1.0, np.abs(b).max())
            for a, b in zip(out[:-1], ref_out[:-1])]
    errs += [np.abs(got[k] - want[k]).max() / max(1.0, np.abs(want[k]).max())
             for k in want if want[k] is not None]
    return max(errs)


def _time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def demo(T, B, I, H, repeats):
    rng = np.random.default_rng(0)
    show_config()
    print(f"\nshape T={T} B={B} I={I} H={H}, float32; times are medians of {repeats} runs\n")
    header = (f"{'cell':5} {'max err':>9} {'infer ms':>9} {'GFLOP/s':>8} {'train ms':>9} "
              f"{'GFLOP/s':>8} {'ref train ms':>12} {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    ok = True
    for op in ("rnn", "lstm", "gru"):
        args = _inputs(rng, op, T, B, I, H, np.float32)
        grads = _grads(rng, op, T, B, H, np.float32)
        err = _max_error(op, _inputs(rng, op, 7, 3, 5, 9, np.float32), _grads(rng, op, 7, 3, 9, np.float32))
        ok &= err < 1e-3
        flops = 2.0 * T * B * (I + H) * GATES[op] * H
        forward = getattr(F, op + "_forward")
        t_inf = _time(lambda: forward(**args), repeats)
        t_train = _time(lambda: _step(F, op, args, grads), repeats)
        args64 = {k: v.astype(np.float64) for k, v in args.items()}
        grads64 = {k: v.astype(np.float64) for k, v in grads.items()}
        t_ref = _time(lambda: _step(R, op, args64, grads64), max(1, repeats // 5))
        print(f"{op:5} {err:9.1e} {t_inf * 1e3:9.2f} {flops / t_inf / 1e9:8.1f} {t_train * 1e3:9.2f} "
              f"{3 * flops / t_train / 1e9:8.1f} {t_ref * 1e3:12.1f} {t_ref / t_train:7.1f}x")
    print("\nmax err: float32 kernels vs the float64 reference, outputs and all gradients "
          "(contract: 1e-3).")
    print("all results within the contract" if ok else "SOME RESULTS OUTSIDE THE CONTRACT")
    return 0 if ok else 1


def _int_in(low, high=None):
    """An argparse type: an int in low..high (no upper bound if None); anything else is a usage
    error (a message and exit status 2, no traceback)."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if n < low or (high is not None and n > high):
            bounds = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {n}")
        return n
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnfast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="store_true", help="print the configuration and exit")
    parser.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=None,
                        help="number of threads (1..%d)" % MAX_THREADS)
    parser.add_argument("--shape", type=_int_in(1), nargs=4, default=[100, 32, 128, 128],
                        metavar=("T", "B", "I", "H"), help="sequence shape (default: 100 32 128 128)")
    parser.add_argument("--repeats", type=_int_in(1), default=10, help="timed runs per measurement")
    args = parser.parse_args(argv)
    if args.threads is not None:
        rnnfast.set_num_threads(args.threads)
    if args.config:
        show_config()
        return 0
    return demo(*args.shape, repeats=args.repeats)


if __name__ == "__main__":
    sys.exit(main())
