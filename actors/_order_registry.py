"""The OrderActors the Supervisor watches, and the orphan executions dead ones left behind.

OrderActors are temporary children: one that dies is not restarted; its execution keeps
its last committed state and becomes an *orphan*, which recovery reconciles with the
terminal. An execution counts as live from just before its actor starts (so its first
write can never be mistaken for an orphan) until it is final or its actor is dead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pykka


class OrderRegistry:
    """Thread-safe: OrderActors, the facade and the Supervisor's threads all use it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, pykka.ActorRef[Any]] = {}
        self._starting: set[str] = set()
        self._orphans: set[str] = set()
        self.crashes = 0

    @contextlib.contextmanager
    def starting(self, execution_id: str) -> Iterator[None]:
        with self._lock:
            self._starting.add(execution_id)
        try:
            yield
        finally:
            with self._lock:
                self._starting.discard(execution_id)

    def add(self, execution_id: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._live[execution_id] = ref

    def finished(self, execution_id: str) -> None:
        with self._lock:
            self._live.pop(execution_id, None)

    def live(self) -> dict[str, pykka.ActorRef[Any]]:
        with self._lock:
            return dict(self._live)

    def is_live(self, execution_id: str) -> bool:
        with self._lock:
            return execution_id in self._live or execution_id in self._starting

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def died(self, execution_id: str, *, crash: bool) -> None:
        with self._lock:
            self._live.pop(execution_id, None)
            self._orphans.add(execution_id)
            if crash:
                self.crashes += 1

    def sweep_dead(self) -> int:
        """Orphan every execution whose actor is no longer alive; returns how many."""
        with self._lock:
            dead = [eid for eid, ref in self._live.items() if not ref.is_alive()]
            for execution_id in dead:
                del self._live[execution_id]
                self._orphans.add(execution_id)
        return len(dead)

    def adopt(self, execution_ids: Iterable[str]) -> None:
        """Make orphans of these executions, unless an actor of theirs is live."""
        with self._lock:
            self._orphans |= set(execution_ids) - set(self._live) - self._starting

    def orphans(self) -> list[str]:
        """The orphans to reconcile now (none that is live again)."""
        with self._lock:
            return sorted(self._orphans - set(self._live) - self._starting)

    def settled(self, execution_ids: Iterable[str]) -> None:
        with self._lock:
            self._orphans -= set(execution_ids)

    def orphan_count(self) -> int:
        with self._lock:
            return len(self._orphans)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": "alive",
                "in_flight": len(self._live),
                "crashes": self.crashes,
                "orphans_pending": len(self._orphans),
            }


__all__ = ["OrderRegistry"]
