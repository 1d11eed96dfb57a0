"""Writing output files without destroying anything: the one writer every emkit output uses.

A regular file is written atomically (a temporary file in the target's folder, fsync, then
``os.replace``), so a crash never leaves it half-written.  A symbolic link is followed: its
target is written (atomically) and the link is kept.  A device, a pipe (FIFO) or a socket is
written directly (renaming a temporary file over it would replace it), and ``-`` is standard
output.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

STDOUT = "-"

__all__ = ["STDOUT", "is_stdout", "same_file", "write_bytes"]


def is_stdout(path: str | os.PathLike) -> bool:
    """Whether ``path`` is ``-``, the usual name of standard output."""
    return os.fspath(path) == STDOUT


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether writing ``a`` would overwrite ``b``: the same regular file (through symbolic
    and hard links), the same path where neither exists yet, or both ``-``.  Devices and pipes
    are never "the same file" (writing one destroys nothing)."""
    if is_stdout(a) or is_stdout(b):
        return is_stdout(a) and is_stdout(b)
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    try:
        st_a, st_b = os.stat(real_a), os.stat(real_b)
    except OSError:  # one does not exist (yet)
        return real_a == real_b
    return stat.S_ISREG(st_a.st_mode) and (st_a.st_dev, st_a.st_ino) == (st_b.st_dev, st_b.st_ino)


def write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path``: ``-`` is standard output, symbolic links are followed
    (their target is written, the link kept), devices and pipes are written directly, and
    regular files atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    if is_stdout(path):
        sys.stdout.flush()  # text written before stays before
        stream = sys.stdout.buffer
        stream.write(payload)
        stream.flush()
        return
    try:
        mode = os.stat(path).st_mode  # through links: what the path finally names
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder: give a file name to write to")
    if mode is not None and (not stat.S_ISREG(mode) or _names_a_descriptor(path)):
        # device, FIFO, socket, or /dev/stdout and kin (→ /proc/self/fd/1 → a pipe, or the
        # file the shell opened): written through the given path, in place
        with open(path, "wb") as fh:
            fh.write(payload)
        return
    target = Path(os.path.realpath(path))  # the end of a chain of links (kept as they are)
    _replace_atomically(target, payload, None if mode is None else stat.S_IMODE(mode))


def _names_a_descriptor(path: str | os.PathLike) -> bool:
    """``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``: a name for an open descriptor."""
    return os.path.abspath(path).startswith(("/dev/", "/proc/"))


def _replace_atomically(path: Path, payload: bytes, mode: int | None) -> None:
    """``mode``: the permissions of the file replaced (kept), ``None`` for a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is None:  # mkstemp creates 0600: give a new file the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
