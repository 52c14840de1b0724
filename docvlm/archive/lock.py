"""One run at a time per destination: an OS file lock beside the destination.

Two runs writing one destination would interleave their sink writes and manifest commits
(each trims the other's uncommitted bytes), so a run holds an exclusive ``flock`` on
``NAME.lock`` beside the destination (``Output.lock_file``) from before it opens the manifest
until it has closed the sink. The kernel drops the lock when the process dies, ``kill -9``
included, so a stale lock never blocks a rerun. The file also names its holder (pid,
host, start time) so the second run can say who holds it. POSIX only (``fcntl``);
elsewhere the lock is a no-op.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from docvlm.errors import DestinationBusyError

__all__ = ["DestinationBusyError", "DestinationLock"]


def _holder(path: Path) -> str:
    try:
        found = json.loads(path.read_text(encoding="utf-8") or "{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(found["started"])))
        return f"pid {found['pid']} on {found['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class DestinationLock:
    """Held while a run writes ``destination`` (its lock file is ``path``; take it with
    ``Output.lock()``); ``wait`` blocks for the holder instead of raising
    ``DestinationBusyError``."""

    def __init__(self, path: Path, destination: str, *, wait: bool = False) -> None:
        self.destination = destination
        self.path = path
        self.wait = wait
        self._descriptor: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not self.wait:
                os.close(descriptor)
                raise DestinationBusyError(
                    f"{self.destination}: another run is writing here ({_holder(self.path)}); "
                    "wait for it (--wait) or choose another --out"
                ) from None
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except BaseException:
            os.close(descriptor)
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the flock
            self._descriptor = None

    def __enter__(self) -> DestinationLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
