"""One trainer per run folder: an exclusive ``fcntl.flock`` on ``RUN/.lock``, held for the whole run.

The lock file records the holder (``pid`` and ``host``), so a second trainer on the same folder is
refused with one line naming who holds it. The lock goes with the process (a killed trainer leaves
the file, not the lock), so a stale ``.lock`` never blocks a resume. Advisory locks on network file
systems depend on the server; on systems without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import TracebackType

from ddnsr.errors import SettingError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolderBusy", "RunLock"]


class RunFolderBusy(SettingError):
    """Another trainer holds the run folder's lock."""


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock`` exclusively, or raises :class:`RunFolderBusy`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None or self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunFolderBusy(f"{self.path.parent}: another trainer is using this run folder ({holder}); "
                                "wait for it to end or choose another --run-dir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'pid N on host H' from the lock file, or a plain phrase when it cannot be read."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        return f"pid {int(info['pid'])} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
