"""The standby drills' tools: the instances' output lines, and a partition that cuts one
instance off the database (Linux: its sessions are found by the ports of its sockets)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from drills.engine_kill import ChildProcess, DrillProcessError

RUN_TIMEOUT = 300.0


@dataclass
class Lines:
    """Every stdout line of the drill's processes, as (instance, line), in arrival order."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def follow(self, process: ChildProcess, name: str) -> None:
        def pump() -> None:
            while True:
                line = process.lines.get()
                with self.changed:
                    if line is None:
                        self.ended.add(name)
                    else:
                        self.seen.append((name, line))
                    self.changed.notify_all()
                if line is None:
                    return

        threading.Thread(target=pump, daemon=True, name=f"drill-lines-{name}").start()

    def wait(self, what: str, done: Callable[[], bool], timeout: float = RUN_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DrillProcessError(f"standby drill: {what}: not within {timeout} s")
                self.changed.wait(left)

    def of(self, name: str, prefix: str) -> list[str]:
        return [line for who, line in list(self.seen) if who == name and line.startswith(prefix)]

    def count(self, name: str, prefix: str) -> int:
        return len(self.of(name, prefix))

    def times(self, name: str, prefix: str) -> list[float]:
        return [float(line.split()[1]) for line in self.of(name, prefix)]

    def seen_line(self, name: str, prefix: str) -> bool:
        if name in self.ended and not self.of(name, prefix):
            raise DrillProcessError(f"instance {name} ended before {prefix}")
        return bool(self.of(name, prefix))


_PARTITION = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND "
    "(client_port = ANY(:ports) OR pid IN (SELECT backend_pid FROM account_leases "
    "WHERE owner = :owner))"
)


def _local_ports(pid: int) -> list[int]:
    """The local TCP ports of process `pid`'s sockets (Linux /proc): its database
    sessions are those whose `client_port` is one of them."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Partition:
    """Ends every database session of one instance, again and again, until stopped."""

    def __init__(self, engine: Engine, instance: str, pid: int, interval: float = 0.05) -> None:
        self._engine = engine
        self._pid = pid
        self._params: dict[str, Any] = {"owner": instance}
        self._interval = interval
        self._stop = threading.Event()
        self.ended = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="drill-partition")

    def __enter__(self) -> Partition:
        self.cut()  # the first cut before this returns: the fault's time is now
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def cut(self) -> None:
        self._params["ports"] = _local_ports(self._pid)
        with self._engine.begin() as connection:
            self.ended += len(connection.execute(_PARTITION, self._params).all())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # the drill's own session may be busy
                self.cut()


__all__ = ["RUN_TIMEOUT", "Lines", "Partition"]
