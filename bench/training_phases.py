"""Where an LSTM training call's time goes, phase by phase, against the products' own rates.

    python bench/training_phases.py                       # medium (100,32,128,128), 1 and 2 threads
    python bench/training_phases.py --shape char --threads 2 --rounds 30
    python bench/training_phases.py --steps 5 --batch 16 --input 8 --hidden 16 --rounds 1

The call is compare.py's (its case: `_peers.make_case`, h0 and c0 given, dy at every step):
`lstm_forward(training=False)` (inference), `lstm_forward(training=True)` (the forward that keeps
the workspace) and `lstm_backward` (dx, dW, db, dh0, dc0). Before timing, the training call's
outputs and gradients are checked against `rnnfast.reference` (float64). Each round times every
phase per thread count, `--inner` calls of it per sample (the pool's worker's CPU time reaches
the process clock only at the kernel's ticks: one call of a few ms can hide it), the thread
counts alternated; the table gives each phase's minimum wall and process CPU time (every
thread's) per call over the rounds: on a shared machine the minimum is the figure that moves
least, and CPU time does not count the time a thread waited for a core.

The products of each phase (2 FLOP per multiply-add: the forward's step product [x_t | h] of
depth I + H, the backward's dh and dx products of depth 4H, the weight gradients of depth T*B)
are then timed alone at 1 thread with operands in cache (`_C.gemm_packed` for a step's product
of one thread's share of the batch, `_C.gemm` with a transposed A for a weight-gradient block of
128 rows, as the backward's loop runs them), and the table gives the time the products would take
at those rates and at the FMA peak (`--peak`, GFLOP/s per core): what is left of a phase beyond
its products is the gate math, copies and waits.
"""
import argparse
import time

import numpy as np

import _env

_env.use_inplace_build()

import rnnfast  # noqa: E402
from rnnfast import _C  # noqa: E402
from rnnfast import functional as F  # noqa: E402
from rnnfast import reference as R  # noqa: E402

from _peers import make_case  # noqa: E402
from _shapes import CELLS, SHAPES, Shape, flops  # noqa: E402

PHASES = ("inference", "forward (training)", "backward", "training (forward + backward)")
BLOCK_ROWS = 128  # the backward loop's weight-gradient blocks (rows of gate gradients)


def case_arrays(shape):
    a = make_case(CELLS["lstm"], shape).inputs(np.float32)
    args = (a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"], a["c0"])
    return args, a["dy"]


def check(args, dy, forward=F.lstm_forward, backward=F.lstm_backward):
    """Raises AssertionError unless the training call matches the float64 reference."""
    *outs, ctx = forward(*args, training=True)
    grads = backward(ctx, dy)
    wide = [v.astype(np.float64) for v in args]
    *ref_outs, ref_ctx = R.lstm_forward(*wide, training=True)
    ref_grads = R.lstm_backward(ref_ctx, dy.astype(np.float64))
    pairs = [(f"output {i}", o, r) for i, (o, r) in enumerate(zip(outs, ref_outs))]
    pairs += [(f"gradient {k}", grads[k], v) for k, v in ref_grads.items() if v is not None]
    for name, got, want in pairs:
        scale = max(1.0, float(np.max(np.abs(want))))
        err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
        assert err < 1e-4, f"{name}: relative error {err:.2e} against the reference"


def time_phases(args, dy, threads, rounds, inner=4):
    """{threads: {phase: (min wall ms, min CPU ms)}} per call, `inner` calls per sample, thread
    counts alternated round by round."""
    best = {n: {p: [np.inf, np.inf] for p in PHASES} for n in threads}

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(inner):
            result = fn()
        return (result, (time.perf_counter() - w0) * 1e3 / inner,
                (time.process_time() - c0) * 1e3 / inner)

    def keep(n, phase, wall, cpu):
        best[n][phase][0] = min(best[n][phase][0], wall)
        best[n][phase][1] = min(best[n][phase][1], cpu)

    for n in threads:  # one untimed call of each phase first (packings, pool, pages)
        rnnfast.set_num_threads(n)
        F.lstm_forward(*args, training=False)
        F.lstm_backward(F.lstm_forward(*args, training=True)[-1], dy)
    for r in range(rounds):
        for n in (threads if r % 2 == 0 else threads[::-1]):
            rnnfast.set_num_threads(n)
            _, wall, cpu = timed(lambda: F.lstm_forward(*args, training=False))
            keep(n, PHASES[0], wall, cpu)
            out, fw, fc = timed(lambda: F.lstm_forward(*args, training=True))
            keep(n, PHASES[1], fw, fc)
            _, bw, bc = timed(lambda: F.lstm_backward(out[-1], dy))
            keep(n, PHASES[2], bw, bc)
            keep(n, PHASES[3], fw + bw, fc + bc)
    return {n: {p: tuple(v) for p, v in best[n].items()} for n in threads}


def product_rates(shape, rounds, share=16):
    """GFLOP/s (CPU, 1 thread, best of `rounds`) of the products alone: (forward step, backward
    step, weight-gradient block), each for `share` rows of the batch (one thread's group)."""
    T, B, I, H = shape.T, shape.B, shape.I, shape.H
    rng = np.random.default_rng(0)
    m = min(B, share)
    rnnfast.set_num_threads(1)

    def rate(flop, fn, reps):
        best = np.inf
        for _ in range(max(3, rounds)):
            c0 = time.process_time()
            fn(reps)
            best = min(best, time.process_time() - c0)
        return flop * reps / max(best, 1e-9) / 1e9

    def packed(M, K, N):
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        reps = max(1, int(2e8 / (2 * M * K * N)))
        return rate(2.0 * M * K * N, lambda r: _C.gemm_packed(a, b, repeats=r), reps)

    rows = min(BLOCK_ROWS // m * m, T * m) or m
    ring = rng.standard_normal((rows, 4 * H), dtype=np.float32)
    xh = rng.standard_normal((rows, I + H), dtype=np.float32)
    c = np.zeros((4 * H, I + H), np.float32)

    def blocks(reps):
        for _ in range(reps):
            _C.gemm(ring, xh, trans_a=True, beta=1.0, out=c)
    block_flop = 2.0 * rows * 4 * H * (I + H)
    return (packed(m, I + H, 4 * H), packed(m, 4 * H, H),
            rate(block_flop, blocks, max(1, int(2e8 / block_flop))))


def gflop(shape):
    """(forward, backward) GFLOP of one training call (``_shapes.flops``): every step's
    product; dh + dx (depth 4H, widths H and I) and dW (depth T*B)."""
    forward = flops(CELLS["lstm"], shape, "inference") / 1e9
    return forward, flops(CELLS["lstm"], shape, "training") / 1e9 - forward


def report(shape, times, rates, peak):
    fwd, bwd = gflop(shape)
    r_fwd, r_step, r_block = rates
    T, B, I, H = shape.T, shape.B, shape.I, shape.H
    dhdx = 2.0 * T * B * 4 * H * (H + I) / 1e9
    dw = bwd - dhdx
    at_rates = {PHASES[0]: fwd / r_fwd, PHASES[1]: fwd / r_fwd,
                PHASES[2]: dhdx / r_step + dw / r_block}
    at_rates[PHASES[3]] = at_rates[PHASES[1]] + at_rates[PHASES[2]]
    flops = {PHASES[0]: fwd, PHASES[1]: fwd, PHASES[2]: bwd, PHASES[3]: fwd + bwd}
    lines = [f"LSTM {shape.label}: forward {fwd:.4f} GFLOP, backward {bwd:.4f} "
             f"(dh + dx {dhdx:.4f}, dW {dw:.4f})",
             f"products alone, 1 thread, CPU: forward step {r_fwd:.1f} GFLOP/s, backward step "
             f"{r_step:.1f}, weight-gradient block {r_block:.1f}; FMA peak {peak:.0f} per core",
             "",
             "| threads | phase | wall ms (min) | CPU ms (min) | GFLOP/s (CPU) | % of peak (CPU) "
             "| its products at their rates / threads, ms | at the peak / threads, ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for n, phases in times.items():
        for p in PHASES:
            wall, cpu = phases[p]
            rate = flops[p] / (cpu / 1e3)
            lines.append(f"| {n} | {p} | {wall:.3f} | {cpu:.3f} | {rate:.1f} | "
                         f"{100 * rate / peak:.1f} | {1e3 * at_rates[p] / n:.3f} | "
                         f"{1e3 * flops[p] / peak / n:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="medium", choices=sorted(SHAPES))
    p.add_argument("--steps", type=int), p.add_argument("--batch", type=int)
    p.add_argument("--input", type=int), p.add_argument("--hidden", type=int)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--inner", type=int, default=4, help="calls per timed sample")
    p.add_argument("--peak", type=float, default=118.0,
                   help="FMA peak in GFLOP/s per core (Zen 4 here: 118, bench/RESULTS.md)")
    o = p.parse_args(argv)
    base = SHAPES[o.shape]
    custom = (o.steps, o.batch, o.input, o.hidden)
    sizes = (base.T, base.B, base.I, base.H)
    shape = base if custom == (None,) * 4 else Shape(
        "custom", *(v if v is not None else d for v, d in zip(custom, sizes)))
    if any(n < 1 for n in o.threads) or o.rounds < 1 or o.inner < 1:
        p.error("--threads, --rounds and --inner must be positive")
    args, dy = case_arrays(shape)
    check(args, dy)
    threads = rnnfast.get_num_threads()
    try:
        times = time_phases(args, dy, o.threads, o.rounds, o.inner)
        rates = product_rates(shape, o.rounds)
    finally:
        rnnfast.set_num_threads(threads)
    print(report(shape, times, rates, o.peak))


if __name__ == "__main__":
    main()
