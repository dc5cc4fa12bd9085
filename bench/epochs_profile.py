"""Where a seed example's training epoch spends its CPU time: the C++ kernels against the Python
around them (layers' glue, loss, clipping, optimiser, copies, fit's bookkeeping).

For each example of ``epochs_vs_torch.py`` (the examples' default data and models) it trains
one epoch to warm up, then ``--rounds`` epochs timed by ``time.process_time`` (CPU time of the
whole process, both threads of the kernels' pool included: robust on a busy machine where wall
time is not), and prints the minimum; with ``--profile``, one more epoch under cProfile
(timer: process CPU time) and the ``--top`` functions by own time, with the share of the
epoch spent inside ``rnnfast._C`` (the kernels) and outside it.

    python bench/epochs_profile.py                                  # every example, CPU time
    python bench/epochs_profile.py --examples char_rnn --profile    # and where it goes
    python bench/epochs_profile.py --quick --profile
    python bench/epochs_profile.py --examples imdb_sentiment --layers --threads 2
    python bench/epochs_profile.py --examples imdb_sentiment --ab-conv-pool --rounds 5
    python bench/epochs_profile.py --examples imdb_sentiment --ab-conv-pool-forward --rounds 5

``--layers`` times one more epoch with every layer's ``forward`` and ``backward`` (and the
calls that run a layer with the next one: ``LAYER_METHODS``) and the optimiser's ``step`` wrapped: wall (``perf_counter``) and process CPU milliseconds per batch of
each, the rest of the epoch (loss, metrics, fit's loop) as the difference, and CPU / wall (about
the thread count for a part that keeps every thread busy, 1 for a serial one).

The epoch is what ``epochs_vs_torch.py`` times: ``fit(..., epochs=1)`` on the whole training
set (its argument checks included), or the translation example's ``train_epoch``.
"""
import argparse
import cProfile
import pstats
import sys
import time

import numpy as np

import _env

_env.use_inplace_build()
sys.path.insert(0, str(_env.REPO_ROOT / "examples"))

import rnnfast  # noqa: E402

NAMES = ["reuters_topics", "imdb_sentiment", "stock_forecast", "char_rnn", "translate", "wavenet"]


def make_epoch(name, quick, seed=0):
    """A function running one training epoch of the example ``name``, a description, and the
    Keras-style model it trains (None for the translation example's own loop)."""
    example = __import__(name)
    if name == "translate":
        (src, tgt, _), _, (src_tok, tgt_tok), _ = example.load_data(
            pairs=150 if quick else 8000, seed=seed)
        sizes = dict(embedding_dim=16, hidden=32) if quick else {}
        model, opt, loss = example.build_model(src_tok.vocab_size, tgt_tok.vocab_size + 2,
                                               seed=seed, **sizes)
        rng = np.random.default_rng(seed)

        def epoch():
            model.train()
            example.train_epoch(model, opt, loss, src, tgt, 64, rng)
        return epoch, f"{len(src)} pairs, batch 64", None
    if name == "wavenet":
        if quick:
            sequences, length, channels, dilations = 4, 1000, 16, [2 ** i for i in range(8)]
        else:
            sequences, length, channels, dilations = 16, 16000, 32, [2 ** i for i in range(10)] * 2
        train, _, _ = example.load_data(None, None, length, sequences, seed)
        x, y = example.inputs_of(train[:, :-1]), train[:, 1:]
        model, _ = example.build_model(dilations, channels, seed=seed)
        batch = 1
    elif name == "reuters_topics":
        (x, y), _, categories, _ = example.load_data(samples=200 if quick else 5000, seed=seed)
        model, batch = example.build_model(categories, seed=seed), 100
    elif name == "imdb_sentiment":
        (x, y), _, _ = example.load_data(samples=200 if quick else 8000, seed=seed)
        model, batch = example.build_model(seed), 100
    elif name == "stock_forecast":
        splits, info = example.load_data(days=300 if quick else 1000, seed=seed)
        (x, y), _, _ = splits
        model, batch = example.build_model(len(info["names"]), seed=seed), 32
    elif name == "char_rnn":
        (x, y), tokenizer, _, _ = example.load_data(sentences=20 if quick else 400, seed=seed)
        model, batch = example.build_model(len(tokenizer.word_index) + 1, 32, seed=seed), 128
    else:
        raise ValueError(name)

    def epoch():
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return epoch, f"{len(x)} x {x.shape[1:]}, batch {batch}", model


def cpu_seconds(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def profile_table(epoch, top):
    """cProfile of one epoch (process CPU time): the top functions by own time and the share
    spent inside the extension's functions."""
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(epoch)
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    kernels = 0.0
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        where = f"{path.rsplit('/', 2)[-2:][-1]}:{line}({func})" if path != "~" else func
        if "rnnfast._C" in func:
            kernels += tottime
        rows.append((tottime, ncalls, cumtime, where))
    rows.sort(reverse=True)
    lines = [f"profiled epoch: {total:.3f} s CPU; inside rnnfast._C: {kernels:.3f} s "
             f"({100 * kernels / total:.1f}%), outside: {total - kernels:.3f} s",
             "| own CPU s | % | calls | cumulative s | function |", "|---|---|---|---|---|"]
    for tottime, ncalls, cumtime, where in rows[:top]:
        lines.append(f"| {tottime:.4f} | {100 * tottime / total:.1f} | {ncalls} | {cumtime:.3f} "
                     f"| {where} |")
    return "\n".join(lines)


# The layers' methods the per-layer table times: the plain ones, and those that run two layers in
# one call (an Embedding with the Dropout after it, a Conv1D with its MaxPooling1D).
LAYER_METHODS = ("forward", "forward_dropped", "forward_pooled", "backward", "backward_dropped",
                 "backward_through_pool")


class _Clock:
    """Wall (perf_counter) and process CPU (process_time) summed over the calls of one part."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - w
                self.cpu += time.process_time() - c
                self.calls += 1
        return timed


def layer_table(epoch, model):
    """Per-batch wall and process-CPU milliseconds of each layer's forward and backward, of the
    optimiser's step and of the rest of the epoch (loss, metrics, fit's bookkeeping), from one
    epoch with every part timed (the instance methods wrapped, removed afterwards)."""
    clocks = {}
    wrapped = []
    for i, layer in enumerate(model.layers):
        for method in LAYER_METHODS:
            if not hasattr(layer, method):
                continue
            clock = clocks.setdefault(f"{i} {type(layer).__name__}.{method}", _Clock())
            setattr(layer, method, clock.wrap(getattr(layer, method)))
            wrapped.append((layer, method))
    step = clocks.setdefault("optimizer step", _Clock())
    model.optimizer.step = step.wrap(model.optimizer.step)
    wrapped.append((model.optimizer, "step"))
    whole = _Clock()
    try:
        whole.wrap(epoch)()
    finally:
        for obj, method in wrapped:
            delattr(obj, method)
    batches = max(step.calls, 1)  # one optimiser step per batch
    lines = [f"{batches} batches, one epoch, every part timed",
             "| part | wall ms/batch | CPU ms/batch | CPU/wall |", "|---|---|---|---|"]
    parts_wall = parts_cpu = 0.0
    for name, c in clocks.items():
        parts_wall += c.wall
        parts_cpu += c.cpu
        lines.append(f"| {name} | {1e3 * c.wall / batches:.3f} | {1e3 * c.cpu / batches:.3f} | "
                     f"{c.cpu / max(c.wall, 1e-12):.2f} |")
    lines.append(f"| rest (loss, metrics, fit) | {1e3 * (whole.wall - parts_wall) / batches:.3f} | "
                 f"{1e3 * (whole.cpu - parts_cpu) / batches:.3f} | |")
    lines.append(f"| epoch | {1e3 * whole.wall / batches:.3f} | {1e3 * whole.cpu / batches:.3f} | "
                 f"{whole.cpu / max(whole.wall, 1e-12):.2f} |")
    return "\n".join(lines)


def conv_pool_ab(epoch, model, rounds, forward=False):
    """In-process A/B: epochs alternating the fused and the separate Conv1D -> MaxPooling1D
    backward (``Sequential._fuse_conv_pool``; the forward's fusion needs it, so this switches
    both), or with ``forward`` the forward alone (``_fuse_conv_pool_forward``: one
    ``conv1d_max_pool1d_forward`` call or the two layers' calls; the backward fused in both), the
    minimum process CPU and wall of each."""
    flag = "_fuse_conv_pool_forward" if forward else "_fuse_conv_pool"
    runs = {True: [], False: []}
    try:
        for _ in range(rounds):
            for fused in (True, False):
                setattr(model, flag, fused)
                wall, cpu = time.perf_counter(), time.process_time()
                epoch()
                runs[fused].append((time.process_time() - cpu, time.perf_counter() - wall))
    finally:
        setattr(model, flag, True)
    if forward:
        names = ("fused forward (conv1d_max_pool1d_forward)", "separate forward (two calls)")
        lines = ["| conv -> pool forward | min CPU s/epoch | min wall s/epoch |", "|---|---|---|"]
    else:
        names = ("fused (winners only)", "separate (dense)")
        lines = ["| conv -> pool backward | min CPU s/epoch | min wall s/epoch |", "|---|---|---|"]
    for fused, name in zip((True, False), names):
        lines.append(f"| {name} | {min(c for c, _ in runs[fused]):.3f} | "
                     f"{min(w for _, w in runs[fused]):.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", choices=NAMES, default=NAMES)
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs (minimum printed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="and one epoch under cProfile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--layers", action="store_true",
                        help="and one epoch with every layer's forward/backward timed (wall and "
                             "CPU ms per batch; Keras-style models only)")
    parser.add_argument("--quick", action="store_true", help="small data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ab-conv-pool", action="store_true",
                        help="and --rounds pairs of epochs alternating the Sequential's Conv1D -> "
                             "MaxPooling1D backward in one call (fused) and as two calls "
                             "(separate): min process CPU and wall seconds of each")
    parser.add_argument("--ab-conv-pool-forward", action="store_true",
                        help="and --rounds pairs of epochs alternating the Sequential's Conv1D -> "
                             "MaxPooling1D forward in one call and as the two layers' calls: min "
                             "process CPU and wall seconds of each")
    args = parser.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    info = _env.machine_info()
    print(f"{info['cpu_model']}, {args.threads} threads, rnnfast {info['rnnfast']} "
          f"({info['rnnfast_isa']}), {info['date_utc']}, load average "
          f"{info['load_average_1min']}", flush=True)
    results = {}
    for name in args.examples:
        epoch, what, model = make_epoch(name, args.quick, args.seed)
        epoch()  # warm-up: one-time costs (first build, first check, allocations)
        times = [cpu_seconds(epoch) for _ in range(args.rounds)]
        results[name] = min(times)
        print(f"{name} ({what}): CPU s per epoch {[round(t, 3) for t in times]}, min "
              f"{min(times):.3f}", flush=True)
        if args.profile:
            print(profile_table(epoch, args.top), flush=True)
        if args.layers and model is not None:
            print(layer_table(epoch, model), flush=True)
        if args.ab_conv_pool and model is not None:
            print(conv_pool_ab(epoch, model, args.rounds), flush=True)
        if args.ab_conv_pool_forward and model is not None:
            print(conv_pool_ab(epoch, model, args.rounds, forward=True), flush=True)
    print(f"load average at the end {_env.load_average()}")
    return results


if __name__ == "__main__":
    main()
