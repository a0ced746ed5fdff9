"""Fixtures for actor tests: a simulated terminal, fast settings, an engine, clean teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.clock import Clock
from core.settings import Settings, load_settings
from terminals.simulated import SimulatedTerminal


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


def fast_settings(**overrides: Any) -> Settings:
    """Settings with short timers so that tests finish quickly; the rules are unchanged."""
    values: dict[str, Any] = {
        "poll_interval_seconds": 0.01,
        "retry_backoff_seconds": 0.005,
        "retry_backoff_cap_seconds": 0.02,
        "reconcile_window_seconds": 0.3,
        "order_timeout_seconds": 3.0,
        "ask_timeout_seconds": 10.0,
        "cache_tick_seconds": 0.0,
        "cache_account_seconds": 0.0,
        "cache_margin_seconds": 0.0,
    }
    values.update(overrides)
    return load_settings(**values)


EngineFactory = Callable[..., ExecutionFacade]


@pytest.fixture
def make_engine(tmp_path: Path, sim: SimulatedTerminal) -> Iterator[EngineFactory]:
    """Builds engines on the simulated terminal (SQLite in tmp_path unless a URL is given)
    and stops every one of them at teardown."""
    made: list[ExecutionFacade] = []

    def factory(
        database_url: str | None = None,
        terminal: Any = None,
        clock: Clock | None = None,
        **setting_overrides: Any,
    ) -> ExecutionFacade:
        engine = create_execution_engine(
            terminal=terminal if terminal is not None else sim,
            database_url=database_url or f"sqlite:///{tmp_path / 'engine.db'}",
            settings=fast_settings(**setting_overrides),
            clock=clock,
        )
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.stop()


def rpm(
    decision_id: str = "rpm_dec_123",
    symbol: str = "EURUSD",
    direction: int = 1,
    units: float = 95000,
    status: str = "APPROVED",
    halted: bool = False,
    intended_price: float | None = None,
) -> dict[str, Any]:
    """An RPM message shaped like the seeds' example."""
    trade: dict[str, Any] = {
        "symbol": symbol,
        "direction": direction,
        "position_units": units,
        "confidence_score": 0.78,
        "atr": 0.0015,
        "stop_loss_pips": 25,
    }
    if intended_price is not None:
        trade["intended_price"] = intended_price
    return {
        "decision": {"status": status, "decision_id": decision_id, "approved_trade": trade},
        "portfolio_state": {"trading_halted": halted, "open_positions": 2},
        "rpm_version": "1.0.0",
        "model_version": "2.3.1",
        "timestamp": "2025-12-23T14:30:00Z",
    }
