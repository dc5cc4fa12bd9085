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
