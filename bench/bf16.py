"""bfloat16 against float32 and against PyTorch under autocast, in one process.

    python bench/bf16.py
    python bench/bf16.py --cells lstm --shapes large xl --threads 2 --rounds 9

For each thread count, cell, shape and mode (inference: a forward; training: a forward with
training=True and the backward from a given upstream gradient of the output: torch's variants
call ``y.backward(dy)`` with ``dy`` in y's dtype, no loss built on y), five variants run in turn
within every round: rnnfast float32, rnnfast ``precision="bfloat16"`` (on the active bfloat16
path, ``RNNFAST_BF16_ISA`` to choose), PyTorch float32, PyTorch under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (float32 parameters, as autocast users hold
them), and ``rnnfast.torch``'s module under the same autocast (the bridge on the bfloat16
kernels). Alternating the variants round after round and keeping each one's fastest call makes
the ratios robust on a busy machine (load from other processes hits every variant alike).
Prints a Markdown table (times in ms, and the ratios torch-autocast / rnnfast-bf16, rnnfast-f32
/ rnnfast-bf16 and torch-autocast / rnnfast.torch-autocast) and writes it with the raw numbers
to ``bench/out/bf16-<time>.{md,json}``.

In inference, rnnfast bfloat16 passes a ``weights_token`` (``F.new_weights_token()``, once per
shape: the weights stay the same from call to call, as a model serving requests holds them):
the bfloat16 packings of W_ih and W_hh are made at the first call and reused. In training
it passes none (a training step changes the weights: every call packs them). ``--token-ab``
adds the variant without the token in inference (every call packs the weights), for an
in-process A/B of the cache.
The ``rnnfast.torch`` variant runs with ``rnnfast.torch.keep_bf16_packings(True)`` (its opt-in
equivalent of the token: off by default), so that in inference it too packs the weights once.

``--bridge-ab`` adds a sixth variant: ``rnnfast.torch``'s module under autocast given the input
cast to bfloat16 in the call (``x.to(torch.bfloat16)``, timed): the per-call work of the bridge
before it handed a float32 input to the kernels uncast (the cast, and the float32 copy of the
bfloat16 tensor the kernels then got), for an in-process A/B of that change. ``--cpu-time``
times with the process's CPU time instead of the wall clock (meaningful with ``--threads 1`` on
a machine other processes load: a thread waiting for a core costs no CPU time).
"""
import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import _env

_env.use_inplace_build()

import numpy as np  # noqa: E402

from _shapes import SHAPES  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
CELLS = ("lstm", "gru")
DEFAULT_SHAPES = ("medium", "char", "large", "xl")
VARIANTS = ("rnnfast_f32", "rnnfast_bf16", "torch_f32", "torch_autocast", "bridge_autocast")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    p.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(DEFAULT_SHAPES))
    p.add_argument("--modes", nargs="+", choices=("inference", "training"),
                   default=["inference", "training"])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (each runs every variant)")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--bridge-ab", action="store_true",
                   help="also time rnnfast.torch under autocast on an input cast to bfloat16 "
                        "in the call (the bridge's work before it passed float32 x uncast)")
    p.add_argument("--token-ab", action="store_true",
                   help="also time rnnfast bfloat16 inference without a weights_token (the "
                        "weights packed at every call)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the process's CPU time (use with --threads 1 on a busy host)")
    return p.parse_args(argv)


def make_runners(cell, shape, mode, bridge_ab=False, token_ab=False):
    """One zero-argument callable per variant, on the same inputs and weights."""
    import torch

    import rnnfast.functional as F

    T, B, I, H = shape.T, shape.B, shape.I, shape.H
    G = 4 if cell == "lstm" else 3
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w = {"w_ih": rng.uniform(-k, k, (G * H, I)), "w_hh": rng.uniform(-k, k, (G * H, H)),
         "b_ih": rng.uniform(-k, k, G * H), "b_hh": rng.uniform(-k, k, G * H)}
    w = {n: a.astype(np.float32) for n, a in w.items()}
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    forward = getattr(F, cell + "_forward")
    backward = getattr(F, cell + "_backward")
    training = mode == "training"

    # inference: the weights stay the same from call to call (a token keeps their packing)
    token = None if training else F.new_weights_token()

    def ours(precision, weights_token=None):
        def run():
            out = forward(x, **w, training=training, precision=precision,
                          weights_token=weights_token)
            if training:
                backward(out[-1], dy)
        return run

    import rnnfast.torch as rt

    rt.keep_bf16_packings(True)  # as the functional variant's token: the weights do not change
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    with torch.no_grad():
        for name, a in w.items():
            suffix = name.split("_")[1]
            getattr(module, ("weight_" if name[0] == "w" else "bias_") + suffix + "_l0").copy_(
                torch.from_numpy(a))
    bridge = (rt.LSTM if cell == "lstm" else rt.GRU)(I, H)
    bridge.load_state_dict(module.state_dict())
    xt = torch.from_numpy(x)
    # the upstream gradient in the output's dtype (bfloat16 under autocast), made once: the
    # backward starts from y as rnnfast's does, with no loss graph (whose float32 copy of y,
    # product and sum cost torch 1.5 ms of 8 at the medium shape on one thread)
    dy_of = {torch.float32: torch.from_numpy(dy), torch.bfloat16: torch.from_numpy(dy).bfloat16()}

    def theirs(autocast, module=module, cast_input=False):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                if training:
                    xin = xt.requires_grad_()
                    y = module(xin.to(torch.bfloat16) if cast_input else xin)[0]
                else:
                    with torch.no_grad():
                        y = module(xt.to(torch.bfloat16) if cast_input else xt)[0]
            if training:
                y.backward(dy_of[y.dtype])
                module.zero_grad(set_to_none=True)
                xt.grad = None
        return run

    runners = {"rnnfast_f32": ours("float32"), "rnnfast_bf16": ours("bfloat16", token),
               "torch_f32": theirs(False), "torch_autocast": theirs(True),
               "bridge_autocast": theirs(True, bridge)}
    if bridge_ab:
        runners["bridge_autocast_bf16_input"] = theirs(True, bridge, cast_input=True)
    if token_ab:
        runners["rnnfast_bf16_repack"] = ours("bfloat16")
    return runners


def measure(runners, rounds, clock=time.perf_counter):
    """Fastest time (s) of each variant over `rounds` rounds that run every variant in turn."""
    for run in runners.values():  # warm-up: packing, thread pools, oneDNN's kernel caches
        run()
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t = clock()
            run()
            best[name] = min(best[name], clock() - t)
    return best


def main(argv=None):
    args = parse_args(argv)
    import torch

    import rnnfast

    info = _env.machine_info()
    rows = []
    variants = VARIANTS + (("bridge_autocast_bf16_input",) if args.bridge_ab else ()) + (
        ("rnnfast_bf16_repack",) if args.token_ab else ())
    ab = (" rnnfast.torch autocast, input cast in the call |" if args.bridge_ab else "") + (
        " rnnfast bf16 packing every call |" if args.token_ab else "")
    header = ("| threads | cell | shape | mode | rnnfast f32 | rnnfast bf16 | torch f32 | "
              "torch autocast | rnnfast.torch autocast |" + ab + " autocast / bf16 | "
              "f32 / bf16 | autocast / rnnfast.torch |")
    lines = [f"bfloat16 path: {rnnfast.active_bf16_isa()}; CPU: {info.get('cpu_model', '?')}; "
             f"load at start: {_env.load_average()}; best of {args.rounds} alternating rounds"
             + ("; CPU time" if args.cpu_time else ""),
             "", header, "|" + "---|" * (12 + bool(args.bridge_ab) + bool(args.token_ab))]
    print("\n".join(lines), flush=True)
    for threads in args.threads:
        _env.set_threads(threads)
        for cell in args.cells:
            for shape_name in args.shapes:
                for mode in args.modes:
                    shape = SHAPES[shape_name]
                    best = measure(make_runners(cell, shape, mode, args.bridge_ab,
                                                args.token_ab),
                                   args.rounds,
                                   time.process_time if args.cpu_time else time.perf_counter)
                    ms = {k: v * 1e3 for k, v in best.items()}
                    row = {"threads": threads, "cell": cell, "shape": shape.label, "mode": mode,
                           **{k + "_ms": v for k, v in ms.items()},
                           "autocast_over_bf16": best["torch_autocast"] / best["rnnfast_bf16"],
                           "f32_over_bf16": best["rnnfast_f32"] / best["rnnfast_bf16"],
                           "autocast_over_bridge":
                               best["torch_autocast"] / best["bridge_autocast"]}
                    rows.append(row)
                    line = (f"| {threads} | {cell} | {shape.label} | {mode} | "
                            + " | ".join(f"{ms[v]:.2f}" for v in variants)
                            + f" | {row['autocast_over_bf16']:.2f}x | {row['f32_over_bf16']:.2f}x"
                            + f" | {row['autocast_over_bridge']:.2f}x |")
                    lines.append(line)
                    print(line, flush=True)
    lines.append("")
    lines.append(f"load at end: {_env.load_average()}; torch {torch.__version__}")
    print(lines[-1])
    if not args.no_save:
        OUT_DIR.mkdir(exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        (OUT_DIR / f"bf16-{stamp}.md").write_text("\n".join(lines) + "\n")
        (OUT_DIR / f"bf16-{stamp}.json").write_text(json.dumps(
            {"machine": info, "bf16_isa": rnnfast.active_bf16_isa(), "rows": rows}, indent=1,
            default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
