"""Deterministic clock and id source for tests in every package.

They live in `core` (not in `tests/`) so that any test package, benchmark or drill can use
them without importing test code.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from core.ids import join_id

#: Where a ManualClock starts unless told otherwise: a fixed, unremarkable instant.
DEFAULT_START = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to (`advance`, `set`). Thread-safe.

    `advance` moves wall and monotonic time together; `set` moves only the wall time, the
    way an NTP step does, so code that wrongly measures intervals with `now()` shows up.
    """

    def __init__(self, start: datetime = DEFAULT_START, monotonic_start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._now = self._check_aware(start)
        self._monotonic = monotonic_start

    @staticmethod
    def _check_aware(dt: datetime) -> datetime:
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        return dt.astimezone(UTC)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move both clocks forward; returns the new wall time."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise ValueError("a clock cannot be advanced backwards; use set() for wall time")
        with self._lock:
            self._now += delta
            self._monotonic += delta.total_seconds()
            return self._now

    def set(self, now: datetime) -> None:
        """Jump the wall clock (either way); the monotonic clock does not move."""
        aware = self._check_aware(now)
        with self._lock:
            self._now = aware


class SequentialIds:
    """Ids 1, 2, 3... in the same shape as `UuidIds` (32 hex digits, optional prefix).

    `new_id("exec")` -> `exec_00000000000000000000000000000001`. Thread-safe.
    """

    def __init__(self, start: int = 1) -> None:
        if start < 0:
            raise ValueError("SequentialIds start must be >= 0")
        self._lock = threading.Lock()
        self._next = start

    def new_id(self, prefix: str = "") -> str:
        with self._lock:
            n = self._next
            self._next += 1
        return join_id(prefix, f"{n:032x}")


__all__ = ["DEFAULT_START", "ManualClock", "SequentialIds"]
