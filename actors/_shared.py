"""Small thread-safe state shared by actors: the kill-switch flag and margin reservations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from core.enums import TradingState

T = TypeVar("T")


class TradingSwitch:
    """The engine-wide kill switch: read often, changed rarely, and the gate of `order_send`.

    The Supervisor is the only writer. OrderActors read `halted` between stages; the
    BrokerActor sends only inside `sending()`, which checks the flag under the gate lock.
    `set(True)` writes the flag first, then takes the same lock, so when it returns every
    `order_send` has either finished or will see the halt: a send already queued in the
    broker's inbox cannot overtake a halt.
    """

    def __init__(self, halted: bool = False, reason: str = "") -> None:
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self._halted = halted
        self._reducing = False
        self._reason = reason

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def reducing(self) -> bool:
        """REDUCING: only sends that reduce positions may go out (`sending(reduces=True)`)."""
        return self._reducing and not self._halted

    @property
    def state(self) -> TradingState:
        if self._halted:
            return TradingState.HALTED
        return TradingState.REDUCING if self._reducing else TradingState.ACTIVE

    @property
    def reason(self) -> str:
        return self._reason

    def set(
        self, halted: bool, reason: str = "", wait: float = 30.0, *, reducing: bool = False
    ) -> bool:
        """Change the state (`reducing` only counts when not halted). A halt, or a switch to
        REDUCING, then waits up to `wait` seconds for an `order_send` in progress to return;
        False when one was still running (it started before the change)."""
        with self._lock:
            self._halted = halted
            self._reducing = reducing and not halted
            self._reason = reason
        if not (halted or reducing):
            return True
        if self._gate.acquire(timeout=wait):
            self._gate.release()
            return True
        return False

    @contextmanager
    def sending(self, *, reduces: bool = False) -> Iterator[bool]:
        """Hold the gate around one `order_send`; yields False (send nothing) when halted,
        or when REDUCING and this send does not only reduce a position (`reduces`)."""
        with self._gate:
            yield not self._halted and (reduces or not self._reducing)


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
