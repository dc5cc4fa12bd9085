"""What the epoch benchmarks against a peer framework share (``epochs_vs_torch.py``,
``epochs_vs_keras.py``): their arguments, the header line, the per-example progress line,
the seconds per epoch of a run and the results table."""
import argparse

import numpy as np

import _env


def make_parser(doc, names, default_epochs):
    """``--examples``, ``--epochs`` (default ``default_epochs``, 1 with ``--quick``),
    ``--threads``, ``--seed``, ``--quick``; the description is the doc's first line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--examples", nargs="+", choices=names, default=names)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default {default_epochs} (--quick: 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small data, 1 epoch")
    parser.set_defaults(default_epochs=default_epochs)
    return parser


def parse(parser, argv=None):
    """The arguments, with ``epochs`` resolved, checked, and the thread count applied to
    rnnfast and torch."""
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else args.default_epochs)
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be >= 1")
    _env.set_threads(args.threads)
    return args


def header(title, args, extra=""):
    """``# title`` and the line of machine, threads, versions, load and data."""
    import rnnfast
    import torch

    info = _env.machine_info()
    return (f"# {title}\n\n{info['cpu_model']}, {info['usable_cpus']} usable CPUs, "
            f"{args.threads} threads (rnnfast {rnnfast.get_num_threads()}, torch "
            f"{torch.get_num_threads()}), rnnfast {info['rnnfast']} ({info['rnnfast_isa']}), "
            f"NumPy {info['numpy']}, Python {info['python']}; {info['date_utc']}; load average "
            f"at the start {info['load_average_1min']}; {args.epochs} epoch(s) each, "
            f"{'quick data' if args.quick else 'the examples default data'}{extra}\n")


def steady(times):
    """Seconds per epoch: the mean of the epochs after the first (the only one if alone)."""
    return float(np.mean(times[1:] if len(times) > 1 else times))


def progress(row, peer, label):
    """``name: rnnfast epochs [...] s, <label> [...] s`` of one result row."""
    return (f"{row['example']}: rnnfast epochs {[round(t, 3) for t in row['rnnfast_epochs']]} s, "
            f"{label} {[round(t, 3) for t in row[peer + '_epochs']]} s")


def table(rows, peer, label, metric=False):
    """The Markdown table of result rows: sizes, seconds per epoch of rnnfast and of the peer
    (``rows[i][peer + "_s"]``), their ratio (above 1: rnnfast is faster), each side's last
    loss and, with ``metric``, each side's metric."""
    head = (f"| example | train samples x shape | batch | rnnfast s/epoch | {label} s/epoch | "
            f"{label} / rnnfast | rnnfast loss | {label} loss |")
    if metric:
        head += f" metric | rnnfast | {label} |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        shape = "x".join(str(d) for d in r["sample_shape"])
        line = (f"| {r['example']} | {r['samples']} x ({shape}) | {r['batch']} | "
                f"{r['rnnfast_s']:.4g} | {r[peer + '_s']:.4g} | "
                f"{r[peer + '_s'] / r['rnnfast_s']:.2f} | {r['rnnfast_loss']:.4f} | "
                f"{r[peer + '_loss']:.4f} |")
        if metric:
            line += (f" {r['metric']} | {r['rnnfast_metric']:.4f} | "
                     f"{r[peer + '_metric']:.4f} |")
        lines.append(line)
    return "\n".join(lines)
