"""One writer per run folder.

Two processes writing one run folder (a second ``--resume`` while the first
still runs, or two runs given the same ``-o``) would redo the same steps and
overwrite each other's files. The lock is an operating-system file lock
(``flock`` through ``filelock``), which the kernel releases when its process
dies, kill -9 included: a lock left behind by a killed run is free again by
itself and the next run takes it over. Beside it a small note says who holds
it (pid, host, start time); the note only feeds the messages, the lock never
trusts it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_write_json
from .errors import CoevoError

LOCK_NAME = ".coevo.lock"
HOLDER_NAME = ".coevo.lock.json"


class RunLock:
    """Held while a run writes its folder; a second holder gets a one-line error naming the first."""

    def __init__(self, run_dir: str | os.PathLike, log: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir)
        self._log = log or (lambda msg: None)
        self._lock = None

    def __enter__(self) -> "RunLock":
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.run_dir / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = read_holder(self.run_dir)
            what = ("a process it started still holds the lock; stop that process"
                    if _gone(holder) else "wait for that run to end (or stop it)")
            raise CoevoError(
                f"run folder {self.run_dir} is in use by {describe(holder)}; {what}, "
                f"then continue with: coevo run --resume {self.run_dir}"
            ) from None
        self._lock = lock
        try:
            previous = read_holder(self.run_dir)
            if previous is not None:
                self._log(f"note: {self.run_dir} was left locked by {describe(previous)}; taking the lock over")
            atomic_write_json(self.run_dir / HOLDER_NAME, {
                "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            })
        except BaseException:
            lock.release()
            self._lock = None
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            (self.run_dir / HOLDER_NAME).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None


def read_holder(run_dir: Path) -> dict | None:
    """The note of who holds (or held) the lock; None when there is none or it cannot be read."""
    try:
        holder = json.loads((Path(run_dir) / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict | None) -> str:
    if holder is None:
        return "another process (it left no note of its pid)"
    text = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
    return text + (" (no longer running)" if _gone(holder) else "")


def _gone(holder: dict | None) -> bool:
    """Whether the holder in the note is known to have ended: its pid is not alive on this host."""
    if holder is None or holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    import psutil

    return not psutil.pid_exists(holder["pid"])
