"""The LSTM variants of the fused kernels against their alternatives: projections
(``proj_size``) against ``torch.nn.LSTM(proj_size=...)``, peepholes against the PyTorch loop a
user writes for them (there is no PyTorch layer), zoneout (0.25; also against the PyTorch loop
a user writes for it, zoneout as Haste applies it), recurrent dropout (0.25,
Keras' ``recurrent_dropout``; training only: inference drops nothing; also the drawing of their
masks alone), the LayerNorm LSTM and
GRU (against the nn.LSTMCell-style loop with nn.LayerNorm of bench/_layer_norm_torch.py, with
input_size = hidden_size), and each against the plain fused cell of the same size. Inference
(forward) and training (forward and backward of ``sum(y * dy)``).

    python bench/cell_variants.py [--rounds 15] [--steps 100 --batch 32 --input 256
                                   --hidden 256 --proj 128] [--threads 1] [--clock cpu]

The variants alternate in one process, round after round; the minimum over the rounds of each
is printed (milliseconds of process CPU time, or of wall-clock time with ``--clock wall``), with
the fewest minor page faults of a call, the ratios the targets are stated in and the load
average before and after (the ratios, not the absolute times, are what a busy machine keeps).

The bound of every target against a PyTorch peer (projections 1.2x torch.nn.LSTM, the others
3x their loop; inference and training): the cell's products (the input projection, the step
products, the projection; training also both operands' gradients of each, dx included, which
every training peer computes too) cannot run faster than this machine's SGEMM, so a ratio r
over a peer taking t needs r * FLOPs / t. The report gives, per variant and mode, the peer's
and rnnfast's GFLOP/s, the rate the target needs as a multiple of the SGEMM rate
(the best of ``torch.matmul`` and rnnfast's own GEMM, square 1024 and the loop's
input-projection shape, best of the rounds, same thread count, measured in the same run; above
1 the target is out of this machine's reach whatever the implementation) and the ratio reached.
"""
import argparse
import os
import resource
import time

import numpy as np
import torch

import _env  # noqa: E402

_env.use_inplace_build()

import rnnfast  # noqa: E402
import rnnfast.torch as rt  # noqa: E402
from rnnfast import _C  # noqa: E402
from rnnfast import functional as F  # noqa: E402
from rnnfast._masks import recurrent_masks  # noqa: E402
from layer_norm_vs_torch import make_peers  # noqa: E402


def timed(fn, clock):
    """(milliseconds of fn() by clock, minor page faults during it)."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = clock()
    fn()
    ms = (clock() - start) * 1e3
    return ms, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def sgemm_gflops(shapes, rounds, clock):
    """{(library, M, K, N): the best GFLOP/s of float32 [M, K] x [K, N]} by torch.matmul and by
    rnnfast's own GEMM (_C.gemm), the two alternating round after round."""
    rates = {}
    for M, K, N in shapes:
        a, b = torch.randn(M, K), torch.randn(K, N)
        an, bn = a.numpy(), b.numpy()
        calls = {"torch.matmul": lambda: torch.matmul(a, b), "rnnfast": lambda: _C.gemm(an, bn)}
        best = {}
        for fn in calls.values():
            fn()
        for _ in range(rounds):
            for name, fn in calls.items():
                best[name] = min(best.get(name, float("inf")), timed(fn, clock)[0])
        for name, ms in best.items():
            rates[name, M, K, N] = 2.0 * M * K * N / (ms * 1e-3) / 1e9
    return rates


def torch_peephole_loop(x, w_ih, w_hh, b, p, h, c):
    """A peephole LSTM as a PyTorch user writes it: one input projection, then a loop of
    steps (gates i, f, g, o; i and f see c_{t-1}, o sees c_t)."""
    xg = torch.addmm(b, x.reshape(-1, x.shape[-1]), w_ih.t()).reshape(x.shape[0], x.shape[1], -1)
    p_i, p_f, p_o = p
    ys = []
    for t in range(x.shape[0]):
        a_i, a_f, a_g, a_o = (xg[t] + h @ w_hh.t()).chunk(4, 1)
        i = torch.sigmoid(a_i + p_i * c)
        f = torch.sigmoid(a_f + p_f * c)
        c = f * c + i * torch.tanh(a_g)
        h = torch.sigmoid(a_o + p_o * c) * torch.tanh(c)
        ys.append(h)
    return torch.stack(ys)


def torch_zoneout_loop(x, w_ih, w_hh, b, h, c, rate, masks=None):
    """An LSTM with zoneout as a PyTorch user writes it (an nn.LSTMCell-style loop after one
    input projection), zoneout applied as Haste applies it: in training a Bernoulli(rate) mask
    per step and unit, drawn per call (or given: masks = (d_h, d_c) of shape (T, B, H)), keeps
    the previous value, ``h_t = d * h_{t-1} + (1 - d) * h~``; at inference the expectation
    (d = rate). On h and on c, as rnnfast's zoneout defines it for the LSTM (Haste zones h
    only: one more multiply-add per step here)."""
    xg = torch.addmm(b, x.reshape(-1, x.shape[-1]), w_ih.t()).reshape(x.shape[0], x.shape[1], -1)
    training = torch.is_grad_enabled() or masks is not None
    if training and masks is None:
        masks = ((torch.rand(x.shape[0], *h.shape) < rate).to(x.dtype),
                 (torch.rand(x.shape[0], *c.shape) < rate).to(x.dtype))
    ys = []
    for t in range(x.shape[0]):
        a_i, a_f, a_g, a_o = (xg[t] + h @ w_hh.t()).chunk(4, 1)
        c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
        h_new = torch.sigmoid(a_o) * torch.tanh(c_new)
        d_h, d_c = (masks[0][t], masks[1][t]) if training else (rate, rate)
        h = torch.lerp(h_new, h, d_h)  # d * h + (1 - d) * h~
        c = torch.lerp(c_new, c, d_c)
        ys.append(h)
    return torch.stack(ys)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--proj", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="process CPU time (default) or wall-clock time")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    rnnfast.set_num_threads(args.threads)
    T, B, I, H, P = args.steps, args.batch, args.input, args.hidden, args.proj
    rng = np.random.default_rng(0)

    # projections: rnnfast.torch against torch.nn, the same weights
    torch.manual_seed(0)
    ours = rt.LSTM(I, H, proj_size=P)
    theirs = torch.nn.LSTM(I, H, proj_size=P)
    theirs.load_state_dict(ours.state_dict())
    xt = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32))
    dyt = torch.from_numpy(rng.standard_normal((T, B, P)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(ours(xt)[0], theirs(xt)[0], rtol=1e-4, atol=1e-5)

    def module_run(module, train):
        if not train:
            with torch.no_grad():
                return lambda: module(xt)
        x = xt.clone().requires_grad_()
        return lambda: torch.autograd.backward(module(x)[0], dyt)

    # peepholes and the plain cell on the kernels (NumPy), the PyTorch loop on tensors
    x = xt.numpy()
    w_ih = (rng.standard_normal((4 * H, I)) / np.sqrt(I)).astype(np.float32)
    w_hh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(np.float32)
    b = (rng.standard_normal(4 * H) * 0.1).astype(np.float32)
    peep = (rng.standard_normal((3, H)) * 0.5).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)

    def kernel_run(train, **extra):
        def run():
            out = F.lstm_forward(x, w_ih, w_hh, b, None, **extra, training=train)
            if train:
                F.lstm_backward(out[-1], dy)
        return run

    tensors = [torch.from_numpy(a) for a in (w_ih, w_hh, b, peep)]
    zeros = torch.zeros(B, H)
    want = torch_peephole_loop(xt, *tensors, zeros, zeros).numpy()
    got = F.lstm_forward(x, w_ih, w_hh, b, None, w_peephole=peep)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    # zoneout: the loop against the kernel with the same masks (training) and in inference
    rate = 0.25
    d_h = (rng.random((T, B, H)) < rate).astype(np.float32)
    d_c = (rng.random((T, B, H)) < rate).astype(np.float32)
    want = torch_zoneout_loop(xt, *tensors[:3], zeros, zeros, rate,
                              masks=(torch.from_numpy(d_h), torch.from_numpy(d_c))).numpy()
    got = F.lstm_forward(x, w_ih, w_hh, b, None, zoneout=rate, training=True,
                         masks={"zoneout_h": d_h, "zoneout_c": d_c})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        want = torch_zoneout_loop(xt, *tensors[:3], zeros, zeros, rate).numpy()
    got = F.lstm_forward(x, w_ih, w_hh, b, None, zoneout=rate)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def zoneout_loop_run(train):
        if not train:
            def run():
                with torch.no_grad():
                    torch_zoneout_loop(xt, *tensors[:3], zeros, zeros, rate)
            return run
        leaves = [t.clone().requires_grad_() for t in (xt, *tensors[:3])]  # dx too, as ours
        dy_t = torch.from_numpy(dy)
        return lambda: torch.autograd.backward(
            torch_zoneout_loop(*leaves, zeros, zeros, rate), dy_t)

    def loop_run(train):
        if not train:
            def run():
                with torch.no_grad():
                    torch_peephole_loop(xt, *tensors, zeros, zeros)
            return run
        leaves = [t.clone().requires_grad_() for t in (xt, *tensors)]  # dx too, as ours
        dy_t = torch.from_numpy(dy)
        return lambda: torch.autograd.backward(
            torch_peephole_loop(*leaves, zeros, zeros), dy_t)

    variants = {}
    for train in (False, True):
        mode = "training" if train else "inference"
        variants[("proj", "rnnfast.torch.LSTM(proj_size)", mode)] = module_run(ours, train)
        variants[("proj", "torch.nn.LSTM(proj_size)", mode)] = module_run(theirs, train)
        variants[("proj", "rnnfast plain LSTM", mode)] = kernel_run(train)
        variants[("peephole", "rnnfast peephole LSTM", mode)] = kernel_run(train, w_peephole=peep)
        variants[("peephole", "PyTorch loop", mode)] = loop_run(train)
        variants[("peephole", "rnnfast plain LSTM", mode)] = kernel_run(train)
        # zoneout 0.25: training draws its masks (the C++ recurrent_masks) per call
        variants[("zoneout", "rnnfast zoneout LSTM", mode)] = kernel_run(train, zoneout=rate,
                                                                         seed=0)
        variants[("zoneout", "PyTorch zoneout loop", mode)] = zoneout_loop_run(train)
        variants[("zoneout", "rnnfast plain LSTM", mode)] = kernel_run(train)
    # recurrent dropout 0.25: its masks drawn per call too
    variants[("recdrop", "rnnfast recurrent-dropout LSTM", "training")] = kernel_run(
        True, recurrent_dropout=0.25, seed=0)
    variants[("recdrop", "rnnfast plain LSTM", "training")] = kernel_run(True)
    # the masks alone, as those training calls draw them (float32, the C++ kernel)
    variants[("masks", "zoneout masks (h and c)", "training")] = lambda: recurrent_masks(
        "lstm", T, B, H, zoneout=rate, seed=0, dtype=np.float32)
    variants[("masks", "recurrent-dropout masks", "training")] = lambda: recurrent_masks(
        "lstm", T, B, H, recurrent_dropout=0.25, seed=0, dtype=np.float32)
    # the projection kernel without the bridge, on the torch module's weights (w_hh (4H, P))
    wp_ih, wp_hh = ours.weight_ih_l0.detach().numpy(), ours.weight_hh_l0.detach().numpy()
    w_hr = ours.weight_hr_l0.detach().numpy()
    dy_p = dyt.numpy()
    for train in (False, True):
        mode = "training" if train else "inference"

        def proj_kernel(train=train):
            out = F.lstm_forward(x, wp_ih, wp_hh, b, None, w_hr=w_hr, training=train)
            if train:
                F.lstm_backward(out[-1], dy_p)
        variants[("proj", "rnnfast projection LSTM", mode)] = proj_kernel

    # the LayerNorm cells: bench/layer_norm_vs_torch.py's peers (I = H), checked there
    for cell in ("lstm", "gru"):
        peers = make_peers(cell, T, B, H)
        for k, mode in enumerate(("inference", "training")):
            group = "ln-" + cell
            variants[(group, f"rnnfast LayerNorm {cell.upper()}", mode)] = peers["layer_norm"][k]
            variants[(group, "PyTorch LayerNorm loop", mode)] = peers["torch loop"][k]
            variants[(group, f"rnnfast plain {cell.upper()}", mode)] = peers["plain"][k]

    print(f"T={T} B={B} I={I} H={H} proj_size={P}, float32, {args.threads} thread(s), "
          f"{args.rounds} rounds, {args.clock} time")
    print(f"load average before: {os.getloadavg()}")
    best, faults = {}, {}
    for fn in variants.values():  # warm: first calls allocate what later calls keep
        fn()
    for _ in range(args.rounds):
        for key, fn in variants.items():
            ms, n = timed(fn, clock)
            best[key] = min(best.get(key, float("inf")), ms)
            faults[key] = min(faults.get(key, n), n)
    gemm_shapes = [(1024, 1024, 1024), (T * B, I, 4 * H)]
    sgemm = sgemm_gflops(gemm_shapes, max(3, args.rounds), clock)
    print(f"load average after: {os.getloadavg()}")
    for key in variants:
        print(f"{key[0]:9s} {key[2]:9s} {key[1]:32s} {faults[key]:6d} faults "
              f"{best[key]:9.3f} ms")
    for mode in ("inference", "training"):
        def r(a, b, group):
            return best[(group, b, mode)] / best[(group, a, mode)]
        print(f"{mode}: proj torch.nn / rnnfast.torch = "
              f"{r('rnnfast.torch.LSTM(proj_size)', 'torch.nn.LSTM(proj_size)', 'proj'):.2f}x; "
              f"peephole PyTorch loop / rnnfast = "
              f"{r('rnnfast peephole LSTM', 'PyTorch loop', 'peephole'):.2f}x; "
              f"peephole / plain = "
              f"{r('rnnfast plain LSTM', 'rnnfast peephole LSTM', 'peephole'):.2f}x; "
              f"projection / plain = "
              f"{r('rnnfast plain LSTM', 'rnnfast projection LSTM', 'proj'):.2f}x; "
              f"zoneout / plain = "
              f"{r('rnnfast plain LSTM', 'rnnfast zoneout LSTM', 'zoneout'):.2f}x; "
              f"zoneout PyTorch loop / rnnfast = "
              f"{r('rnnfast zoneout LSTM', 'PyTorch zoneout loop', 'zoneout'):.2f}x")
    dropped = best[("recdrop", "rnnfast recurrent-dropout LSTM", "training")]
    plain = best[("recdrop", "rnnfast plain LSTM", "training")]
    print(f"training: recurrent dropout / plain = {dropped / plain:.2f}x")
    zone_masks = best[("masks", "zoneout masks (h and c)", "training")]
    drop_masks = best[("masks", "recurrent-dropout masks", "training")]
    print(f"training: drawing the masks: zoneout {zone_masks:.3f} ms "
          f"({zone_masks / best[('zoneout', 'rnnfast plain LSTM', 'training')]:.3f} of plain), "
          f"recurrent dropout {drop_masks:.3f} ms")
    for cell in ("lstm", "gru"):
        group, name = "ln-" + cell, cell.upper()
        for mode in ("inference", "training"):
            ln = best[(group, f"rnnfast LayerNorm {name}", mode)]
            print(f"{mode}: LayerNorm {name} PyTorch loop / rnnfast = "
                  f"{best[(group, 'PyTorch LayerNorm loop', mode)] / ln:.2f}x; "
                  f"LayerNorm {name} / plain = "
                  f"{ln / best[(group, f'rnnfast plain {name}', mode)]:.2f}x")

    # the bound of every target against a PyTorch peer: the products' floating-point operations
    # at this machine's SGEMM (measured above, same thread count) are the least time any
    # implementation of the cell needs, so a ratio r over a peer taking t needs a rate of
    # r * flops / t; above the SGEMM rate the target is out of this machine's reach
    for lib in ("torch.matmul", "rnnfast"):
        rates = ", ".join(f"{m}x{k}x{n} {r:.1f}" for (name, m, k, n), r in sgemm.items()
                          if name == lib)
        print(f"SGEMM ({lib}, {args.threads} thread(s)) GFLOP/s: {rates}")
    peak = max(sgemm.values())  # "SGEMM" below: the best of both libraries and shapes
    print(f"SGEMM, the best of both: {peak:.1f} GFLOP/s")
    for group, ours_name, peer, target, flops in bound_rows(T, B, I, H, P):
        for mode in ("inference", "training"):
            # training: the forward's products and, per product, the gradients of both of its
            # operands (dx included: every training peer computes it too)
            f = flops * (3 if mode == "training" else 1)
            t_peer = best[(group, peer, mode)] * 1e-3
            t_ours = best[(group, ours_name, mode)] * 1e-3
            need = target * f / t_peer / 1e9
            print(f"{mode} bound {group}: {f / 1e9:.3f} GFLOP of products; {peer} "
                  f"{f / t_peer / 1e9:.1f} GFLOP/s, {ours_name} {f / t_ours / 1e9:.1f} GFLOP/s "
                  f"({f / t_ours / 1e9 / peak:.2f} x SGEMM); {target:g}x the peer needs "
                  f"{need:.1f} GFLOP/s = {need / peak:.2f} x SGEMM "
                  f"({'possible' if need <= peak else 'out of reach'}); "
                  f"reached {t_peer / t_ours:.2f}x")


def bound_rows(T, B, I, H, P):
    """(group, rnnfast's row, the PyTorch peer's row, the target ratio, the floating-point
    operations of the cell's products in one forward) of every variant with a PyTorch peer.
    The LayerNorm cells run with input_size = hidden_size (bench/layer_norm_vs_torch.py)."""
    rows = T * B
    lstm = 2.0 * rows * 4 * H * (I + H)  # x W_ih^T and h W_hh^T
    proj = 2.0 * rows * (4 * H * I + 4 * H * P + P * H)  # and h W_hr^T, h of P features
    return [
        ("proj", "rnnfast.torch.LSTM(proj_size)", "torch.nn.LSTM(proj_size)", 1.2, proj),
        ("peephole", "rnnfast peephole LSTM", "PyTorch loop", 3, lstm),
        ("zoneout", "rnnfast zoneout LSTM", "PyTorch zoneout loop", 3, lstm),
        ("ln-lstm", "rnnfast LayerNorm LSTM", "PyTorch LayerNorm loop", 3,
         2.0 * rows * 4 * H * 2 * H),
        ("ln-gru", "rnnfast LayerNorm GRU", "PyTorch LayerNorm loop", 3,
         2.0 * rows * 3 * H * 2 * H),
    ]

if __name__ == "__main__":
    main()
