"""One writer per run directory: a run holds a lock on the directory it writes.

The rule: ``pretrain``, ``finetune``, ``demo`` and ``compare`` hold an exclusive lock on
``DIR/.lock`` (:func:`run_dir_lock`, or the :func:`locks_run_dir` decorator) from start to
end. A second run into the same directory fails at once with one line naming the holder,
as the holder wrote itself into the file (process id, host, start time). The lock is the
operating system's (``flock``), so it ends with the holder however the holder ends, even
killed with SIGKILL: a lock left by a dead process is simply taken, and as its file still
names the old holder, the new one says so in a one-line note. A holder that ends normally
deletes the file (and the directory, if it made it and nothing else is in it), then
unlocks it; a process that locked a file meanwhile finds it is no longer the one in the
directory and starts again.

Why ``flock`` and not a pid file created with ``O_EXCL``: a pid file outlives a killed
holder, and whether its process still runs can only be checked on the holder's own host,
so on a cluster's shared filesystem a stale file could never be told from a live one.
``flock`` locks are honoured across hosts on NFS (Linux emulates them with NFS byte-range
locks), GPFS, BeeGFS, and Lustre mounted with ``-o flock`` (the usual cluster setting); if
the holder's host dies, the file server frees its lock when the host's lease runs out.
Where a filesystem cannot lock at all (Lustre with ``noflock``, some FUSE filesystems),
the run goes on with a note that nothing guards the directory.

Only rank 0 of a distributed run takes the lock; the other ranks (told by the launchers'
``RANK``, ``LOCAL_RANK``, ``NODE_RANK``, ``SLURM_PROCID``, ... environment variables) write
through it. A process that already holds a directory's lock may take it again (a
comparison running its stages inside its own directory): it is counted, not refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from playspeed.errors import PlayspeedError

LOCK_NAME = ".lock"
# Environment variables in which launchers give a process its (global, node or local) rank.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID",
                  "JSM_NAMESPACE_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
# flock errors that mean "this filesystem cannot lock", not "someone holds it".
_CANNOT_LOCK = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}

_held: dict[str, int] = {}  # lock files this process holds -> times taken

F = TypeVar("F", bound=Callable[..., Any])


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of its launch (a process launched alone is)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


@contextmanager
def run_dir_lock(directory: str | Path, *,
                 note: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock on ``directory`` (created if need be) for the ``with`` block.

    Raises :class:`PlayspeedError` when another process holds it; ``note`` (default: a line
    on stderr) hears of a lock taken over from a dead process, or of a filesystem that
    cannot lock.
    """
    note = note or (lambda line: print(line, file=sys.stderr))
    directory = Path(directory)
    if not is_rank_zero():
        yield
        return
    path = directory / LOCK_NAME
    key = os.path.realpath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    made = not directory.exists()
    try:
        fd = _lock(path)
    except OSError as err:
        if err.errno not in _CANNOT_LOCK:
            raise
        note(f"note: {directory}: this filesystem cannot lock ({os.strerror(err.errno)}); "
             "nothing stops a second run from writing here")
        yield
        return
    previous = _read_holder(fd)
    if previous:
        note(f"note: {directory}: taking over from {previous}, which ended without "
             "releasing it")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on host {socket.gethostname()}, since "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        os.unlink(path)  # before unlocking: see the module's docstring
        if made:
            with contextlib.suppress(OSError):  # kept when the run wrote anything
                directory.rmdir()
        os.close(fd)


def _lock(path: Path) -> int:
    """An open descriptor of the lock file at ``path``, locked by this process."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd) or "a process that is just starting"
            os.close(fd)
            raise PlayspeedError(f"{path.parent}: another run is writing here ({holder}); "
                                 "wait for it to end, or choose another --out") from None
        except OSError:
            os.close(fd)
            raise
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder deleted it as it ended: lock the new one


def locks_run_dir(function: F) -> F:
    """Decorator: ``function`` runs holding the lock on its ``out`` argument."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with run_dir_lock(signature.bind(*args, **kwargs).arguments["out"]):
            return function(*args, **kwargs)

    return locked  # type: ignore[return-value]


def _read_holder(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
