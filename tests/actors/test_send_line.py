"""SendLine without an actor: its turns, its holds and its drains, on a manual clock.

The line is built directly over a `TerminalLink` to the simulator, a recording stand-in for
the actor's ref and a recording scheduler, the way Mopidy tests its core controllers without
starting the actor. `place_order` is the test's own function, so every assertion is about
which send the line started, in which order, and what each sender was answered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pykka
import pytest

from actors._broker_config import BrokerConfig
from actors._reply import Reply
from actors._scheduler import Scheduler
from actors._send_ledger import SendLedger
from actors._send_line import SendLine, SendRequest, _SendTurn
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch
from core.enums import RetcodeClass
from core.models import ExecutionRequest
from core.records import SendOutcome
from core.rules import SendFate
from core.testing import ManualClock
from terminals.simulated import SimulatedTerminal

DONE = SendOutcome(klass=RetcodeClass.SUCCESS, retcode=10009, order=1)
LINK_DOWN = SendOutcome(
    klass=RetcodeClass.RETRY, retcode=None, last_error=(-10004, "No IPC connection")
)


class Tells:
    """Stands in for the actor's ref: keeps what the line tells it."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


class Timers:
    """Stands in for the scheduler: keeps (delay, message) instead of waiting."""

    def __init__(self) -> None:
        self.later: list[tuple[float, Any]] = []

    def tell_later(self, delay: float, target: Any, message: Any) -> None:
        self.later.append((delay, message))


class Line:
    """A SendLine and what it touches."""

    def __init__(
        self, sim: SimulatedTerminal, place: Callable[[ExecutionRequest, float | None], Any]
    ) -> None:
        self.clock = ManualClock(start=datetime.now(UTC))
        self.watch = TerminalWatch("the simulator", self.clock.monotonic)
        self.link = TerminalLink(sim, BrokerConfig(terminal_wait=5.0), self.watch)
        assert self.link.connect()
        self.ledger = SendLedger()
        self.actor = Tells()
        self.timers = Timers()
        self.inbox: list[SendRequest] = []
        self.line = SendLine(
            self.link,
            BrokerConfig(terminal_wait=5.0),
            self.ledger,
            place,
            cast(pykka.ActorRef[Any], self.actor),
            cast(Scheduler, self.timers),
            self._take_inbox,
        )

    def _take_inbox(self) -> list[SendRequest]:
        taken, self.inbox[:] = list(self.inbox), []
        return taken

    def turns(self) -> int:
        return sum(isinstance(m, _SendTurn) for m in self.actor.told)


def request(client_id: str) -> SendRequest:
    order = ExecutionRequest(
        request_id="req_1",
        execution_id="exec_1",
        client_id=client_id,
        symbol="EURUSD",
        direction=1,
        units=10_000,
        lots=0.1,
        intended_price=0.0,
        magic=770001,
        deviation_points=100,
        max_slippage_pips=10.0,
        timeout_seconds=5.0,
        max_retries=3,
    )
    return SendRequest(order, None, Reply())


def answer_of(send: SendRequest) -> SendOutcome:
    return send.reply.get(timeout=0)


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


def test_sends_go_one_per_turn_in_order_with_one_turn_queued_at_a_time(
    sim: SimulatedTerminal,
) -> None:
    started: list[str] = []
    line = Line(sim, lambda r, _: started.append(r.client_id) or DONE)
    sends = [request(f"ee-{i}") for i in range(3)]
    for send in sends:
        line.line.take(send)
    assert line.turns() == 1  # one turn in the inbox, however long the line
    assert started == []

    line.line.turn()
    assert started == ["ee-0"]
    assert answer_of(sends[0]) is DONE
    assert line.turns() == 2  # the next turn goes to the back of the inbox
    line.line.turn()
    line.line.turn()
    assert started == ["ee-0", "ee-1", "ee-2"]
    assert line.turns() == 3  # none after the last send
    assert len(line.line) == 0


def test_a_closed_line_answers_queued_and_inbox_sends_not_sent_and_takes_no_more(
    sim: SimulatedTerminal,
) -> None:
    started: list[str] = []
    line = Line(sim, lambda r, _: started.append(r.client_id) or DONE)
    queued, in_inbox, later = request("ee-q"), request("ee-i"), request("ee-l")
    line.line.take(queued)
    line.inbox.append(in_inbox)

    assert line.line.close("replaced") == 2
    line.line.take(later)
    line.line.turn()

    assert started == []
    for send in (queued, in_inbox, later):
        outcome = answer_of(send)
        assert outcome.not_sent
        assert outcome.comment == "replaced"
    assert line.link.closed == "replaced"


def test_a_stopping_line_fails_unstarted_sends_with_actor_dead_and_records_it(
    sim: SimulatedTerminal,
) -> None:
    line = Line(sim, lambda r, _: DONE)
    send = request("ee-dropped")
    line.line.take(send)
    assert line.ledger.trace("ee-dropped").fate is SendFate.QUEUED

    line.line.drop_queued()

    with pytest.raises(pykka.ActorDeadError):
        send.reply.get(timeout=0)
    assert line.ledger.trace("ee-dropped").fate is SendFate.NOT_STARTED


def test_a_send_that_raises_answers_its_caller_and_the_line_goes_on(
    sim: SimulatedTerminal,
) -> None:
    def place(r: ExecutionRequest, _: float | None) -> SendOutcome:
        if r.client_id == "ee-bad":
            raise ValueError("a value no rule foresaw")
        return DONE

    line = Line(sim, place)
    bad, good = request("ee-bad"), request("ee-good")
    line.line.take(bad)
    line.line.take(good)
    line.line.turn()

    with pytest.raises(ValueError, match="no rule foresaw"):
        bad.reply.get(timeout=0)
    assert line.turns() == 2
    line.line.turn()
    assert answer_of(good) is DONE


def test_a_send_that_found_the_link_down_waits_at_the_front_of_the_line(
    sim: SimulatedTerminal,
) -> None:
    outcomes = iter([LINK_DOWN, DONE, DONE])
    started: list[str] = []

    def place(r: ExecutionRequest, _: float | None) -> SendOutcome:
        started.append(r.client_id)
        outcome = next(outcomes)
        if outcome is LINK_DOWN:
            line.link.connected = False
            line.watch.link_failed("initialize failed", attempt_seconds=1.0)
        return outcome

    line = Line(sim, place)
    first, second = request("ee-first"), request("ee-second")
    line.line.take(first)
    line.line.take(second)
    line.line.turn()

    with pytest.raises(pykka.Timeout):  # still waiting, in the line, for the terminal
        first.reply.get(timeout=0)
    assert [delay for delay, _ in line.timers.later] == [1.0]  # held until the next try
    line.link.connected = True
    line.watch.link_up()
    line.line.turn()
    line.line.turn()
    assert started == ["ee-first", "ee-first", "ee-second"]
    assert answer_of(first) is DONE


def test_a_line_held_past_terminal_wait_is_answered_not_sent_and_new_sends_at_once(
    sim: SimulatedTerminal,
) -> None:
    started: list[str] = []
    line = Line(sim, lambda r, _: started.append(r.client_id) or DONE)
    waiting = request("ee-waiting")
    line.line.take(waiting)
    line.link.connected = False
    line.watch.link_failed("symbol_info_tick raised TimeoutError", attempt_seconds=60.0)
    line.clock.advance(5.0)

    line.line.turn()
    late = request("ee-late")
    line.line.take(late)

    assert started == []
    for send in (waiting, late):
        outcome = answer_of(send)
        assert outcome.not_sent
        assert "a send waits at most 5 s" in outcome.comment
