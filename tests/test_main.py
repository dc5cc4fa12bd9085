"""`python -m rnnfast` runs its demo and its configuration report."""
import subprocess
import sys

from subprocess_env import PACKAGE_PARENT, python_env

def run_module(*args):
    return subprocess.run([sys.executable, "-m", "rnnfast", *args], capture_output=True, text=True,
                          timeout=300, check=False, cwd=PACKAGE_PARENT, env=python_env())


def test_demo_checks_and_times_every_cell():
    done = run_module("--shape", "6", "3", "5", "7", "--repeats", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for cell in ("rnn", "lstm", "gru"):
        assert any(line.startswith(cell + " ") for line in lines), done.stdout
    assert "all results within the contract" in done.stdout
    assert "threads: 1" in done.stdout


def test_config_names_the_instruction_set():
    done = run_module("--config")
    assert done.returncode == 0, done.stderr
    assert "instruction set:" in done.stdout and "rnnfast " in done.stdout


def test_bad_arguments_are_usage_errors():
    """A thread count or size out of range is a usage error (exit 2, one line naming the
    option), never a traceback."""
    for args, option, message in [
        (("--threads", "0"), "--threads", "expected an integer in 1..1024, got 0"),
        (("--threads", "2000"), "--threads", "expected an integer in 1..1024, got 2000"),
        (("--threads", "two"), "--threads", "expected an integer, got 'two'"),
        (("--repeats", "0"), "--repeats", "expected an integer >= 1, got 0"),
        (("--shape", "4", "0", "5", "7"), "--shape", "expected an integer >= 1, got 0"),
    ]:
        done = run_module(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert f"argument {option}: {message}" in done.stderr, done.stderr
        assert done.stdout == ""
