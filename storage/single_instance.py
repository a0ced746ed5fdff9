"""SQLite is single-instance: a second engine on the same file fails at start, in one line.

`serve` takes `sqlite_instance_lock(url)` when it starts on SQLite and keeps it until the
engine stops (hot standby is PostgreSQL's job, `storage.lease`).

SQLite's own locks cannot do this: they guard single transactions, and the engine's pool
holds several connections in one process. So the engine takes an exclusive OS lock on a
file next to the database (`<database>.instance-lock`). The operating system drops it when
the process ends, however it ends, so a crash never leaves a stale lock to clean up. The
file holds the holder's pid, for the error message only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Final

from sqlalchemy.engine import make_url

from core.errors import ConfigurationError

LOCK_SUFFIX: Final = ".instance-lock"
_LOCK_OFFSET: Final = 1 << 16
"""Windows locks a byte range, which others then cannot read: lock one past the pid."""


class InstanceLock:
    """An exclusive lock on a SQLite store, held until `release()` or the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        # flock, not fcntl locks: it is per open file, so a second opener in the same
        # process is refused too (fcntl locks would let it through).
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def sqlite_instance_lock(database_url: str) -> InstanceLock | None:
    """Lock the SQLite store of `database_url` for this process; None for other databases
    and in-memory SQLite (nothing to share).

    Raises ConfigurationError, in one line, when another engine holds the store.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database).resolve()
    path = database.with_name(database.name + LOCK_SUFFIX)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            raise ConfigurationError(
                f"another engine instance{holder} already uses the SQLite store {database}: "
                "SQLite is single-instance; run one engine per file, or use PostgreSQL "
                "(DATABASE_URL) for a hot standby"
            )
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        os.close(fd)
        raise
    return InstanceLock(path, fd)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


__all__ = ["LOCK_SUFFIX", "InstanceLock", "sqlite_instance_lock"]
