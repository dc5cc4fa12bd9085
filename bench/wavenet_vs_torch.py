"""WaveNet generation against PyTorch CPU, and the PyTorch twin of ``rnnfast.nn.WaveNet``.

``rnnfast.nn.WaveNetGenerator`` (the fast WaveNet queues: one small product per layer and
sample) against the naive PyTorch loop that, for every new sample, runs the same network
(``TorchWaveNet``, the same weights) over the last receptive field of inputs and keeps the last
output. Both are fed the same input signal (so their logits can be compared: they are checked
equal before timing) and the times cover the logits of ``--samples`` samples, batch 1.

Training epochs against the twin are in ``epochs_vs_torch.py`` (``--examples wavenet``), which
also prints this generation table.

    python bench/wavenet_vs_torch.py                   # 20 layers, 32 channels, 2 threads
    python bench/wavenet_vs_torch.py --quick           # a small model (seconds)

Needs torch (the ``[bench]`` extra). A busy machine (see the load average) stretches every time.
"""
import argparse
import sys
import time

import numpy as np

import _env

_env.use_inplace_build()

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


def generation_report(channels, dilations, samples, seed=0):
    """Builds the example-sized WaveNet (1 input, 256 classes, ``channels`` residual and
    dilation channels, twice as many skip and end channels), times both generators on a noisy
    sine and prints the table; returns (rnnfast, PyTorch) samples per second."""
    model = rn_nn.WaveNet(1, 256, channels, channels, 2 * channels, 2 * channels,
                          dilations=dilations, seed=seed)
    rng = np.random.default_rng(seed)
    n = model.receptive_field + samples
    signal = np.sin(np.arange(n) / 7.0) + 0.1 * rng.standard_normal(n)
    fast, naive, err = bench_generation(model, samples, signal)
    print(f"\nWaveNet generation, batch 1, {len(dilations)} layers, {channels} residual "
          f"channels, receptive field {model.receptive_field}, {samples} samples (logits "
          f"checked: max rel. difference {err:.2g})\n")
    print("| method | samples/s | speed-up |")
    print("|---|---:|---:|")
    print(f"| rnnfast WaveNetGenerator (queues) | {fast:.1f} | {fast / naive:.1f} |")
    print(f"| PyTorch, receptive field recomputed per sample | {naive:.1f} | 1.0 |")
    return fast, naive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--samples", type=int, default=300, help="samples generated")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    args.dilations = [2 ** i for i in range(10)] * 2
    if args.quick:
        args.samples = 40
        args.channels, args.dilations = 16, [2 ** i for i in range(8)]
    threads = _env.threads_from_env(args.threads)
    _env.set_threads(threads)
    info = _env.machine_info()
    print(f"# WaveNet vs PyTorch: {threads} threads, {info['cpu_model']}, "
          f"{info['usable_cpus']} usable CPUs, rnnfast {info['rnnfast']} ({info['rnnfast_isa']}),"
          f" PyTorch {info['torch']}, NumPy {info['numpy']}, {info['date_utc']}, load average "
          f"{info['load_average_1min']}")
    generation_report(args.channels, args.dilations, args.samples)


if __name__ == "__main__":
    main()
