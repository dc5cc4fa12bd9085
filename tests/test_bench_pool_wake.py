"""bench/pool_wake.py runs end to end on a tiny product: one row per gap with positive times,
a count of late calls out of the rounds and the caller's share. Nothing is timed."""
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "pool_wake.py"


def run(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "3", "--settles", "0",
                           "0.0001", "--m", "40", "--k", "8", "--n", "16", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pool_wake_bench_runs():
    out = run()
    assert "pool rnnfast, 2 threads" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0.0000"],
                                                                            ["0.0001"])]
    assert len(rows) == 2
    for row in rows:
        assert float(row[1]) > 0 and float(row[2]) >= float(row[1])
        late, rounds = row[3].split("/")
        assert rounds == "3" and 0 <= int(late) <= 3
        assert float(row[4]) > 0  # the caller's median share of the one-thread time


def test_pool_wake_bench_needs_two_threads():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--threads", "1"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "--threads: expected at least 2" in proc.stderr
