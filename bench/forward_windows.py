"""Inference with and without the input projection in windows of steps, in one process.

    python bench/forward_windows.py
    python bench/forward_windows.py --threads 1 --cpu --rounds 9
    python bench/forward_windows.py --cases lstm:large:bfloat16 gru:large:float32
    python bench/forward_windows.py --cases lstm:large:float32 --with-bytes 2097152

The recurrent forward projects the inputs in windows of steps (by blocks of hidden units, each
thread its own columns, read back from its core's L2) where the driver's cost model says they
pay. ``rnnfast._C._set_projection_window_bytes`` with a budget above every row turns the windows
off (every row projected before the loop, as before them), 0 restores the default: the two
variants and PyTorch (under ``torch.autocast("cpu", dtype=torch.bfloat16)`` for bfloat16 cases)
run in turn within every round, and each keeps its fastest round (two calls timed after a
warm-up), so load from other processes hits them alike. ``--cpu`` times process CPU time instead
of wall-clock (meaningful at one thread). ``--with-bytes N`` gives the "with" variant a
budget of N bytes instead of the default: 2097152 (1 MiB per core at 2 threads) forces the
windows the cost model leaves out (float32 LSTM/GRU at I=H=512 and RNN at I=H=1024 on two
threads, where a thread's share of W_hh^T fills its L2). Prints one line per case: times in ms and the ratios
torch / rnnfast and without / with windows.
"""
import argparse
import time

import numpy as np

import _env

_env.use_inplace_build()

import rnnfast  # noqa: E402
from rnnfast import functional as F  # noqa: E402

SHAPES = {"medium": (100, 32, 128, 128), "char": (100, 64, 64, 256),
          "large": (50, 64, 512, 512), "xl": (25, 64, 1024, 1024)}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
NO_WINDOWS = 1 << 60  # a projection budget above every row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=[
        "lstm:large:float32", "lstm:large:bfloat16", "gru:large:float32", "gru:large:bfloat16",
        "rnn:xl:float32"], help="cell:shape:precision")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cpu", action="store_true", help="process CPU time, not wall-clock")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--with-bytes", type=int, default=0,
                        help="projection budget of the 'with' variant (0: the default)")
    args = parser.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    rnnfast.set_num_threads(args.threads)
    clock = time.process_time if args.cpu else time.perf_counter
    rng = np.random.default_rng(0)
    for case in args.cases:
        cell, shape, precision = case.split(":")
        T, B, I, H = SHAPES[shape]
        G = GATES[cell]
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        w = [(rng.standard_normal(s) * 0.05).astype(np.float32)
             for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        forward = getattr(F, cell + "_forward")

        def ours(budget):
            def call():
                rnnfast._C._set_projection_window_bytes(budget)
                try:
                    return forward(x, *w, precision=precision)[0]
                finally:
                    rnnfast._C._set_projection_window_bytes(0)
            return call

        variants = {"without": ours(NO_WINDOWS), "with": ours(args.with_bytes)}
        np.testing.assert_array_equal(variants["without"](), variants["with"]())
        if torch is not None:
            module = getattr(torch.nn, cell.upper())(I, H)
            xt = torch.from_numpy(x)

            def theirs():
                with torch.no_grad():
                    if precision == "bfloat16":
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            module(xt)
                    else:
                        module(xt)
            variants["torch"] = theirs
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(args.rounds):
            for name, call in variants.items():
                call()
                start = clock()
                call()
                call()
                best[name] = min(best[name], (clock() - start) / 2)
        line = f"{cell} {shape} {precision} threads={args.threads}: " + ", ".join(
            f"{name} {t * 1e3:.2f} ms" for name, t in best.items())
        if "torch" in best:
            line += (f" | torch/without {best['torch'] / best['without']:.3f}"
                     f" torch/with {best['torch'] / best['with']:.3f}")
        line += f" | without/with {best['without'] / best['with']:.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
