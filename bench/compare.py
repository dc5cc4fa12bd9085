"""rnnfast against PyTorch CPU and ONNX Runtime, side by side in one process.

    python bench/compare.py --threads 1 2
    python bench/compare.py --quick
    python bench/compare.py --cells lstm gru --shapes medium large --repeats 10
    python bench/compare.py --step-only --threads 1 2
    python bench/compare.py --precision float32 bfloat16 --cells lstm gru --shapes large xl

For each thread count, cell, shape and mode it checks every peer's result against PyTorch in
float64 (DESIGN.md's float32 tolerances), then times it: warm-up calls, then the median of
``--repeats`` calls timed with ``time.perf_counter``. The machine's large-SGEMM throughput at
the same thread count (``torch.matmul``, 2048^3, float32) is measured in the same run as the
roofline. ONNX Runtime (inference only) runs when onnx and onnxruntime are installed. Then the
single-step generation latency (one LSTM step per call, B=1, H=256; see ``_step.py``). Prints
Markdown tables; writes them with the raw numbers (JSON) and, when matplotlib is importable, a
bar chart of the speedups (PNG) to ``bench/out/``.

``--precision bfloat16`` (issue 16; with ``float32``, both in one run, a column says which):
rnnfast with ``precision="bfloat16"`` on the active bfloat16 path (``RNNFAST_BF16_ISA``; in
inference with a weights token, as bench/bf16.py) against PyTorch under
``torch.autocast("cpu", dtype=torch.bfloat16)``; each is checked by issue 16's rule (every output
and gradient within twice the RMS error of PyTorch under autocast, against PyTorch float64) and
its column of "max error" is that ratio. ONNX Runtime has no bfloat16 row. The roofline and the
"% of SGEMM" stay float32's: a bfloat16 row above 100% is faster than float32 products could be.
"""
import argparse
import gc
import json
import resource
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import _env

_env.use_inplace_build()

import numpy as np  # noqa: E402

from _peers import (PEERS, TorchPeer, check, check_bf16, checked_run,  # noqa: E402
                    compute_oracle, make_case, peers_for)
from _shapes import CELLS, MODES, QUICK_SHAPES, SHAPES, flops  # noqa: E402
from _step import measure_steps, step_markdown  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
SGEMM_N = 2048
DEFAULT_REPEATS = 5
QUICK_REPEATS = 3
WARMUP = 1
# A call this slow is its own warm-up: the checked call before the timed ones is enough.
SLOW_CALL_SECONDS = 1.0
# Timed calls whose slowest is this many times the fastest are marked in the table.
NOISY_SPREAD = 2.0
BUSY_LOAD = 0.5
# The ratio columns: peer time / rnnfast time, for these peers (key in --peers: column label).
RATIO_PEERS = {"torch": "torch", "onnxruntime": "ORT"}
PRECISIONS = ("float32", "bfloat16")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[_env.threads_from_env()],
                   help=f"thread counts to run (default: ${_env.THREADS_ENV} or {_env.DEFAULT_THREADS})")
    p.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    p.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=None,
                   help=f"default: all ({', '.join(SHAPES)}); with --quick: {', '.join(QUICK_SHAPES)}")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS),
                   help="default: all; one missing optional package leaves its column empty")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["float32"],
                   help="float32 (default) and/or bfloat16 (rnnfast precision='bfloat16' vs "
                        "PyTorch under autocast bfloat16)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed calls per measurement, median reported (default {DEFAULT_REPEATS}, "
                        f"--quick {QUICK_REPEATS})")
    p.add_argument("--quick", action="store_true", help="small shapes and fewer repeats")
    p.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default bench/out)")
    step = p.add_mutually_exclusive_group()
    step.add_argument("--no-step", action="store_true", help="skip the single-step latency table")
    step.add_argument("--step-only", action="store_true",
                      help="only the single-step latency table (no roofline, no sequences)")
    args = p.parse_args(argv)
    if args.shapes is None:
        args.shapes = list(QUICK_SHAPES) if args.quick else list(SHAPES)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.repeats < 1:
        p.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if any(n < 1 for n in args.threads):
        p.error(f"--threads: expected integers >= 1, got {args.threads}")
    return args


def time_calls(call, warmup: int, repeats: int) -> tuple:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones, with each call's
    process CPU seconds (every thread's, spinning included) and minor page faults.

    Garbage is collected before the warm-up, not after it: a collection walks every object and
    would leave the first timed call with cold caches.
    """
    gc.collect()
    for _ in range(warmup):
        call()
    times, cpu, faults = [], [], []
    for _ in range(repeats):
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu_start = time.process_time()
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
        del result
    return times, cpu, faults


def sgemm_roofline(repeats: int) -> float:
    """GFLOP/s of torch.matmul on 2048x2048 float32 matrices at the current thread count.

    The fastest of the timed calls, not the median: a roofline is the best the machine does,
    and a call slowed by other work on the machine would lower the ceiling.
    """
    import torch

    rng = np.random.default_rng(0)
    a64 = rng.standard_normal((SGEMM_N, SGEMM_N))
    b64 = rng.standard_normal((SGEMM_N, SGEMM_N))
    a = torch.from_numpy(a64.astype(np.float32))
    b = torch.from_numpy(b64.astype(np.float32))
    c = torch.empty(SGEMM_N, SGEMM_N)

    torch.matmul(a, b, out=c)
    expected = a64[:8].astype(np.float32).astype(np.float64) @ b64.astype(np.float32).astype(np.float64)
    err = np.max(np.abs(c[:8].numpy() - expected)) / np.max(np.abs(expected))
    if err > 1e-4:
        raise AssertionError(f"torch.matmul SGEMM check failed: relative error {err:.3g}")

    times, _, _ = time_calls(lambda: torch.matmul(a, b, out=c), warmup=2, repeats=max(repeats, 5))
    return 2 * SGEMM_N**3 / min(times) / 1e9


def available_peers(names: list, precision: str = "float32") -> tuple:
    """The names among ``names`` whose peer can run here at ``precision``, and why each other
    one cannot."""
    usable, missing = [], {}
    peers = peers_for(precision)
    for name in names:
        if name not in peers:
            missing[name] = f"no {precision} peer"
            continue
        unavailable = getattr(peers[name], "unavailable", None)
        reason = unavailable() if unavailable else None
        if reason:
            missing[name] = reason
        else:
            usable.append(name)
    return usable, missing


def measure(args, peer_names: dict) -> tuple:
    """Rooflines per thread count and one row per precision x thread count x cell x shape x
    mode. ``peer_names``: the usable peers' names per precision."""
    rooflines = {}
    for n in args.threads:
        _env.set_threads(n)
        rooflines[n] = sgemm_roofline(args.repeats)
        print(f"SGEMM {SGEMM_N}^3 float32, {n} thread(s): {rooflines[n]:.1f} GFLOP/s", file=sys.stderr)

    rows = []
    for cell_name in args.cells:
        for shape_name in args.shapes:
            case = make_case(CELLS[cell_name], SHAPES[shape_name])
            oracle = compute_oracle(case)
            for precision in args.precision:
                peers = [peers_for(precision)[name] for name in peer_names[precision]]
                if precision == "bfloat16":
                    yardstick = TorchPeer(np.float32, autocast=True).prepare(case, "training")
                    yardstick = yardstick.extract(yardstick.call())
                    checked = lambda *a: check_bf16(*a, yardstick)  # noqa: E731
                else:
                    checked = check
                rows += measure_case(args, case, precision, peers, checked, oracle, rooflines)
    return rooflines, rows


def measure_case(args, case, precision: str, peers: list, checked, oracle: dict,
                 rooflines: dict) -> list:
    """The rows of one case at one precision: per thread count and mode, each peer checked
    (``checked(peer, case, mode, result, oracle)``), then timed."""
    rows = []
    for n in args.threads:
        _env.set_threads(n)
        for mode in args.modes:
            count = flops(case.cell, case.shape, mode)
            row = {"threads": n, "cell": case.cell.name, "shape": case.shape.name,
                   "mode": mode, "precision": precision, "T": case.shape.T,
                   "B": case.shape.B, "I": case.shape.I, "H": case.shape.H,
                   "flop": count, "peers": {}}
            for peer in peers:
                if mode not in peer.modes:
                    continue
                run, first, errors = checked_run(peer, case, mode, checked, oracle)
                warmup = 0 if first > SLOW_CALL_SECONDS else WARMUP
                times, cpu, faults = time_calls(run.call, warmup, args.repeats)
                median = statistics.median(times)
                row["peers"][peer.name] = {
                    "median_ms": median * 1e3,
                    "times_ms": [t * 1e3 for t in times],
                    "cpu_ms": [t * 1e3 for t in cpu],
                    "minor_faults": faults,
                    "checked_call_ms": first * 1e3,
                    "warmup_calls": warmup,
                    "gflops": count / median / 1e9,
                    "pct_of_sgemm": 100 * count / median / 1e9 / rooflines[n],
                    # float32: max relative error; bfloat16: RMS error / PyTorch autocast's
                    ("max_rel_error" if precision == "float32"
                     else "rms_error_over_autocast"): errors,
                }
            derive(row)
            row["peak_rss_mib_so_far"] = _env.peak_rss_mib()
            rows.append(row)
            print(progress_line(row), file=sys.stderr)
    return rows


def ratio_key(peer: str) -> str:
    return f"speedup_{peer}_over_rnnfast"


def derive(row: dict) -> None:
    """The table's ratio columns: peer time / rnnfast time, for each peer measured with rnnfast."""
    peers = row["peers"]
    for name in RATIO_PEERS:
        if "rnnfast" in peers and name in peers:
            row[ratio_key(name)] = peers[name]["median_ms"] / peers["rnnfast"]["median_ms"]


def progress_line(row: dict) -> str:
    times = ", ".join(f"{name} {p['median_ms']:.3f} ms" for name, p in row["peers"].items())
    return (f"[{row['threads']} thr] {row['cell']} {row['shape']} {row['mode']} "
            f"{row['precision']}: {times}")


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _noisy(peer_result: dict) -> bool:
    times = peer_result["times_ms"]
    return max(times) > NOISY_SPREAD * min(times)


def _time_cell(peer_result: dict) -> str:
    return f"{peer_result['median_ms']:.3f}" + (" †" if _noisy(peer_result) else "")


def _peer_title(names) -> str:
    titles = {"torch": "PyTorch CPU", "onnxruntime": "ONNX Runtime"}
    return " and ".join(titles[n] for n in names if n in titles) or "nothing"


def markdown_header(info: dict, args, rooflines: dict, missing: dict) -> list:
    lines = [
        f"## rnnfast vs {_peer_title(args.peers)}: recurrent kernels, "
        f"{' and '.join(args.precision)}",
        "",
        f"- CPU: {info['cpu_model']}, {info['physical_cores']} cores, "
        f"{info['usable_cpus']} usable by this process",
        f"- Date: {info['date_utc']}; 1-minute load average before / after the run: "
        f"{info['load_average_1min']} / {_env.load_average()}",
        f"- Versions: rnnfast {info['rnnfast']} (ISA {info['rnnfast_isa']}), torch {info['torch']}, "
        f"onnxruntime {info['onnxruntime']} (onnx {info['onnx']}), numpy {info['numpy']}, "
        f"Python {info['python']}",
    ]
    if rooflines:
        roof = "; ".join(f"{n} thread{'s' if n > 1 else ''}: {g:.1f} GFLOP/s"
                         for n, g in rooflines.items())
        lines += [
            f"- SGEMM roofline (torch.matmul {SGEMM_N}^3 float32, fastest of {max(args.repeats, 5)} "
            f"calls): {roof}",
            f"- Each time: median of {args.repeats} calls timed with time.perf_counter, after one "
            f"call checked against PyTorch float64 and {WARMUP} warm-up call (none after a checked "
            f"call over {SLOW_CALL_SECONDS:g} s); the JSON also has each timed call's process "
            f"CPU time (every thread's) and minor page faults",
        ]
    if "onnxruntime" in args.peers and "onnxruntime" not in missing:
        lines.append("- ONNX Runtime: one LSTM/GRU/RNN node built with onnx.helper from the same "
                     "weights, InferenceSession on the CPU, intra_op_num_threads = threads, "
                     "inter_op 1; inference only")
    if "bfloat16" in args.precision:
        lines.append(f"- bfloat16: rnnfast precision=\"bfloat16\" on its {info['rnnfast_bf16_isa']} "
                     f"path (inference with a weights token) vs PyTorch under torch.autocast(\"cpu\", "
                     f"dtype=torch.bfloat16), float32 parameters; each checked within 2x the RMS "
                     f"error of PyTorch under autocast (against float64)")
    lines += [f"- {name} not measured: {reason}" for name, reason in missing.items()]
    lines.append("")
    return lines


def markdown_table(args, rows: list) -> list:
    names = args.peers
    ratios = [n for n in RATIO_PEERS if n in names]
    header = ["threads", "cell", "shape (T,B,I,H)", "mode", "precision"]
    header += [f"{n} ms" for n in names]
    header += [f"speedup vs {RATIO_PEERS[n]}" for n in ratios]
    header += ["rnnfast GFLOP/s", "rnnfast % of SGEMM"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 5 else "---:" for i in range(len(header))) + "|"]
    for r in rows:
        peers = r["peers"]
        shape = f"{r['shape']} ({r['T']},{r['B']},{r['I']},{r['H']})"
        cells = [str(r["threads"]), r["cell"], shape, r["mode"], r["precision"]]
        cells += [_time_cell(peers[n]) if n in peers else "—" for n in names]
        cells += [_fmt(r.get(ratio_key(n)), ".2f") for n in ratios]
        rnnfast = peers.get("rnnfast")
        cells.append(_fmt(rnnfast and rnnfast["gflops"], ".1f"))
        cells.append(_fmt(rnnfast and rnnfast["pct_of_sgemm"], ".1f"))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if ratios:
        lines.append("speedup vs X = X ms / rnnfast ms (above 1: rnnfast is faster); "
                     "— where a peer lacks the mode or was not measured.")
        lines.append("")
    if any(_noisy(p) for r in rows for p in r["peers"].values()):
        lines.append(f"† the timed calls of this entry spread by more than {NOISY_SPREAD:g}x "
                     f"(slowest / fastest): other work on the machine got in the way; the JSON "
                     f"has every call's time.")
        lines.append("")
    return lines


def _label(row: dict) -> str:
    bf16 = " bf16" if row["precision"] == "bfloat16" else ""
    return f"{row['cell']} {row['shape']} {row['mode']}{bf16}"


def chart(path: Path, rows: list) -> str:
    """Bar chart of the speedups, one bar per peer and thread count; a message if matplotlib is
    absent."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib to get one)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(peer, n) for peer in RATIO_PEERS for n in sorted({r["threads"] for r in rows})
              if any(ratio_key(peer) in r and r["threads"] == n for r in rows)]
    if not series:
        return "no row has rnnfast and a peer: no chart"
    labels = list(dict.fromkeys(_label(r) for r in rows
                                if any(ratio_key(p) in r for p in RATIO_PEERS)))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(labels) * max(1, len(series) / 2)), 5))
    for k, (peer, n) in enumerate(series):
        by_label = {_label(r): r[ratio_key(peer)] for r in rows
                    if r["threads"] == n and ratio_key(peer) in r}
        xs = [i + k * width for i, label in enumerate(labels) if label in by_label]
        ax.bar(xs, [by_label[label] for label in labels if label in by_label], width,
               label=f"vs {RATIO_PEERS[peer]}, {n} thread{'s' if n > 1 else ''}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("speedup (peer time / rnnfast time)")
    ax.set_title("rnnfast vs PyTorch CPU and ONNX Runtime, float32 (above 1: rnnfast faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"chart: {path}"


def main(argv=None) -> int:
    args = parse_args(argv)
    info = _env.machine_info()
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    log(f"rnnfast from {info['rnnfast_path']}")
    busy = info["load_average_1min"]
    if busy is not None and busy > BUSY_LOAD:
        log(f"warning: load average {busy} before starting: other processes will skew the "
            f"timings, multi-threaded ones most")
    peer_names, missing = {}, {}
    for precision in args.precision:
        peer_names[precision], missed = available_peers(args.peers, precision)
        suffix = "" if args.precision == ["float32"] else f" ({precision})"
        missing.update({name + suffix: reason for name, reason in missed.items()})
    for name, reason in missing.items():
        log(f"{name} not measured: {reason}")
    rooflines, rows = ({}, []) if args.step_only else measure(args, peer_names)
    float32_peers = set(available_peers(args.peers)[0])
    steps = [] if args.no_step else measure_steps(float32_peers, args.threads, args.repeats, log=log)
    peak_rss = _env.peak_rss_mib()

    lines = markdown_header(info, args, rooflines, missing)
    if not args.step_only:
        lines += markdown_table(args, rows)
    if steps:
        lines.append(step_markdown(steps, args.repeats))
    lines += [f"Peak RSS of the benchmark process: {peak_rss:.0f} MiB", ""]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".md").write_text(table)
    record = {
        "machine": info,
        "settings": {"threads": args.threads, "cells": args.cells, "shapes": args.shapes,
                     "modes": args.modes, "peers": args.peers, "peers_missing": missing,
                     "repeats": args.repeats, "warmup": WARMUP, "quick": args.quick,
                     "step": not args.no_step, "step_only": args.step_only, "dtype": "float32",
                     "precision": args.precision},
        "sgemm_roofline_gflops": {str(n): g for n, g in rooflines.items()},
        "rows": rows,
        "step_latency": steps,
        "peak_rss_mib": peak_rss,
    }
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1))
    log(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    if rows:
        log(chart(stem.with_suffix(".png"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
