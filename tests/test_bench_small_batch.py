"""bench/small_batch.py runs end to end on tiny shapes: it checks the small-batch loops against
the general loops (bit for bit) and torch.nn before timing, and prints one row per cell, batch
and mode. Nothing is timed."""
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "small_batch.py"


def test_small_batch_bench_runs():
    proc = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--rounds", "1",
                           "--inner", "1", "--steps", "4", "--batches", "1", "6", "--input", "3",
                           "--hidden", "5", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and
            line.split("|")[1].strip() in ("lstm", "gru", "rnn")]
    assert len(rows) == 3 * 2 * 2  # cells x batches x modes
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] in ("inference", "training")
        assert all(float(v) > 0 for v in cells[3:])


def test_small_batch_bench_split_column():
    proc = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--rounds", "1",
                           "--inner", "1", "--steps", "4", "--batches", "1", "--input", "3",
                           "--hidden", "40", "--threads", "2", "--split", "--no-torch",
                           "--cells", "lstm"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| cell"))
    assert "split steps us" in header and "small / split" in header
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| lstm")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 + 3 + 2 and all(float(v) > 0 for v in cells[3:])
