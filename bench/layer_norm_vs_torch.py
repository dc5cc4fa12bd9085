"""The fused LayerNorm LSTM and GRU against the PyTorch loop users write for them, and against
the plain fused LSTM and GRU of the same size.

    python bench/layer_norm_vs_torch.py                       # 2 threads, 20 rounds
    python bench/layer_norm_vs_torch.py --threads 1 --rounds 40 --shapes 100x32x128

Per shape (T x B x I=H, time-major, float32, one layer and direction) and cell, three peers
run inference (forward only) and training (forward keeping what backward needs, then the
backward from random output gradients):
- ``layer_norm``: ``rnnfast.functional.layer_norm_{lstm,gru}_forward/backward``;
- ``plain``: ``rnnfast.functional.{lstm,gru}_forward/backward`` (no layer norms);
- ``torch loop``: bench/_layer_norm_torch.py, an nn.LSTMCell-style loop with torch.nn.LayerNorm
  (PyTorch has no fused LayerNorm LSTM or GRU), under ``torch.no_grad()`` for inference and
  autograd for training.
The outputs of the layer_norm peer and the torch loop are compared first (same weights). The
peers alternate within each round, in one process; the report gives each one's minimum time per
call over the rounds and the ratios torch loop / layer_norm (the targets: at least 3) and
layer_norm / plain (at most 1.3).
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
from rnnfast import functional as F  # noqa: E402
from _layer_norm_torch import TorchLayerNormRNN  # noqa: E402

DEFAULT_SHAPES = ["100x32x128", "50x64x256"]


def parse_shape(text):
    T, B, H = (int(v) for v in text.split("x"))
    return T, B, H


def make_peers(cell, T, B, H, seed=0):
    """{name: (inference call, training call)} of the three peers, on the same weights."""
    rng = np.random.default_rng(seed)
    G = 4 if cell == "lstm" else 3
    f32 = np.float32
    x = rng.standard_normal((T, B, H)).astype(f32)
    dy = rng.standard_normal((T, B, H)).astype(f32)
    bound = 1 / np.sqrt(H)
    w = {k: rng.uniform(-bound, bound, shape).astype(f32) for k, shape in
         [("w_ih", (G * H, H)), ("w_hh", (G * H, H)), ("b_ih", (G * H,)), ("b_hh", (G * H,))]}
    ln = {"ln_ih_weight": (1 + 0.1 * rng.standard_normal(G * H)).astype(f32),
          "ln_hh_weight": (1 + 0.1 * rng.standard_normal(G * H)).astype(f32)}
    if cell == "lstm":
        ln["ln_c_weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(f32)
        ln["ln_c_bias"] = (0.1 * rng.standard_normal(H)).astype(f32)
    ln_fwd = getattr(F, f"layer_norm_{cell}_forward")
    ln_bwd = getattr(F, f"layer_norm_{cell}_backward")
    plain_fwd, plain_bwd = getattr(F, f"{cell}_forward"), getattr(F, f"{cell}_backward")

    def ln_train():
        ln_bwd(ln_fwd(x, **w, **ln, training=True)[-1], dy)

    def plain_train():
        plain_bwd(plain_fwd(x, **w, training=True)[-1], dy)

    loop = TorchLayerNormRNN(cell, H, H)
    names = {"weight_ih_l0": w["w_ih"], "weight_hh_l0": w["w_hh"], "bias_ih_l0": w["b_ih"],
             "bias_hh_l0": w["b_hh"], **{k + "_l0": v for k, v in ln.items()}}
    loop.load(names)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)

    def torch_infer():
        with torch.no_grad():
            loop(xt)

    def torch_train():
        loop.zero_grad(set_to_none=True)
        xg.grad = None
        y, _ = loop(xg)
        y.backward(dyt)

    # the same results first
    with torch.no_grad():
        want = loop(xt)[0].numpy()
    got = ln_fwd(x, **w, **ln)[0]
    err = np.abs(got - want).max()
    if not err < 2e-3:  # float32 over T steps: both are ~4e-4 off float64 at T=100
        raise SystemExit(f"{cell} {T}x{B}x{H}: the peers differ by {err:.3g}")
    return {
        "layer_norm": (lambda: ln_fwd(x, **w, **ln), ln_train),
        "plain": (lambda: plain_fwd(x, **w), plain_train),
        "torch loop": (torch_infer, torch_train),
    }


def best_times(peers, rounds, calls):
    """{(peer, mode): minimum seconds per call over the rounds}, the peers alternating."""
    best = {}
    order = list(peers)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            for mode, fn in zip(("inference", "training"), peers[name]):
                n = calls if name != "torch loop" else max(1, calls // 4)
                fn()  # warm
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                t = (time.perf_counter() - start) / n
                best[name, mode] = min(best.get((name, mode), float("inf")), t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=4, help="calls per peer per round")
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="TxBxH")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    args = parser.parse_args(argv)
    _env.set_threads(args.threads)
    info = _env.machine_info()
    print(f"{info['cpu_model']}, {args.threads} threads, isa {info['rnnfast_isa']}, "
          f"torch {info['torch']}, {info['date_utc']}, load {info['load_average_1min']}")
    print(f"{'cell':5s} {'shape':12s} {'mode':10s} {'layer_norm':>11s} {'plain':>9s} "
          f"{'torch loop':>11s} {'torch/LN':>9s} {'LN/plain':>9s}")
    for shape in args.shapes:
        T, B, H = parse_shape(shape)
        for cell in args.cells:
            best = best_times(make_peers(cell, T, B, H), args.rounds, args.calls)
            for mode in ("inference", "training"):
                ln, plain, loop = (best[p, mode] * 1e3 for p in ("layer_norm", "plain",
                                                                 "torch loop"))
                print(f"{cell:5s} {shape:12s} {mode:10s} {ln:9.2f}ms {plain:7.2f}ms "
                      f"{loop:9.2f}ms {loop / ln:8.1f}x {ln / plain:8.2f}x", flush=True)
    print(f"load average after: {_env.load_average()}")


if __name__ == "__main__":
    main()
