"""A model with rnnfast.torch compiled (``torch.compile(fullgraph=True)``) against the same model
run eagerly.

    python bench/torch_compiled_vs_eager.py                  # 1 thread, 20 rounds
    python bench/torch_compiled_vs_eager.py --threads 2 --rounds 40
    python bench/torch_compiled_vs_eager.py --rounds 60 --floor 0 16    # the gap's floor

Two models, each built twice with the same weights (one copy run eagerly, one compiled):
``lstm``, a bare ``rnnfast.torch.LSTM`` (the operator path alone), and ``lm``, the small language
model of bench/interleaved_torch.py (Embedding, LSTM, Linear on every step). Two modes:
``inference`` (``torch.no_grad()``) and ``training`` (forward, a loss, backward; no optimiser).
With ``--torch`` the same models with ``torch.nn.LSTM`` run too (eagerly only: Dynamo refuses to
compile torch.nn's recurrent modules), for scale.

The compiled model is ``torch.compile`` of the eager one (the same module: the same parameter
tensors, so neither copy finds the other's weights in the caches); before timing its output and
gradients are checked against the eager call's. Rounds run the variants in one process, in a
shuffled order (seeded) that never runs a variant twice in a row across rounds, so that no
variant always follows the same one (a call's Python runs right after the previous call's
kernels evicted it from the caches). Each variant reports the minimum and median over rounds of
the CPU time per call of the process (``time.process_time``: on a busy machine it excludes the
time other processes hold the cores; with more than one thread it includes the time OpenMP
threads spin) and the minimum wall time; ``eager / compiled`` above 1 means the compiled model
is faster.

``--fixed-cost`` then measures what a compiled call costs PyTorch whatever the operator: a
trivial module (``x * w + v`` on 8 numbers) eager and compiled, timed warm (right after a call
of itself) and cold (right after a call of the eager LSTM above, as every call of the compiled
LSTM starts and ends), minimum and median CPU time of the calling thread over ``--rounds``
rounds; compiled minus eager is PyTorch's own cost per compiled call (Dynamo's frame and guards,
AOTAutograd's runtime wrappers, Inductor's call), which no operator can remove. ``--spins MS [MS
...]`` adds rows timed after a call of the module itself and MS ms of spinning in Python (which
touches almost no memory): how much colder the same call gets with time alone.

``--guards`` then gives, per model and mode, the number of guards Dynamo checks on every call of
the compiled model (the leaves of its guard tree) and the time of that check alone
(``guard_manager.check`` of the cache entry the call uses, CPU time of the calling thread,
minimum and median over ``--rounds``), warm (right after a check) and cold (right after a call
of the eager model, as on every call of the compiled one): the part of the compiled call's extra
cost that depends on what the model's forward reads.

``--floor MS [MS ...]`` then times both models again with the kernels replaced by a stand-in
(``RecurrentStack.forward`` and ``backward`` return the results of one real call, kept, after
spinning for MS ms of the thread's CPU time; everything else runs as before: the layers' Python,
the operators, the dispatcher, autograd, the compiled graphs), per MS: what compiled minus eager
is with a kernel that costs nothing (0: the machinery warm) or that only takes time like the
real ones (Python spinning, which touches almost no memory: the caches and predictors then decay
as they do across any such stretch on this machine). Beside it, the same difference with the
real kernels, from the table above: the part of the gap the kernels themselves cause.
"""
import argparse
import os
import platform
import random
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
from interleaved_torch import Model  # noqa: E402


class Bare(torch.nn.Module):
    """The LSTM alone: x (T, B, I) -> every step's output."""

    def __init__(self, lstm_class, size, hidden):
        super().__init__()
        self.lstm = lstm_class(size, hidden)

    def forward(self, x):
        return self.lstm(x)[0]


def build(kind, lstm_class, args):
    if kind == "lstm":
        return Bare(lstm_class, args.size, args.hidden)
    return Model(lstm_class, args.vocab, args.size, args.hidden)


def inputs(kind, args):
    gen = torch.Generator().manual_seed(1)
    if kind == "lstm":
        return torch.randn(args.T, args.B, args.size, generator=gen)
    return torch.randint(0, args.vocab, (args.T, args.B), generator=gen)


def loss_of(out):
    return out.square().mean()


def call(model, x, mode):
    if mode == "inference":
        with torch.no_grad():
            return model(x)
    model.zero_grad(set_to_none=True)
    loss = loss_of(model(x))
    loss.backward()
    return loss


def check(eager, compiled, x, kind):
    """The compiled module's output and gradients against the eager module's (the same
    parameters)."""
    grads = []
    for model in (eager, compiled):
        model.zero_grad(set_to_none=True)
        loss_of(model(x)).backward()
        grads.append([(name, None if p.grad is None else p.grad.clone())
                      for name, p in eager.named_parameters()])
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(*grads):
        if a is None and b is None:
            continue
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"{kind}: gradient of {name}: {m}")


def orders(keys, rounds, seed=0):
    """``rounds`` shuffled orders of ``keys`` in which no key runs twice in a row (also not
    across two rounds)."""
    rng, previous = random.Random(seed), None
    for _ in range(rounds):
        order = list(keys)
        rng.shuffle(order)
        if len(order) > 1 and order[0] == previous:
            order[0], order[1] = order[1], order[0]
        previous = order[-1]
        yield order


class Trivial(torch.nn.Module):
    """``x * w + v``: a module whose compiled call is PyTorch's per-call cost alone."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8))
        self.v = torch.nn.Parameter(torch.randn(8))

    def forward(self, x):
        return x * self.w + self.v


def fixed_cost(kind, model, x_model, args):
    """Compiled minus eager CPU time of the calling thread for ``Trivial``, warm and after a
    call of the eager ``model`` on ``x_model`` (the kernels' effect on the caches), per mode."""
    eager = Trivial()
    compiled = torch.compile(eager, fullgraph=True)
    x = torch.randn(8)
    print("PyTorch's cost per compiled call (x * w + v; CPU time of the calling thread, "
          f"{args.rounds} rounds; cold: right after a call of the eager {kind} model; spinMS: "
          "after a call of itself and MS ms of spinning in Python)")
    print(f"{'mode':>9} {'state':>5} {'eager min us':>12} {'compiled min us':>15} "
          f"{'extra min us':>12} {'extra med us':>12}")
    for mode in args.modes:
        for module in (eager, compiled):
            for _ in range(3):
                call(module, x, mode)
        for state in ["warm", "cold"] + [f"spin{ms:g}" for ms in args.spins]:
            times = {"eager": [], "compiled": []}
            for order in orders(list(times), args.rounds):
                for name in order:
                    module = eager if name == "eager" else compiled
                    if state == "cold":
                        call(model, x_model, mode)
                    else:
                        call(module, x, mode)
                        if state != "warm":
                            spin(float(state[4:]) / 1e3)
                    start = time.thread_time()
                    call(module, x, mode)
                    times[name].append(time.thread_time() - start)
            lo = {k: min(v) * 1e6 for k, v in times.items()}
            med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            print(f"{mode:>9} {state:>5} {lo['eager']:12.1f} {lo['compiled']:15.1f} "
                  f"{lo['compiled'] - lo['eager']:12.1f} {med['compiled'] - med['eager']:12.1f}")


def guard_cost(kind, variants, args):
    """The guards of the compiled ``kind`` model's cache entry per mode: how many, and the time
    of their check warm and cold (after a call of the eager model)."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    eager, x = variants[(kind, args.modes[0], "eager")]
    code = type(eager).forward.__code__
    f_locals = dict(zip(code.co_varnames[:code.co_argcount], (eager, x)))
    print(f"guards of the compiled {kind} model (CPU time of the calling thread, {args.rounds} "
          "rounds; cold: right after a call of the eager model)")
    print(f"{'mode':>9} {'guards':>6} {'warm min us':>11} {'warm med us':>11} {'cold min us':>11} "
          f"{'cold med us':>11}")
    for mode in args.modes:
        with torch.set_grad_enabled(mode == "training"):
            entry = next(e for e in _debug_get_cache_entry_list(code)
                         if e.guard_manager.check(f_locals))
        guards = sum(1 for line in str(entry.guard_manager).splitlines()
                     if "+- " in line and "GuardManager" not in line)
        times = {"warm": [], "cold": []}
        for _ in range(args.rounds):
            for state, values in times.items():
                if state == "cold":
                    call(eager, x, mode)
                with torch.set_grad_enabled(mode == "training"):
                    start = time.thread_time()
                    passed = entry.guard_manager.check(f_locals)
                    values.append(time.thread_time() - start)
                assert passed, "the compiled model's guards fail on its own call"
        print(f"{mode:>9} {guards:6d} " + " ".join(
            f"{min(v) * 1e6:11.1f} {statistics.median(v) * 1e6:11.1f}" for v in times.values()))


def spin(seconds):
    """Busy-waits ``seconds`` of the calling thread's CPU time, reading that clock (a system
    call) once per 0.5 ms at most and ``time.perf_counter`` (none) in between."""
    end = time.thread_time() + seconds
    while True:
        left = end - time.thread_time()
        if left <= 0:
            return
        stop = time.perf_counter() + min(left, 5e-4)
        while time.perf_counter() < stop:
            pass


class StandInKernels:
    """Within ``with``: ``RecurrentStack.forward`` / ``backward`` return the results of their
    first real call per stack and training flag (kept), after spinning for ``spin`` seconds of
    the calling thread's CPU time."""

    def __init__(self):
        from rnnfast.functional.stack import RecurrentStack
        self.cls, self.spin, self.kept = RecurrentStack, 0.0, {}
        self.real = (RecurrentStack.forward, RecurrentStack.backward)

    def __enter__(self):
        real_forward, real_backward = self.real
        kept, stand_in = self.kept, self

        def forward(stack, weights, x, h0=None, c0=None, **options):
            key = ("forward", id(stack), options.get("training", False))
            if key not in kept:
                kept[key] = real_forward(stack, weights, x, h0, c0, **options)
            spin(stand_in.spin)
            return kept[key]

        def backward(stack, ctx, dy=None, dh_n=None, dc_n=None):
            key = ("backward", id(stack))
            if key not in kept:
                kept[key] = real_backward(stack, ctx, dy, dh_n, dc_n)
            spin(stand_in.spin)
            return kept[key]
        self.cls.forward, self.cls.backward = forward, backward
        return self

    def __exit__(self, *exc):
        self.cls.forward, self.cls.backward = self.real


def time_variants(variants, keys, args):
    """The process's CPU time and the wall time per call of each variant (``args.calls`` calls
    per round, rounds in ``orders``): ``(cpu, wall)``, each ``{key: [seconds per call, ...]}``."""
    cpu, wall = {key: [] for key in keys}, {key: [] for key in keys}
    for order in orders(keys, args.rounds):
        for key in order:
            module, x = variants[key]
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(args.calls):
                call(module, x, key[1])
            cpu[key].append((time.process_time() - c0) / args.calls)
            wall[key].append((time.perf_counter() - w0) / args.calls)
    return cpu, wall


def floor(variants, cpu, args):
    """Compiled minus eager with stand-in kernels (``StandInKernels``) per spin of
    ``args.floor``, beside the same difference with the real kernels (``cpu``)."""
    keys = [key for key in variants if key[2] in ("eager", "compiled")]
    print("compiled minus eager with stand-in kernels (the results of one real call, after "
          "spinning MS ms of CPU time), CPU time of the process per call, "
          f"{args.rounds} rounds x {args.calls} calls; real: the same with the kernels above")
    print(f"{'model':>5} {'mode':>9} {'spin ms':>7} {'eager min ms':>12} {'extra min us':>12} "
          f"{'extra med us':>12} {'real min us':>11} {'real med us':>11}")
    with StandInKernels() as stand_in:
        for ms in args.floor:
            stand_in.spin = ms / 1e3
            for key in keys:  # the stand-ins keep their results on the first call
                call(*variants[key], key[1])
            times, _ = time_variants(variants, keys, args)
            for model, mode, name in keys:
                if name != "eager":
                    continue
                eager, compiled = times[(model, mode, "eager")], times[(model, mode, "compiled")]
                real = [cpu[(model, mode, n)] for n in ("eager", "compiled")]
                print(f"{model:>5} {mode:>9} {ms:7.1f} {min(eager) * 1e3:12.3f} "
                      f"{(min(compiled) - min(eager)) * 1e6:12.1f} "
                      f"{(statistics.median(compiled) - statistics.median(eager)) * 1e6:12.1f} "
                      f"{(min(real[1]) - min(real[0])) * 1e6:11.1f} "
                      f"{(statistics.median(real[1]) - statistics.median(real[0])) * 1e6:11.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=3, help="calls per round and variant")
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="input size I")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=["lstm", "lm"], choices=["lstm", "lm"])
    parser.add_argument("--modes", nargs="+", default=["inference", "training"],
                        choices=["inference", "training"])
    parser.add_argument("--torch", action="store_true", help="also time torch.nn.LSTM (eager)")
    parser.add_argument("--guards", action="store_true",
                        help="also count the compiled models' guards and time their check")
    parser.add_argument("--fixed-cost", action="store_true",
                        help="also measure PyTorch's own cost per compiled call (a trivial "
                             "module, warm and after the LSTM's kernels)")
    parser.add_argument("--spins", type=float, nargs="+", default=[], metavar="MS",
                        help="with --fixed-cost: also time the trivial module after MS ms of "
                             "spinning in Python (how the caches decay with time alone)")
    parser.add_argument("--floor", type=float, nargs="+", default=[], metavar="MS",
                        help="also time compiled minus eager with stand-in kernels that spin MS "
                             "ms of CPU time (e.g. 0 and the kernels' time)")
    args = parser.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"rnnfast {rnnfast.__version__}, thread pool {rnnfast.get_thread_pool()}; "
          f"torch {torch.__version__}; Python {platform.python_version()}; "
          f"{args.threads} thread(s); load average {os.getloadavg()[0]:.2f}")
    print(f"T={args.T} B={args.B} I={args.size} H={args.hidden} vocab={args.vocab}, "
          f"{args.rounds} rounds x {args.calls} calls per variant, float32")
    variants = {}  # (model, mode, name) -> (module, input)
    for kind in args.models:
        torch.manual_seed(0)
        eager = build(kind, rt.LSTM, args)
        compiled = torch.compile(eager, fullgraph=True)
        x = inputs(kind, args)
        start = time.perf_counter()
        check(eager, compiled, x, kind)
        print(f"{kind}: compiled (forward and backward) and checked against eager in "
              f"{time.perf_counter() - start:.1f} s")
        peers = [("eager", eager), ("compiled", compiled)]
        if args.torch:
            theirs = build(kind, torch.nn.LSTM, args)
            theirs.load_state_dict(eager.state_dict())
            peers.append(("torch.nn eager", theirs))
        for mode in args.modes:
            for name, module in peers:
                for _ in range(2):  # warm-up (inference compiles its own graph here)
                    call(module, x, mode)
                variants[(kind, mode, name)] = (module, x)
    keys = list(variants)
    cpu, wall = time_variants(variants, keys, args)
    print(f"{'model':>5} {'mode':>9} {'variant':>15} {'cpu min ms':>10} {'cpu med ms':>10} "
          f"{'wall min ms':>11} {'eager/this (cpu min)':>20} {'(cpu med)':>9}")
    for key in keys:
        eager_key = key[:2] + ("eager",)
        lo, med = min(cpu[key]), statistics.median(cpu[key])
        print(f"{key[0]:>5} {key[1]:>9} {key[2]:>15} {lo * 1e3:10.3f} {med * 1e3:10.3f} "
              f"{min(wall[key]) * 1e3:11.3f} {min(cpu[eager_key]) / lo:20.3f} "
              f"{statistics.median(cpu[eager_key]) / med:9.3f}")
    if args.guards:
        for kind in args.models:
            guard_cost(kind, variants, args)
    if args.fixed_cost:
        kind = "lstm" if "lstm" in args.models else args.models[0]
        fixed_cost(kind, variants[(kind, args.modes[0], "eager")][0], inputs(kind, args), args)
    if args.floor:
        floor(variants, cpu, args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
