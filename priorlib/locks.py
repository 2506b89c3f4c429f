"""Exclusive locks on run folders (and run-store keys): one writer at a time.

    with folder_lock(out, wait=False):   # a second writer fails at once, naming the holder
        ...                              # (wait=True: it waits for the holder to finish instead)

The lock is an OS file lock (``filelock``, ``flock`` on Unix) on ``<folder>/.priorlib.lock``; the kernel
drops it when the holding process dies, so a killed run never leaves a held lock behind. The holder
writes its PID, host, start time and command into the lock file, for the message a second writer
gets; what a dead holder wrote is stale and is overwritten by the next one to take the lock.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import LockedError

LOCK_NAME = ".priorlib.lock"
LOCK_FILES = (LOCK_NAME,)


def holder(folder: Path) -> dict | None:
    """What the lock file says about its holder (``None`` if nothing readable)."""
    try:
        info = json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"PID {info.get('pid')} on {info.get('host')} (since {when}: {info.get('command', '?')})"


def _note_holder(fd: int) -> None:
    """Called by filelock with the lock file's descriptor once the lock is ours."""
    argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": " ".join(argv)[:200]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, wait: bool | float = False, what: str = "run folder",
                hint: str = "wait for it to finish, or pass --wait to queue behind it"):
    """Hold the exclusive lock of ``folder`` for the ``with`` block (the folder is created if missing,
    and removed again on leaving if it was created here and nothing but the lock was put in it).

    ``wait=False``: fail at once with :class:`LockedError` if another process holds it; ``True``: wait
    as long as it takes; a number: wait at most that many seconds.
    """
    folder = Path(folder)
    created = not folder.exists()
    lock = FileLock(str(folder / LOCK_NAME), on_acquired=_note_holder)
    timeout = 0 if wait is False else (-1 if wait is True else float(wait))
    for attempt in range(100):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=timeout)
            break
        except Timeout:
            how = "" if wait is False else f" after waiting {timeout:g} s"
            raise LockedError(f"{what} {folder} is locked by {_describe(holder(folder))}{how}; {hint}") from None
        except FileNotFoundError:  # the holder failed before writing anything and removed the folder: again
            if attempt == 99:
                raise
    try:
        yield
    finally:
        empty = created and all(p.name in LOCK_FILES for p in folder.iterdir())
        if empty:  # a run that failed before writing anything leaves no trace
            with contextlib.suppress(OSError):
                (folder / LOCK_NAME).unlink()
        lock.release()
        if empty:
            with contextlib.suppress(OSError):
                folder.rmdir()
