"""Small thread-safe state shared by actors: margin reservations.

The trading state (the gate of `order_send`) is `actors.kill_switch`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class MarginBook:
    """Margin held by executions in flight, so concurrent validations cannot overspend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}
        self._total = 0.0

    def reserve(
        self, execution_id: str, amount: float, check: Callable[[float], T | None]
    ) -> T | None:
        """Run `check(held_total)`; when it passes (returns None) hold `amount`. Check and hold
        are one step under the lock, so two validations cannot both spend the same margin."""
        with self._lock:
            refusal = check(self._total)
            if refusal is None:
                self._held[execution_id] = self._held.get(execution_id, 0.0) + amount
                self._total += amount
            return refusal

    def held(self) -> float:
        with self._lock:
            return self._total

    def release(self, execution_id: str) -> None:
        with self._lock:
            amount = self._held.pop(execution_id, 0.0)
            self._total = max(self._total - amount, 0.0)
