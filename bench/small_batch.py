"""Small batches (B = 1..8) in one process: rnnfast's small-batch loops, the general loops they
replace (``_C._set_small_batch_enabled(False)``) and torch.nn (oneDNN), alternated round by round.

    python bench/small_batch.py --threads 2
    python bench/small_batch.py --cells lstm --batches 1 --rounds 200
    python bench/small_batch.py --threads 2 --split --no-torch --cells lstm --batches 1

For each cell and batch (T, I, H from the options; the issue's "small" shape by default) it
checks that both rnnfast paths give the same values bit for bit and match torch.nn in float32
tolerance, then times inference (forward) and training (forward + backward, y's gradient all
ones) of each variant: every round times ``--inner`` calls of each variant in turn, and the
table gives the minimum per call over ``--rounds`` rounds (on a shared machine the minimum is
the figure that moves least). Prints a Markdown table. ``--split`` adds the small-batch forward
with its steps shared by two threads (``_C._set_small_batch_split(True)``; needs --threads 2 or
more, and is checked bit for bit against the others too).
"""
import argparse
import time

import numpy as np

import _env

_env.use_inplace_build()

import rnnfast  # noqa: E402
from rnnfast import _C  # noqa: E402
from rnnfast import functional as F  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def make(cell, T, B, I, H, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(H)
    a = {"x": rng.standard_normal((T, B, I)).astype(np.float32)}
    for name, shape in (("w_ih", (G * H, I)), ("w_hh", (G * H, H)), ("b_ih", (G * H,)),
                        ("b_hh", (G * H,))):
        a[name] = rng.uniform(-k, k, shape).astype(np.float32)
    return a


def rnnfast_calls(cell, a):
    forward, backward = getattr(F, cell + "_forward"), getattr(F, cell + "_backward")
    args = (a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])
    dy = np.ones(a["x"].shape[:2] + (a["w_hh"].shape[1],), np.float32)

    def inference():
        return forward(*args)[0]

    def training():
        out = forward(*args, training=True)
        return out[0], backward(out[-1], dy)
    return inference, training


def torch_calls(cell, a):
    import torch
    T, B, I = a["x"].shape
    H = a["w_hh"].shape[1]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(module, "weight_" + name[2:] + "_l0" if name[0] == "w" else
                    "bias_" + name[2:] + "_l0").copy_(torch.from_numpy(a[name]))
    x = torch.from_numpy(a["x"])

    def inference():
        with torch.no_grad():
            return module(x)[0].numpy()

    def training():
        xg = x.clone().requires_grad_(True)
        y = module(xg)[0]
        y.backward(torch.ones_like(y))
        return y.detach().numpy(), xg.grad.numpy()
    return inference, training


def timed(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def configure(setting):
    """(small loops enabled, split steps enabled) of a variant; None: not an rnnfast variant."""
    if setting is not None:
        _C._set_small_batch_enabled(setting[0])
        _C._set_small_batch_split(setting[1])


def run_case(cell, T, B, I, H, rounds, inner, with_torch, split=False):
    a = make(cell, T, B, I, H)
    small = rnnfast_calls(cell, a)
    variants = {"small loops": ((True, False), small), "general loops": ((False, False), small)}
    if split:
        variants["split steps"] = ((True, True), small)
    results = {}
    for name, (setting, calls) in variants.items():
        configure(setting)
        y, grads = calls[1]()
        results[name] = (calls[0](), y, grads)
    configure((True, False))
    want = results["small loops"]
    for name, got in results.items():
        same = all(np.array_equal(got[i], want[i]) for i in (0, 1)) and all(
            np.array_equal(got[2][k], want[2][k]) for k in want[2])
        if not same:
            raise AssertionError(f"{cell} B={B}: the {name} and the small loops differ")
    if with_torch:
        tc = torch_calls(cell, a)
        ty = tc[0]()
        err = np.abs(ty - want[0]).max() / max(1.0, np.abs(ty).max())
        if err > 1e-4:
            raise AssertionError(f"{cell} B={B}: rnnfast vs torch.nn relative error {err:.3g}")
        variants["torch.nn"] = (None, tc)
    best = {(v, m): float("inf") for v in variants for m in (0, 1)}
    for _ in range(rounds):
        for mode in (0, 1):
            for name, (setting, calls) in variants.items():
                configure(setting)
                best[name, mode] = min(best[name, mode], timed(calls[mode], inner))
    configure((True, False))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=list(GATES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--input", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--inner", type=int, default=10)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--split", action="store_true",
                   help="also time the forward's steps shared by two threads")
    args = p.parse_args(argv)
    threads = _env.threads_from_env(args.threads)
    with_torch = not args.no_torch and _env.torch_available()
    _env.set_threads(threads)
    print(f"threads {threads}, T={args.steps} I={args.input} H={args.hidden}, float32, "
          f"min per call over {args.rounds} rounds of {args.inner} calls; load average "
          f"{_env.load_average()}")
    names = ["small loops", "general loops"] + (["split steps"] if args.split else []) + \
        (["torch.nn"] if with_torch else [])
    print("| cell | B | mode | " + " | ".join(n + " us" for n in names) +
          " | general / small |" + (" small / split |" if args.split else "") +
          (" torch / small |" if with_torch else ""))
    print("|---|---:|---|" + "---:|" * (len(names) + 1 + args.split + with_torch))
    for cell in args.cells:
        for B in args.batches:
            best = run_case(cell, args.steps, B, args.input, args.hidden, args.rounds,
                            args.inner, with_torch, args.split)
            for mode, label in ((0, "inference"), (1, "training")):
                us = [best[n, mode] * 1e6 for n in names]
                row = [cell, str(B), label] + [f"{u:.1f}" for u in us] + [f"{us[1] / us[0]:.2f}"]
                if args.split:
                    row.append(f"{us[0] / us[2]:.2f}")
                if with_torch:
                    row.append(f"{us[-1] / us[0]:.2f}")
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
