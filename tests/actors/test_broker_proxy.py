"""BrokerProxy: the typed face of the BrokerActor that other actors call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from actors._scheduler import Scheduler
from actors.broker import BrokerActor, BrokerConfig, BrokerProxy
from core.clock import SystemClock
from terminals.simulated import SimulatedTerminal

TIMEOUT = 10.0
_LIFECYCLE = {"on_start", "on_stop", "on_failure", "on_receive"}


def _public_methods() -> set[str]:
    return {
        name
        for name, value in vars(BrokerActor).items()
        if callable(value) and not name.startswith("_") and name not in _LIFECYCLE
    }


def test_every_public_method_of_the_actor_is_typed_on_the_proxy() -> None:
    declared = {name for name in _public_methods() if name in vars(BrokerProxy)}
    assert declared == _public_methods()
    for name in declared:
        assert vars(BrokerProxy)[name] is vars(BrokerActor)[name]  # no drift possible


@pytest.fixture
def proxy() -> Iterator[BrokerProxy]:
    scheduler = Scheduler(SystemClock().monotonic)
    ref = BrokerActor.start(SimulatedTerminal(seed=7), BrokerConfig(), SystemClock(), scheduler)
    yield cast(BrokerProxy, ref.proxy())
    ref.stop(timeout=TIMEOUT)
    scheduler.stop()


def test_a_typed_proxy_calls_through_the_actor(proxy: BrokerProxy) -> None:
    spec = proxy.symbol_spec("EURUSD").get(timeout=TIMEOUT)
    assert spec is not None
    assert spec.name == "EURUSD"
    assert proxy.watched().get(timeout=TIMEOUT) == []
    assert proxy.health().get(timeout=TIMEOUT)["connected"] is True
