"""The issue's target table from several runs of ``bench/compare.py`` on one machine.

On a shared machine an entry of one run can be slowed by other work (the † marks of the
compare table); this takes the JSON of each run and, per entry (threads, cell, shape, mode),
lists the speed-up against PyTorch of every run and their best, the speed-up against ONNX
Runtime, PyTorch's own throughput as a percentage of the same run's SGEMM roofline and the
bound that implies (100 / that percentage: the speed-up rnnfast would have at 100% of the
roofline, so no kernel can reach 1.5x where it is below 1.5), and whether 1.5x was met.

    python bench/best_of_runs.py bench/out/compare-A.json bench/out/compare-B.json [--threads 2]

Writes the Markdown table to standard output.
"""
import argparse
import json
from pathlib import Path

TARGET = 1.5


def entries(run):
    """The float32 rows (a run with ``--precision bfloat16`` has others: not this table's)."""
    for row in run["rows"]:
        if row.get("precision", "float32") != "float32":
            continue
        yield (row["threads"], row["cell"], row["shape"], row["mode"]), row


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="JSON files written by bench/compare.py")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="only these thread counts")
    args = p.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.runs]
    keys = []
    by_run = []
    for run in runs:
        table = dict(entries(run))
        by_run.append(table)
        keys.extend(k for k in table if k not in keys)
    if args.threads:
        keys = [k for k in keys if k[0] in args.threads]

    names = " / ".join(chr(ord("A") + i) for i in range(len(runs)))
    print(f"| threads | cell | shape | mode | speed-up vs torch, runs {names} | best | "
          f"vs ORT (best) | torch % of SGEMM (best run) | bound at 100% of SGEMM | "
          f"{TARGET}x met? |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|")
    met = {}
    for key in keys:
        rows = [table.get(key) for table in by_run]
        speedups = [r.get("speedup_torch_over_rnnfast") if r else None for r in rows]
        ort = [r.get("speedup_onnxruntime_over_rnnfast") if r else None for r in rows]
        known = [s for s in speedups if s is not None]
        if not known:
            continue
        best = max(known)
        best_row = rows[speedups.index(best)]
        torch_pct = best_row["peers"]["torch"]["pct_of_sgemm"]
        bound = 100.0 / torch_pct if torch_pct else None
        ort_known = [s for s in ort if s is not None]
        ok = best >= TARGET
        met.setdefault(key[0], []).append(ok)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
              f"{' / '.join(fmt(s) for s in speedups)} | {fmt(best)} | "
              f"{fmt(max(ort_known)) if ort_known else '—'} | {torch_pct:.0f} | {fmt(bound)} | "
              f"{'yes' if ok else 'no'} |")
    print()
    for threads, oks in sorted(met.items()):
        print(f"{threads} thread(s): {sum(oks)} of {len(oks)} entries at {TARGET}x or more "
              f"(best of the runs).")


if __name__ == "__main__":
    main()
