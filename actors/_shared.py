"""Small thread-safe state shared by actors: the kill-switch flag and margin reservations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TradingSwitch:
    """The engine-wide kill switch as OrderActors see it: read often, changed rarely.

    The Supervisor (through the facade) is the only writer; OrderActors read it between
    stages, and the BrokerActor keeps its own copy so that no `order_send` starts once a
    halt has returned.
    """

    def __init__(self, halted: bool = False, reason: str = "") -> None:
        self._lock = threading.Lock()
        self._halted = halted
        self._reason = reason

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def reason(self) -> str:
        return self._reason

    def set(self, halted: bool, reason: str = "") -> None:
        with self._lock:
            self._halted = halted
            self._reason = reason


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
