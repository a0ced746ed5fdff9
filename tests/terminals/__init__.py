"""Tests of the terminal seam; shared helpers for the simulated terminal's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminals.simulated import SimulatedTerminal

#: 2023-11-14 22:13:20 UTC: a fixed "now" for the injected clock.
T0 = 1_700_000_000.0


class FakeClock:
    """An injected clock: epoch seconds that move only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_sim(clock: Callable[[], float] | None = None, **options: Any) -> SimulatedTerminal:
    """An initialized simulated terminal on a fixed clock (seed 1 unless given)."""
    options.setdefault("seed", 1)
    sim = SimulatedTerminal(clock=clock or FakeClock(), **options)
    assert sim.initialize() is True
    return sim


def deal(
    symbol: str = "EURUSD", volume: float = 0.1, *, sell: bool = False, **extra: Any
) -> dict[str, Any]:
    """A market-order request dict as the engine sends it (FOK unless ``extra`` says)."""
    request: dict[str, Any] = {
        "action": 1,  # TRADE_ACTION_DEAL
        "symbol": symbol,
        "volume": volume,
        "type": 1 if sell else 0,
        "magic": 4242,
        "comment": "ee-test",
    }
    request.update(extra)
    return request
