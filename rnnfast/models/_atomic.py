"""Atomic file writes, and the removal of the temporary files that killed writes leave.

``atomic_write(path, write)`` writes a temporary file in the target's folder, flushes and
fsyncs it, renames it over the target with ``os.replace`` and fsyncs the folder: whatever
happens, ``path`` holds its previous content or the complete new one. A process killed between
creating its temporary file and the rename leaves that file behind; the next write to the same
target removes it.

The temporary file of a target ``<name>`` is ``.<name>.<random>.<writer>-<pid>.tmp``: ``pid`` is
the writing process and ``writer`` 8 hex digits naming the place where that pid is meaningful
(host, boot and PID namespace). A write removes such a file of its own target when its writer
is gone, i.e. it has the same ``writer`` and
- no process ``pid`` exists (or it is a zombie), or
- process ``pid`` started after the file was last modified (the pid was reused);

and it removes any such file, and the ``.<name>.<random>.tmp`` files of earlier versions, not
modified for ``STALE_SECONDS`` (a day): a live writer modifies its file until the rename, which
follows at once. A file of a live writer is never removed, nor are other files of the folder.
"""
import contextlib
import hashlib
import os
import re
import socket
import stat
import tempfile
import time

__all__ = ["atomic_write", "stale_temporaries", "STALE_SECONDS"]

STALE_SECONDS = 24 * 3600
_START_SLACK = 2.0  # seconds: the precision of a process's start time from /proc


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _writer_tag():
    """8 hex digits naming where this process's pid means this process: host, boot, PID
    namespace."""
    try:
        pid_ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_ns = ""
    key = "\0".join([socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pid_ns])
    return hashlib.blake2s(key.encode(), digest_size=4).hexdigest()


_WRITER = _writer_tag()


def _boot_time():
    for line in _read("/proc/stat").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def _process_gone(pid, modified):
    """Whether process ``pid`` of this host and namespace cannot be the writer of a file last
    modified at ``modified`` (seconds since the epoch): it does not exist, is a zombie, or
    started after that. Unsure answers are False."""
    if os.name != "posix" or pid <= 0:
        return False  # os.kill(pid, 0) is not a probe elsewhere
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        pass  # it exists (another user's process), or the probe failed: alive
    fields = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
    if len(fields) < 20:
        return False  # not Linux, or it ended just now: the next write decides
    if fields[0] in ("Z", "X"):
        return True
    boot = _boot_time()
    if boot is None:
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started > modified + _START_SLACK


def stale_temporaries(path, *, now=None, max_age=STALE_SECONDS):
    """The temporary files of target ``path`` left by writes that can no longer finish (their
    writer process is gone, or they were not modified for ``max_age`` seconds)."""
    folder, name = os.path.split(os.path.abspath(path))
    ours = re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.([0-9a-f]{{8}})-([0-9]+)\.tmp")
    legacy = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")
    now = time.time() if now is None else now
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        match = ours.fullmatch(entry.name)
        if match is None and legacy.fullmatch(entry.name) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        gone = (match is not None and match.group(1) == _WRITER and
                _process_gone(int(match.group(2)), info.st_mtime))
        if gone or now - info.st_mtime > max_age:
            found.append(entry.path)
    return sorted(found)


def _remove_stale_temporaries(path):
    for tmp in stale_temporaries(path):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _new_file_mode():
    """The mode ``open()`` gives a new file: 0o666 without the process's umask."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write):
    """Write a file through ``write(binary_file)`` so that ``path`` holds either its previous
    content or the complete new one: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace``'d over ``path`` (and the folder fsync'ed). Returns ``path``
    as a str. The temporary file is removed if anything fails before the rename, and the
    temporary files of ``path`` that killed writes left are removed first (see the module)."""
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder!r} of {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a folder")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                               suffix=f".{_WRITER}-{os.getpid()}.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return path
