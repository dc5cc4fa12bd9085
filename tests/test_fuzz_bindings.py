"""A short run of the fuzzer of every rnnfast._C entry point (tests/fuzz_bindings.py): valid
calls (odd layouts, empty batches, integers near the limits) accepted with the results of the
plain call and of the reference, invalid ones refused with a message naming the argument.
CI runs it also under AddressSanitizer and UndefinedBehaviorSanitizer (tests/sanitize.sh).
RNNFAST_FUZZ_CALLS sets the calls per entry point (the scheduled run: 100000)."""
import json
import os
import signal
import sys

import pytest

import fuzz_bindings

CALLS = int(os.environ.get("RNNFAST_FUZZ_CALLS", "150"))


@pytest.mark.parametrize("entry", sorted(fuzz_bindings.CASES))
def test_fuzz_entry_point(entry):
    counts = fuzz_bindings.fuzz(CALLS, seed=20, only=[entry])[entry]
    assert counts["accepted"] + counts["refused"] == CALLS
    # Both kinds of call are drawn, so the run tests acceptance as well as refusal.
    assert counts["accepted"] >= CALLS // 10, counts
    assert counts["refused"] >= CALLS // 20, counts


def test_the_fuzzer_knows_every_entry_point():
    assert set(fuzz_bindings.entry_points()) == set(fuzz_bindings.CASES)


def test_shards_split_the_entry_points():
    parts = [fuzz_bindings.shard(fuzz_bindings.CASES, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(fuzz_bindings.CASES)
    assert all(parts) and len(set(map(tuple, parts))) == 3
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(fuzz_bindings.argparse.ArgumentTypeError, match="--shard"):
            fuzz_bindings.shard(fuzz_bindings.CASES, bad)


def test_a_split_run_makes_the_calls_of_the_whole_run():
    whole = fuzz_bindings.fuzz(40, seed=5, only=["gemm", "conv1d_forward"])
    part = fuzz_bindings.fuzz(40, seed=5, only=["conv1d_forward"])
    assert {k: whole["conv1d_forward"][k] for k in ("accepted", "refused")} == \
        {k: part["conv1d_forward"][k] for k in ("accepted", "refused")}


def test_keep_going_logs_a_wrong_outcome_and_runs_the_next_entry_point(monkeypatch, tmp_path):
    # An entry point whose calls are "invalid" yet accepted: a wrong outcome at call 0.
    monkeypatch.setitem(fuzz_bindings.CASES, "accepts_anything",
                        lambda rng: ("accepts_anything", lambda: None,
                                     fuzz_bindings.Err(ValueError, "x: expected")))
    with pytest.raises(fuzz_bindings.Failure, match="accepted an invalid call"):
        fuzz_bindings.fuzz(5, 0, only=["accepts_anything", "get_num_threads"])
    counts = fuzz_bindings.fuzz(5, 0, only=["accepts_anything", "get_num_threads"],
                                keep_going=True)
    assert "call 0 of accepts_anything" in counts["accepts_anything"]["failure"]
    assert "failure" not in counts["get_num_threads"]
    assert counts["get_num_threads"]["accepted"] + counts["get_num_threads"]["refused"] == 5
    log = tmp_path / "log.jsonl"
    assert fuzz_bindings.main(["--calls", "5", "--only", "accepts_anything", "get_num_threads",
                               "--keep-going", "--log", str(log)]) == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["entry"], r["outcome"], r["calls"]) for r in records] == \
        [("accepts_anything", "FAILED", 0), ("get_num_threads", "ok", 5)]


@pytest.mark.skipif(os.name != "posix", reason="a child killed by a signal")
def test_isolated_entry_points_log_their_counts_and_crashes(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    args = fuzz_bindings.argparse.Namespace(calls=30, seed=3, log=str(log), jobs=2)
    env_path = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(fuzz_bindings.__file__)),
                                           os.environ.get("PYTHONPATH")) if p)

    def command(args, entry):
        if entry == "crashes":  # a child that dies as a sanitizer report or a segfault ends it
            return [sys.executable, "-c", "import os; os.abort()"]
        cmd = fuzz_bindings.child_command(args, entry)
        return ["env", f"PYTHONPATH={env_path}"] + cmd

    status = fuzz_bindings.run_isolated(args, ["get_num_threads", "crashes", "active_isa"],
                                        command)
    assert status == 1
    records = {r["entry"]: r for r in map(json.loads, log.read_text().splitlines())}
    assert set(records) == {"get_num_threads", "crashes", "active_isa"}
    assert records["crashes"]["outcome"] == "crashed"
    assert records["crashes"]["exit_status"] == -signal.SIGABRT
    for entry in ("get_num_threads", "active_isa"):
        r = records[entry]
        assert r["outcome"] == "ok" and r["calls"] == 30 == r["accepted"] + r["refused"], r
    assert "crashes" in capsys.readouterr().err


def test_heartbeat_reports_the_counts_of_the_running_entry_point():
    beats = []
    counts = fuzz_bindings.fuzz(30, 1, only=["gemm"], heartbeat_seconds=0.0,
                                heartbeat=lambda entry, tally: beats.append((entry, tally)))
    done = [t["accepted"] + t["refused"] for _, t in beats]
    assert {e for e, _ in beats} == {"gemm"} and done == sorted(done) and 0 <= done[-1] < 30
    assert all(t["seconds"] >= 0 and t["cpu_seconds"] >= 0 for _, t in beats)
    assert counts["gemm"]["cpu_seconds"] > 0
