"""The cost of one T=1, B=1 step through ``rnnfast.torch.LSTM`` against ``torch.nn.LSTM``'s
own call, with and without autograd: the bridge's per-call overhead (argument checks, the
NumPy views, the autograd node) is what such a step is made of.

    python bench/torch_step_overhead.py [--rounds 30] [--calls 300] [--input 32 --hidden 64]

Both modules hold the same weights and run on one thread. The variants alternate in one
process, each round timing ``--calls`` calls of every variant; the minimum per call over the
rounds is printed (microseconds), with the load average before and after.
"""
import argparse
import os
import time

import torch

import rnnfast
import rnnfast.torch as rt


def per_call(module, x, hx, grad, calls):
    with torch.enable_grad() if grad else torch.no_grad():
        start = time.perf_counter()
        for _ in range(calls):
            module(x, hx)
        return (time.perf_counter() - start) / calls * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args(argv)
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
            for grad in (False, True):
                key = (name, "autograd" if grad else "no_grad")
                best[key] = min(best.get(key, float("inf")),
                                per_call(module, x, hx, grad, args.calls))
    for (name, mode), value in sorted(best.items()):
        print(f"{name:20s} {mode:9s} {value:8.1f} us per call")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
