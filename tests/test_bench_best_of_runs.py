"""bench/best_of_runs.py: per entry, every run's speed-up, their best, the roofline bound of the
best run, and the count of entries at the target."""
import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "best_of_runs.py"


def row(threads, cell, speedup, torch_pct, ort=None):
    return {"threads": threads, "cell": cell, "shape": "medium", "mode": "inference",
            "speedup_torch_over_rnnfast": speedup, "speedup_onnxruntime_over_rnnfast": ort,
            "peers": {"torch": {"pct_of_sgemm": torch_pct}}}


def test_best_of_runs_table(tmp_path):
    runs = [
        [row(2, "lstm", 1.2, 40.0, 0.9), row(2, "gru", 1.6, 80.0), row(1, "rnn", 3.0, 10.0)],
        [row(2, "lstm", 1.7, 50.0, 1.1), row(2, "gru", 1.1, 90.0), row(1, "rnn", 2.0, 12.0)],
    ]
    paths = []
    for i, rows in enumerate(runs):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps({"rows": rows}))
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, paths), "--threads", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| 2 ")]
    table = {cells[1].strip(): [c.strip() for c in cells] for cells in lines}
    assert set(table) == {"lstm", "gru"}  # the 1-thread entry is left out
    # lstm: best 1.70 from the second run, whose torch share is 50% -> bound 2.00; ORT best 1.10
    assert table["lstm"][4:] == ["1.20 / 1.70", "1.70", "1.10", "50", "2.00", "yes"]
    # gru: best 1.60 from the first run (torch at 80% -> bound 1.25); no ORT figure
    assert table["gru"][4:] == ["1.60 / 1.10", "1.60", "—", "80", "1.25", "yes"]
    assert "2 thread(s): 2 of 2 entries at 1.5x or more" in proc.stdout
