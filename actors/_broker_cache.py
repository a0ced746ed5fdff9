"""Freshness-window caches for the BrokerActor.

`symbol_info` is static for the life of a connection; ticks, account and margin per lot are
hot and are coalesced: every caller inside the window shares one terminal call. Only the
BrokerActor's thread touches these, so they need no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Slot(Generic[V]):
    value: V
    stored_at: float


class WindowCache(Generic[K, V]):
    """Keeps each value for `window` seconds of the injected monotonic clock."""

    def __init__(self, window: float, monotonic: Callable[[], float]) -> None:
        self._window = window
        self._monotonic = monotonic
        self._slots: dict[K, _Slot[V]] = {}

    def get(self, key: K, window: float | None = None) -> V | None:
        """The value if stored at most `window` (default: the cache's own) seconds ago."""
        slot = self._slots.get(key)
        limit = self._window if window is None else window
        if slot is None or self._monotonic() - slot.stored_at > limit:
            return None
        return slot.value

    def put(self, key: K, value: V) -> V:
        self._slots[key] = _Slot(value, self._monotonic())
        return value

    def clear(self) -> None:
        self._slots.clear()

    def forget(self, key: K | None) -> None:
        self._slots.pop(key, None)  # type: ignore[arg-type]


class TickAges:
    """Tells how long a symbol's tick has gone unchanged, by the engine's own clock.

    Tick times are broker-server times in an unknown zone, so they cannot be compared with
    the engine's UTC clock. Instead, remember when each symbol's `time_msc` last changed:
    a tick that has not moved for longer than the limit is stale, whatever the server zone.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._last: dict[str, tuple[int, float]] = {}

    def age(self, symbol: str, time_msc: int) -> float:
        now = self._monotonic()
        seen = self._last.get(symbol)
        if seen is None or seen[0] != time_msc:
            self._last[symbol] = (time_msc, now)
            return 0.0
        return now - seen[1]

    def clear(self) -> None:
        self._last.clear()
