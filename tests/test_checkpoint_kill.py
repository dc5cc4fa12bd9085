"""Kill tests: a child process training with checkpoints (a backup per epoch, a checkpoint
rewritten every other batch, one per epoch) is killed with SIGKILL at random moments and inside
saves; after each kill every checkpoint file loads, training resumed from the backup ends
with the weights of an uninterrupted run, bit for bit, and the temporary files the killed saves
left are gone once their targets are saved again (by the resumed run, or by a later save)."""
import concurrent.futures
import os
import pathlib
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast.models import load_model
from rnnfast.models.saving import read_arrays

import checkpoint_child as child
from subprocess_env import python_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

SCRIPT = pathlib.Path(child.__file__).resolve()
RANDOM_RUNS = 14
SAVE_RUNS = 6  # killed inside a save: before the fsync of the data, before the rename


def launch(folder, hook="none", k=0):
    env = python_env(RNNFAST_NUM_THREADS=str(rnnfast.get_num_threads()))
    return subprocess.Popen([sys.executable, str(SCRIPT), str(folder), hook, str(k)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=folder, text=True)


def run(folder, plan):
    """Start a child; kill it as ``plan`` says: ("time", seconds after READY) or
    (hook, k): at the k-th call of os.fsync / os.replace. Returns "killed" or "finished"."""
    folder.mkdir()
    proc = launch(folder, *(("none", 0) if plan[0] == "time" else plan))
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        if plan[0] == "time":
            try:
                proc.wait(timeout=plan[1])
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            for line in proc.stdout:
                if line.startswith("SAVING"):
                    proc.kill()
                    break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
    assert proc.returncode in (0, -signal.SIGKILL), err
    return "killed" if proc.returncode == -signal.SIGKILL else "finished"


def reference(tmp_path):
    """The final weights and the duration of an uninterrupted child run."""
    folder = tmp_path / "reference"
    folder.mkdir()
    proc = launch(folder)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    seconds = float(out.split("DONE")[1])
    return read_arrays(folder / "final.npz"), seconds


def kill_and_resume(tmp_path, random_runs, save_runs, seed):
    expected, seconds = reference(tmp_path)
    rng = random.Random(seed)
    plans = [("time", rng.uniform(0.0, seconds)) for _ in range(random_runs)]
    saves_per_run = child.EPOCHS * (child.BATCHES // child.SAVE_FREQ + 2)
    # os.fsync is called for the data (odd calls) and then for the folder after the rename
    plans += [("fsync", 2 * rng.randrange(saves_per_run) + 1) for _ in range(save_runs // 2)]
    plans += [("replace", rng.randrange(1, saves_per_run)) for _ in range(save_runs // 2)]
    folders = [tmp_path / f"run{i:02d}" for i in range(len(plans))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run, folders, plans))
    report = {"killed": 0, "finished": 0, "left a temporary file": 0, "files loaded": 0,
              "temporary files": 0, "removed by the resumed run": 0, "removed by a later save": 0}
    for folder, plan, outcome in zip(folders, plans, outcomes):
        report[outcome] += 1
        temps = [p for p in folder.rglob(".*.tmp")]
        report["left a temporary file"] += bool(temps)
        if plan[0] != "time":  # killed with the new file written, before the rename
            assert outcome == "killed" and temps, (folder.name, plan)
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".") and path.suffix != ".npz":
                load_model(path)  # every checkpoint on disk is complete
                report["files loaded"] += 1
        report["temporary files"] += len(temps)
        # Resumes from the backup; its saves remove the temporary files of their targets.
        model = child.train(folder, checkpoint_files=True)
        state = model.state_dict()
        assert state.keys() == expected.keys()
        for key, value in expected.items():
            np.testing.assert_array_equal(state[key], value, err_msg=f"{folder.name}: {key}")
        left = sorted(folder.rglob(".*.tmp"))
        report["removed by the resumed run"] += len(temps) - len(left)
        for temp in left:  # targets the resumed run did not write again (an earlier epoch's)
            target = temp.parent / temp.name[1:].rsplit(".", 3)[0]  # .<name>.<random>.<writer>.tmp
            model.save(target)
            assert not temp.exists(), (folder.name, temp.name)
            report["removed by a later save"] += 1
        assert list(folder.rglob(".*.tmp")) == [], folder.name
    print(f"\n{len(plans)} runs: {report}")
    assert report["killed"] >= save_runs
    assert report["left a temporary file"] >= save_runs
    assert report["removed by the resumed run"] + report["removed by a later save"] == \
        report["temporary files"]


def test_sigkill_at_random_moments_and_inside_saves_then_resume(tmp_path):
    kill_and_resume(tmp_path, RANDOM_RUNS, SAVE_RUNS, seed=20)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RNNFAST_SLOW_TESTS"),
                    reason="100 kills take minutes; set RNNFAST_SLOW_TESTS=1")
def test_sigkill_many_runs(tmp_path):
    kill_and_resume(tmp_path, 80, 20, seed=21)
