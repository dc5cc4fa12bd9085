"""The temporary files of killed saves: the next save to the same path removes those whose writer
is gone (dead, a zombie, its pid reused) or that were not modified for a day, and never a live
writer's file or another target's (rnnfast.models._atomic). tests/test_checkpoint_kill.py checks
the same on the files that SIGKILLed training runs leave."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from rnnfast.models import _atomic
from rnnfast.models.saving import atomic_write

from subprocess_env import python_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process probes are POSIX")


def temp_name(target, pid, writer=None, rand="k2x_9abq"):
    return f".{target}.{rand}.{writer or _atomic._WRITER}-{pid}.tmp"


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make(folder, name, age=0.0):
    path = folder / name
    path.write_bytes(b"PK\x03\x04 a partial save")
    if age:
        when = time.time() - age
        os.utime(path, (when, when))
    return path


def save(path, data=b"new"):
    atomic_write(path, lambda f: f.write(data))


def test_a_dead_writers_file_is_removed_by_the_next_save_to_its_target(tmp_path):
    pid = dead_pid()
    stale = make(tmp_path, temp_name("m.keras", pid))
    other_target = make(tmp_path, temp_name("n.keras", pid))
    prefix_target = make(tmp_path, temp_name("m.keras.bak", pid))
    unrelated = make(tmp_path, ".m.keras.notes.tmp")
    assert _atomic.stale_temporaries(tmp_path / "m.keras") == [str(stale)]
    save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_bytes() == b"new"
    assert not stale.exists()
    assert other_target.exists() and prefix_target.exists() and unrelated.exists()
    save(tmp_path / "n.keras")
    assert not other_target.exists() and prefix_target.exists()


def test_a_zombie_writers_file_is_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # exited, not yet reaped: a zombie
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the child did not become a zombie")
        os.kill(proc.pid, 0)  # the pid still answers
        stale = make(tmp_path, temp_name("m.keras", proc.pid))
        save(tmp_path / "m.keras")
        assert not stale.exists()
    finally:
        proc.wait()


def seconds_since_start():
    """How long ago this process started (from /proc, as the cleanup reads it)."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rpartition(")")[2].split()[19])
    return time.time() - (_atomic._boot_time() + ticks / os.sysconf("SC_CLK_TCK"))


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times: Linux")
def test_a_reused_pid_does_not_keep_a_dead_writers_file(tmp_path):
    # This process's pid, on a file last modified before this process started: its writer was
    # another process with the same pid.
    stale = make(tmp_path, temp_name("m.keras", os.getpid()), age=seconds_since_start() + 10)
    save(tmp_path / "m.keras")
    assert not stale.exists()


def test_a_live_writers_file_is_never_removed(tmp_path):
    # This process's own file (another thread's save) and a live child's.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        own = make(tmp_path, temp_name("m.keras", os.getpid()))
        other = make(tmp_path, temp_name("m.keras", child.pid, rand="bbbbbbbb"))
        save(tmp_path / "m.keras")
        assert own.exists() and other.exists()
        assert _atomic.stale_temporaries(tmp_path / "m.keras") == []
    finally:
        child.kill()
        child.wait()
    assert _atomic.stale_temporaries(tmp_path / "m.keras") == [str(other)]


def test_a_live_writer_paused_inside_its_save_finishes_it(tmp_path):
    """A child writes m.keras and pauses before the rename; this process saves m.keras
    meanwhile: the child's temporary file stays, and the child's rename then succeeds."""
    script = textwrap.dedent("""
        import sys
        from rnnfast.models.saving import atomic_write
        def write(f):
            f.write(b"child")
            print("WRITING", flush=True)
            sys.stdin.readline()
        atomic_write(sys.argv[1], write)
        print("DONE", flush=True)
    """)
    target = tmp_path / "m.keras"
    child = subprocess.Popen([sys.executable, "-c", script, str(target)], env=python_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "WRITING"
        temps = sorted(p.name for p in tmp_path.glob(".m.keras.*.tmp"))
        assert temps and temps[0].endswith(f"-{child.pid}.tmp")
        save(target, b"parent")
        assert sorted(p.name for p in tmp_path.glob(".m.keras.*.tmp")) == temps
        assert target.read_bytes() == b"parent"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "DONE"
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    assert target.read_bytes() == b"child"
    assert list(tmp_path.glob(".*.tmp")) == []


@pytest.mark.parametrize("name", [temp_name("m.keras", 4_000_000, writer="0badf00d"),
                                  ".m.keras.x7_kq2ma.tmp"],
                         ids=["another host or namespace", "an earlier version's name"])
def test_files_whose_writer_cannot_be_probed_go_after_a_day(tmp_path, name):
    young = make(tmp_path, name, age=_atomic.STALE_SECONDS - 600)
    save(tmp_path / "m.keras")
    assert young.exists()
    os.utime(young, (time.time() - _atomic.STALE_SECONDS - 600,) * 2)
    save(tmp_path / "m.keras")
    assert not young.exists()


def test_only_regular_files_are_removed(tmp_path):
    folder = tmp_path / temp_name("m.keras", dead_pid())
    folder.mkdir()
    link = tmp_path / temp_name("m.keras", dead_pid(), rand="cccccccc")
    link.symlink_to(tmp_path / "elsewhere")
    save(tmp_path / "m.keras")
    assert folder.is_dir() and link.is_symlink()


def test_the_temporary_file_names_its_writer(tmp_path):
    seen = []
    atomic_write(tmp_path / "w.npz", lambda f: seen.extend(os.listdir(tmp_path)))
    assert len(seen) == 1 and seen[0].startswith(".w.npz.")
    assert seen[0].endswith(f".{_atomic._WRITER}-{os.getpid()}.tmp")
    assert len(_atomic._WRITER) == 8 and int(_atomic._WRITER, 16) >= 0
