"""The one trading state (`actors.kill_switch.KillSwitch`) on its own: it is the gate the
broker sends through, and it holds the rules of a change, with a store that commits, or
that is away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.kill_switch import KillSwitch
from actors.messages import Write
from core.enums import TradingState
from core.errors import PersistenceError, ReconciliationError, TradingHaltedError
from core.testing import ManualClock


class _Store(pykka.ThreadingActor):
    """Commits every write at once and keeps the trading states written."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[tuple[str, str, str]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Write):
            for op in message.ops:
                record = op.trading_state
                self.states.append((record.state, record.changed_by, record.reason))
            message.reply.set([])
        return None

    def written(self) -> list[tuple[str, str, str]]:
        return list(self.states)


@pytest.fixture
def store() -> Iterator[pykka.ActorRef[Any]]:
    ref = _Store.start()
    yield ref
    ref.stop()


def _switch(store: pykka.ActorRef[Any]) -> KillSwitch:
    return KillSwitch(lambda: store, ManualClock(), 1.0, lambda: None)


def test_it_starts_halted_and_is_itself_the_gate(store: pykka.ActorRef[Any]) -> None:
    switch = _switch(store)
    assert switch.state is TradingState.HALTED
    with switch.sending(reduces=True) as allowed:
        assert allowed is False

    switch.restore(TradingState.ACTIVE, "")
    with switch.sending() as allowed:
        assert allowed is True


def test_an_automatic_halt_does_not_repeat_a_halt(store: pykka.ActorRef[Any]) -> None:
    switch = _switch(store)
    switch.restore(TradingState.ACTIVE, "")

    assert switch.halt("terminal down", "supervisor", automatic=True)
    assert not switch.halt("journal failing", "supervisor", automatic=True)
    assert switch.halt("and the operator too", "alice")

    assert switch.reason == "and the operator too"
    assert store.proxy().written().get(timeout=5) == [
        ("HALTED", "supervisor", "terminal down"),
        ("HALTED", "alice", "and the operator too"),
    ]


def test_reduce_only_is_refused_from_halted(store: pykka.ActorRef[Any]) -> None:
    switch = _switch(store)
    switch.restore(TradingState.HALTED, "left halted")

    with pytest.raises(TradingHaltedError):
        switch.reduce_only("only an admin leaves a halt", "mallory")
    assert switch.state is TradingState.HALTED


def test_a_resume_whose_checks_fail_leaves_the_state_as_it_was(
    store: pykka.ActorRef[Any],
) -> None:
    switch = _switch(store)
    switch.restore(TradingState.ACTIVE, "")
    switch.reduce_only("drawdown", "alice")

    def refuse() -> None:
        raise ReconciliationError("not resumed: the terminal is not connected")

    with pytest.raises(ReconciliationError):
        switch.resume("try", "carol", refuse)
    assert switch.state is TradingState.REDUCING
    assert switch.resume("fine now", "carol", lambda: "report") == "report"
    assert switch.state is TradingState.ACTIVE
    assert store.proxy().written().get(timeout=5)[-1] == ("ACTIVE", "carol", "fine now")


def test_a_halt_holds_while_the_store_is_away_and_is_written_later(
    store: pykka.ActorRef[Any],
) -> None:
    reachable: list[pykka.ActorRef[Any]] = []
    retries: list[int] = []

    def persistence() -> pykka.ActorRef[Any]:
        if not reachable:
            raise pykka.ActorDeadError("the store is away")
        return reachable[0]

    switch = KillSwitch(persistence, ManualClock(), 1.0, lambda: retries.append(1))
    switch.restore(TradingState.ACTIVE, "")

    switch.halt("store down", "supervisor")

    assert switch.halted
    assert not switch.persisted
    assert retries
    with pytest.raises((PersistenceError, pykka.ActorDeadError)):
        switch.flush(1.0)
    reachable.append(store)
    switch.flush(1.0)
    assert switch.persisted
    assert store.proxy().written().get(timeout=5) == [("HALTED", "supervisor", "store down")]
