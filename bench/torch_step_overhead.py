"""The cost of one T=1, B=1 step through ``rnnfast.torch.LSTM`` against ``torch.nn.LSTM``'s
own call, with and without autograd: the bridge's per-call overhead (argument checks, the
NumPy views, the autograd node) is what such a step is made of.

    python bench/torch_step_overhead.py [--rounds 30] [--calls 300] [--input 32 --hidden 64]

Both modules hold the same weights and run on one thread; the states are passed in, as in
generation. Three modes: ``no_grad`` (``torch.no_grad()``), ``autograd`` (the forward with
parameters that require a gradient: the autograd node is built) and ``backward`` (that forward
and a backward of the output's sum). The variants alternate in one process, each round timing
``--calls`` calls of every variant; the minimum per call over the rounds is printed
(microseconds), with the load average before and after. ``--clock cpu`` (the default) times the
calling thread's CPU time (``time.thread_time``), which a busy machine disturbs far less than
the wall clock (``--clock wall``).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

_env.use_inplace_build()

import torch  # noqa: E402

import rnnfast  # noqa: E402
import rnnfast.torch as rt  # noqa: E402


MODES = ("no_grad", "autograd", "backward")


def per_call(module, x, hx, mode, calls, clock):
    with torch.enable_grad() if mode != "no_grad" else torch.no_grad():
        start = clock()
        for _ in range(calls):
            y = module(x, hx)[0]
            if mode == "backward":
                y.sum().backward()
        return (clock() - start) / calls * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args(argv)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    rnnfast.set_num_threads(1)
    ours = rt.LSTM(args.input, args.hidden)
    theirs = torch.nn.LSTM(args.input, args.hidden)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 1, args.input)
    hx = (torch.zeros(1, 1, args.hidden), torch.zeros(1, 1, args.hidden))
    for a, b in zip(ours(x, hx)[0], theirs(x, hx)[0]):
        torch.testing.assert_close(a, b)
    print(f"load average before: {os.getloadavg()}")
    best = {}
    for _ in range(args.rounds):
        for name, module in (("rnnfast.torch.LSTM", ours), ("torch.nn.LSTM", theirs)):
            for mode in MODES:
                key = (mode, name)
                best[key] = min(best.get(key, float("inf")),
                                per_call(module, x, hx, mode, args.calls, clock))
    print(f"I={args.input} H={args.hidden} T=1 B=1, {args.clock} time, minimum of "
          f"{args.rounds} rounds x {args.calls} calls")
    for mode in MODES:
        ours, theirs = best[(mode, "rnnfast.torch.LSTM")], best[(mode, "torch.nn.LSTM")]
        for name in ("rnnfast.torch.LSTM", "torch.nn.LSTM"):
            print(f"{name:20s} {mode:9s} {best[(mode, name)]:8.1f} us per call")
        print(f"{'':20s} {mode:9s} torch.nn / rnnfast.torch = {theirs / ours:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
