"""WaveNet against PyTorch CPU: generation speed and a training epoch.

Generation: ``rnnfast.nn.WaveNetGenerator`` (the fast WaveNet queues: one small product per
layer and sample) against the naive PyTorch loop that, for every new sample, runs the same
network (``TorchWaveNet``, the same weights) over the last receptive field of inputs and keeps
the last output. Both are fed the same input signal (so their logits can be compared: they are
checked equal before timing) and the times cover the logits of ``--samples`` samples, batch 1.

Training: the model of ``examples/wavenet.py`` (its ``build_model``: a compiled Sequential
holding a WaveNet, Adam, sparse cross-entropy on logits) and its PyTorch twin, from the same
weights (checked: the same outputs), on the same batches in the same order (no shuffling:
``shuffle=False`` in ``fit`` and in order in PyTorch), with Adam of the same settings. Each
epoch of one is followed by an epoch of the other, so a busy machine slows both alike. The
table gives the mean time per epoch after the first (with one epoch, that one), the ratio
``torch / rnnfast`` (above 1: rnnfast is faster) and each side's last loss.

    python bench/wavenet_vs_torch.py                   # default sizes, 2 threads
    python bench/wavenet_vs_torch.py --quick           # a small model and signal (seconds)

Needs torch (the ``[bench]`` extra). A busy machine (see the load average) stretches every time.
"""
import argparse
import sys
import time

import numpy as np

import _env

_env.use_inplace_build()
sys.path.insert(0, str(_env.REPO_ROOT / "examples"))

import torch  # noqa: E402
from rnnfast import nn as rn_nn  # noqa: E402


class _Causal(torch.nn.Conv1d):
    """Conv1d with WaveNet's causal (left) padding."""

    def forward(self, x):
        pad = self.dilation[0] * (self.kernel_size[0] - 1)
        return super().forward(torch.nn.functional.pad(x, (pad, 0)))


class _Block(torch.nn.Module):
    def __init__(self, R, Dc, S, dilation, K):
        super().__init__()
        self.dilated = _Causal(R, 2 * Dc, K, dilation=dilation)
        self.residual = torch.nn.Conv1d(Dc, R, 1)
        self.skip = torch.nn.Conv1d(Dc, S, 1)
        self.Dc = Dc

    def forward(self, h):
        a = self.dilated(h)
        z = torch.tanh(a[:, :self.Dc]) * torch.sigmoid(a[:, self.Dc:])
        return h + self.residual(z), self.skip(z)


class TorchWaveNet(torch.nn.Module):
    """The network of ``rnnfast.nn.WaveNet`` in PyTorch, with its parameter names, on inputs
    ``(B, T, C)`` (channels last, like rnnfast's) and the rnnfast model's weights."""

    def __init__(self, model):
        super().__init__()
        m = model
        self.causal = _Causal(m.in_channels, m.residual_channels, m.kernel_size)
        self.blocks = torch.nn.ModuleList(
            [_Block(m.residual_channels, m.dilation_channels, m.skip_channels, d, m.kernel_size)
             for d in m.dilations])
        self.end1 = torch.nn.Conv1d(m.skip_channels, m.end_channels, 1)
        self.end2 = torch.nn.Conv1d(m.end_channels, m.out_channels, 1)
        dtype = torch.float64 if m.dtype == np.float64 else torch.float32
        self.to(dtype)
        self.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})

    def forward(self, x):
        h = self.causal(x.transpose(1, 2))
        total = 0
        for block in self.blocks:
            h, s = block(h)
            total = total + s
        return self.end2(torch.relu(self.end1(torch.relu(total)))).transpose(1, 2)


def naive_torch_generation(twin, x, rf):
    """Logits of every step, each recomputed from the last ``rf`` inputs: ``(B, T, out)``."""
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            window = x[:, max(0, t - rf + 1):t + 1]
            out.append(twin(window)[:, -1])
    return torch.stack(out, dim=1)


def fast_generation(model, x):
    gen = model.generator(x.shape[0])
    return np.stack([gen.step(x[:, t]) for t in range(x.shape[1])], axis=1)


def bench_generation(model, samples, signal):
    twin = TorchWaveNet(model).eval()
    rf = model.receptive_field
    x = signal[None, :samples, None].astype(np.float32)
    check = min(samples, 40)
    ours = fast_generation(model, x[:, :check])
    theirs = naive_torch_generation(twin, torch.tensor(x[:, :check]), rf).numpy()
    err = np.max(np.abs(ours - theirs)) / max(1.0, np.max(np.abs(theirs)))
    if err > 1e-4:
        raise SystemExit(f"generation: rnnfast and PyTorch logits differ by {err:.3g}")
    # the naive loop's cost per sample grows until the window is full: time it past that
    warm = np.concatenate([signal[:rf], signal[:samples]])[None, :, None].astype(np.float32)
    t0 = time.perf_counter()
    fast_generation(model, warm[:, rf:])
    fast = samples / (time.perf_counter() - t0)
    tx = torch.tensor(warm)
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in range(rf, rf + samples):
            twin(tx[:, t - rf + 1:t + 1])[:, -1]
    naive = samples / (time.perf_counter() - t0)
    return fast, naive, err


def bench_training(args):
    import wavenet as example

    train, _, source = example.load_data(None, None, args.length, args.sequences, 0)
    model, wavenet = example.build_model(args.dilations, args.channels, seed=0)
    x, y = example.inputs_of(train[:, :-1]), train[:, 1:]
    twin = TorchWaveNet(wavenet)
    out_rn = model.predict(x[:1], verbose=0)
    with torch.no_grad():
        out_t = twin(torch.tensor(x[:1])).numpy()
    err = np.max(np.abs(out_rn - out_t)) / max(1.0, np.max(np.abs(out_t)))
    if err > 1e-4:
        raise SystemExit(f"training: the twins' outputs differ by {err:.3g} before training")
    # the example's optimiser: Adam(lr=3e-3) with the default betas and eps (PyTorch's too)
    topt = torch.optim.Adam(twin.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rn_times, t_times, rn_loss, t_loss = [], [], None, None
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        h = model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
        rn_times.append(time.perf_counter() - t0)
        rn_loss = h["loss"][-1]
        t0 = time.perf_counter()
        losses = []
        for i in range(0, len(x), args.batch_size):
            xb, yb = torch.tensor(x[i:i + args.batch_size]), torch.tensor(y[i:i + args.batch_size])
            topt.zero_grad()
            logits = twin(xb)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            loss.backward()
            topt.step()
            losses.append((loss.item(), len(xb)))
        t_times.append(time.perf_counter() - t0)
        t_loss = sum(v * n for v, n in losses) / sum(n for _, n in losses)
    used = slice(1, None) if args.epochs > 1 else slice(None)
    return source, x.shape, np.mean(rn_times[used]), np.mean(t_times[used]), rn_loss, t_loss, \
        rn_times, t_times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--samples", type=int, default=300, help="samples generated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--length", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-training", action="store_true")
    args = parser.parse_args(argv)
    args.dilations = [2 ** i for i in range(10)] * 2
    if args.quick:
        args.samples, args.epochs, args.sequences, args.length = 40, 1, 4, 1000
        args.channels, args.dilations = 16, [2 ** i for i in range(8)]
    threads = _env.threads_from_env(args.threads)
    _env.set_threads(threads)
    info = _env.machine_info()
    print(f"# WaveNet vs PyTorch: {threads} threads, {info['cpu_model']}, "
          f"{info['usable_cpus']} usable CPUs, rnnfast {info['rnnfast']} ({info['rnnfast_isa']}),"
          f" PyTorch {info['torch']}, NumPy {info['numpy']}, {info['date_utc']}, load average "
          f"{info['load_average_1min']}")
    model = rn_nn.WaveNet(1, 256, args.channels, args.channels, 2 * args.channels,
                          2 * args.channels, dilations=args.dilations, seed=0)
    rng = np.random.default_rng(0)
    signal = np.sin(np.arange(model.receptive_field + args.samples) / 7.0) + \
        0.1 * rng.standard_normal(model.receptive_field + args.samples)
    fast, naive, err = bench_generation(model, args.samples, signal)
    print(f"\nGeneration, batch 1, {len(args.dilations)} layers, {args.channels} residual "
          f"channels, receptive field {model.receptive_field} (logits checked: max rel. "
          f"difference {err:.2g})\n")
    print("| method | samples/s | speed-up |")
    print("|---|---:|---:|")
    print(f"| rnnfast WaveNetGenerator (queues) | {fast:.1f} | {fast / naive:.1f} |")
    print(f"| PyTorch, receptive field recomputed per sample | {naive:.1f} | 1.0 |")
    if args.no_training:
        return
    source, shape, rn_s, t_s, rn_loss, t_loss, rn_all, t_all = bench_training(args)
    print(f"\nTraining epochs ({source}, inputs {shape}, batch {args.batch_size}, Adam): "
          f"rnnfast {['%.2f' % t for t in rn_all]} s, PyTorch {['%.2f' % t for t in t_all]} s\n")
    print("| model | rnnfast s/epoch | torch s/epoch | torch / rnnfast | rnnfast loss | "
          "torch loss |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| wavenet | {rn_s:.3f} | {t_s:.3f} | {t_s / rn_s:.2f} | {rn_loss:.5f} | "
          f"{t_loss:.5f} |")
    print(f"\nload average at the end: {_env.load_average()}")


if __name__ == "__main__":
    main()
