"""rnnfast.torch.LSTM against torch.nn.LSTM inside a PyTorch training loop.

    python bench/interleaved_torch.py                      # 1 and 2 threads, 40 rounds
    python bench/interleaved_torch.py --threads 2 --rounds 80 --pools

One training step is what a normal PyTorch loop does around the recurrent layer: an embedding
lookup of token ids, the LSTM (T=50, B=32, I=H=256 by default, time-major), a linear layer on
every step's output, cross-entropy against the next tokens, backward, gradient clipping and an
Adam step. torch's ops run before and after every call of the LSTM, so its OpenMP threads are
awake (spinning) when the LSTM starts, as they are in real programs.

The peers are two copies of the same model (same weights, same data) that differ only in the
LSTM class. Before timing, the first step's loss and every gradient of the two copies are
compared (float32, within 1e-4 of the largest magnitude). Each round times ``--steps`` steps of
every peer, the peers in alternating order from round to round, in one process; the report gives
the per-step minimum and median over the rounds and the speed-up torch time / rnnfast time
(above 1: the model with rnnfast.torch.LSTM trains faster).

``--pools`` adds a second rnnfast peer that runs the kernels on rnnfast's own thread pool
(``rnnfast.set_thread_pool("rnnfast")``) instead of the OpenMP threads PyTorch brought
(``"openmp"``, what importing rnnfast.torch selects), switched before each of its rounds.

Every round also takes the process's CPU time per step (``time.process_time``; on a busy
machine it moves far less than the wall clock, and at one thread it is the step's own cost).
``--breakdown`` then splits one thread's step (CPU time of the calling thread, minimum over the
rounds): the whole step of each peer, its LSTM's forward and backward alone (on a leaf input,
the same shapes; the gradients cleared before the timed call, untimed), and the rnnfast kernels
alone (``rnnfast.functional.lstm_forward`` and ``lstm_backward`` on NumPy arrays): what the
bridge adds is the difference of the last two; then torch.nn.LSTM's forward and backward and the
kernels' forward and backward each alone (a backward after an untimed forward). With each, the
page faults of a call (fresh memory the C library hands out when its heap was trimmed between
calls; the order in which a case frees its arrays decides it). For the rnnfast cases it also
gives the time outside the two kernel bindings before the forward's, between them and after the
backward's (stamps at the bindings' entry and exit).
"""
import argparse
import os
import platform
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _env  # noqa: E402

_env.use_inplace_build()

import torch  # noqa: E402

import rnnfast  # noqa: E402
import rnnfast.torch as rt  # noqa: E402


class Model(torch.nn.Module):
    """Embedding -> LSTM -> Linear over every step: a small language model."""

    def __init__(self, lstm_class, vocab, size, hidden):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, size)
        self.lstm = lstm_class(size, hidden)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.head(y)


def make_peers(names, vocab, size, hidden, seed=0):
    torch.manual_seed(seed)
    first = Model(torch.nn.LSTM, vocab, size, hidden)
    peers = {}
    for name in names:
        model = Model(torch.nn.LSTM if name == "torch" else rt.LSTM, vocab, size, hidden)
        model.load_state_dict(first.state_dict())
        peers[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    return peers


def train_step(model, optimizer, tokens, targets):
    optimizer.zero_grad(set_to_none=True)
    logits = model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


def check_peers(peers, tokens, targets):
    """The first step's loss and gradients of every peer against the torch peer."""
    results = {}
    for name, (model, _) in peers.items():
        model.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 targets.reshape(-1))
        loss.backward()
        results[name] = [loss.detach()] + [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
    reference = results["torch"]
    for name, values in results.items():
        for a, b in zip(values, reference):
            scale = max(1.0, float(b.abs().max()))
            error = float((a - b).abs().max()) / scale
            if error > 1e-4:
                raise SystemExit(f"{name}: result differs from torch.nn by {error:.3g}")


def use_pool(name):
    pool = "rnnfast" if name == "rnnfast-own-pool" else "openmp"
    if name != "torch" and rnnfast.get_thread_pool() != pool:
        rnnfast.set_thread_pool(pool)


def run(threads, args):
    rnnfast.set_num_threads(threads)
    torch.set_num_threads(threads)
    names = ["torch", "rnnfast"]
    if args.pools:
        names.append("rnnfast-own-pool")
    peers = make_peers(names, args.vocab, args.size, args.hidden)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, args.vocab, (args.T + 1, args.B), generator=gen)
    inputs, targets = tokens[:-1], tokens[1:]
    check_peers(peers, inputs, targets)
    for name in names:  # warm-up
        use_pool(name)
        for _ in range(3):
            train_step(*peers[name], inputs, targets)
    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            use_pool(name)
            model, optimizer = peers[name]
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                train_step(model, optimizer, inputs, targets)
            times[name].append((time.perf_counter() - start) / args.steps)
            cpu[name].append((time.process_time() - cpu_start) / args.steps)
    return times, cpu


def breakdown(args):
    """One thread's CPU time: the step, the LSTM alone, the kernels alone (ms, minimum)."""
    import rnnfast.functional as F

    rnnfast.set_num_threads(1)
    torch.set_num_threads(1)
    peers = make_peers(["torch", "rnnfast"], args.vocab, args.size, args.hidden)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, args.vocab, (args.T + 1, args.B), generator=gen)
    x = torch.randn(args.T, args.B, args.size, generator=gen, requires_grad=True)
    dy = torch.randn(args.T, args.B, args.hidden, generator=gen)
    lstm = peers["rnnfast"][0].lstm
    arrays = [p.detach().numpy() for p in lstm.parameters()]
    x_np, dy_np = x.detach().numpy(), dy.numpy()

    def clear(module):
        module.zero_grad(set_to_none=True)  # gradients taken over, not added
        x.grad = None

    def layer(module):
        y, _ = module(x)
        y.backward(dy)

    def kernels():
        ctx = F.lstm_forward(x_np, *arrays, training=True)[3]
        F.lstm_backward(ctx, dy_np)

    held = {}  # a forward's result, made untimed, for a timed backward

    def forward_of(module):
        clear(module)
        held["y"] = module(x)[0]

    def kernels_forward():
        held["ctx"] = F.lstm_forward(x_np, *arrays, training=True)[3]

    # label -> (preparation, untimed; the call, timed)
    cases = {f"{name} step": (None, lambda p=peers[name]: train_step(*p, tokens[:-1], tokens[1:]))
             for name in peers}
    cases.update({f"{name} LSTM forward+backward":
                  (lambda m=peers[name][0].lstm: clear(m), lambda m=peers[name][0].lstm: layer(m))
                  for name in peers})
    cases["rnnfast kernels forward+backward"] = (None, kernels)
    # each phase alone: torch.nn.LSTM's against the kernels' (the forward keeps what the
    # backward needs; the backward runs on a forward made untimed just before)
    cases["torch LSTM forward"] = (lambda m=peers["torch"][0].lstm: clear(m),
                                   lambda m=peers["torch"][0].lstm: held.update(y=m(x)[0]))
    cases["torch LSTM backward"] = (lambda m=peers["torch"][0].lstm: forward_of(m),
                                    lambda: held.pop("y").backward(dy))
    cases["rnnfast kernels forward"] = (None, kernels_forward)
    cases["rnnfast kernels backward"] = (kernels_forward,
                                         lambda: F.lstm_backward(held.pop("ctx"), dy_np))
    best, faults = {}, {}
    stamps = _BindingStamps()  # where the time outside the kernels goes (rnnfast cases)
    splits = {}
    split_labels = ("rnnfast LSTM forward+backward", "rnnfast kernels forward+backward")
    for r in range(args.rounds):
        for label, (prepare, fn) in (list(cases.items()) if r % 2 == 0
                                     else list(cases.items())[::-1]):
            if label in split_labels:
                stamps.install()
            for _ in range(2):  # warm (and, in the first round, the warm-up), then timed
                if prepare is not None:
                    prepare()
                minflt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                stamps.clear()
                start = time.thread_time_ns()
                fn()
                end = time.thread_time_ns()
            best[label] = min(best.get(label, float("inf")), (end - start) * 1e-9)
            faults.setdefault(label, []).append(
                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - minflt)
            if label in split_labels:
                stamps.remove()
                for part, value in stamps.split(start, end).items():
                    splits.setdefault(label, {}).setdefault(part, []).append(value)
    print("breakdown, 1 thread, CPU time of the calling thread, minimum over rounds "
          "(and the median count of page faults of a call; the layers' gradients are cleared "
          "before the timed call, untimed):")
    for label, value in best.items():
        print(f"  {label:34s} {value * 1e3:8.2f} ms {statistics.median(faults[label]):8.0f} faults")
    bridge = best["rnnfast LSTM forward+backward"] - best["rnnfast kernels forward+backward"]
    print(f"  {'bridge (rnnfast LSTM - kernels)':34s} {bridge * 1e3:8.2f} ms")
    print("  outside the two kernel bindings, us (min / median over rounds): before the forward "
          "binding, between the bindings, after the backward binding")
    for label, parts in splits.items():
        text = ", ".join(f"{part} {min(v):.0f} / {statistics.median(v):.0f}"
                         for part, v in parts.items())
        print(f"  {label:34s} {text}")


class _BindingStamps:
    """CPU-time stamps (calling thread) at the entry and exit of the two kernel bindings the
    LSTM's forward and backward reach (``recurrent_forward_positional``,
    ``recurrent_backward``), put around them through the name ``_C`` in
    ``rnnfast.functional.recurrent`` between ``install()`` and ``remove()``: the time a call
    spends outside the kernels splits into before, between and after."""

    def __init__(self):
        import rnnfast.functional.recurrent as recurrent

        self.module, self.real, self.marks = recurrent, recurrent._C, {}
        stamps = self

        class Proxy:
            def __getattr__(self, name):
                return getattr(stamps.real, name)

            def recurrent_forward_positional(self, *a, **k):
                stamps.marks["forward in"] = time.thread_time_ns()
                result = stamps.real.recurrent_forward_positional(*a, **k)
                stamps.marks["forward out"] = time.thread_time_ns()
                return result

            def recurrent_backward(self, *a, **k):
                stamps.marks["backward in"] = time.thread_time_ns()
                result = stamps.real.recurrent_backward(*a, **k)
                stamps.marks["backward out"] = time.thread_time_ns()
                return result

        self.proxy = Proxy()

    def install(self):
        self.module._C = self.proxy

    def clear(self):
        self.marks.clear()

    def split(self, start, end):
        m = self.marks
        if len(m) != 4:
            return {}
        return {"before": (m["forward in"] - start) / 1e3,
                "between": (m["backward in"] - m["forward out"]) / 1e3,
                "after": (end - m["backward out"]) / 1e3}

    def remove(self):
        self.module._C = self.real


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3, help="training steps per round and peer")
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="input size I (embedding width)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--pools", action="store_true",
                        help="also time rnnfast on its own thread pool")
    parser.add_argument("--breakdown", action="store_true",
                        help="then split one thread's step (CPU time): layer, kernels, bridge")
    args = parser.parse_args(argv)
    rnnfast_pool = rnnfast.get_thread_pool()
    print(f"rnnfast {rnnfast.__version__} ({rnnfast.__file__}), thread pool {rnnfast_pool}; "
          f"torch {torch.__version__}; Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"T={args.T} B={args.B} I={args.size} H={args.hidden} vocab={args.vocab}, "
          f"{args.rounds} rounds x {args.steps} steps per peer, float32")
    print(f"{'threads':>7} {'peer':>17} {'min ms':>9} {'median ms':>10} "
          f"{'torch/peer (min)':>17} {'(median)':>9} {'cpu min ms':>10} {'torch/peer (cpu)':>16}")
    for threads in args.threads:
        times, cpu = run(threads, args)
        base_min, base_med = min(times["torch"]), statistics.median(times["torch"])
        for name, values in times.items():
            lo, med = min(values), statistics.median(values)
            print(f"{threads:>7} {name:>17} {lo * 1e3:9.2f} {med * 1e3:10.2f} "
                  f"{base_min / lo:17.2f} {base_med / med:9.2f} {min(cpu[name]) * 1e3:10.2f} "
                  f"{min(cpu['torch']) / min(cpu[name]):16.2f}")
        if rnnfast.get_thread_pool() != rnnfast_pool:
            rnnfast.set_thread_pool(rnnfast_pool)
    if args.breakdown:
        breakdown(args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
