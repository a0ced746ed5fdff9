"""Table tests of the execution lifecycle (`core.execution.step`), on explicit times.

Each row is one execution: how the world answers, what the test tells it on top, and how
it must end. No threads, no database, no terminal: the whole file runs in milliseconds.
The whole-engine tests in tests/actors/ stay as integration tests of the shell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from core.enums import ExecutionStatus, RejectionReason, RetcodeClass
from core.execution import Phase, Stage, Trading, step
from core.execution import effects as fx
from core.execution import events as ev
from core.models import ExecutionConfirmation
from tests.core._execution_driver import (
    PREFLIGHT,
    QUOTE,
    Driver,
    World,
    done,
    finding,
    outcome,
    placed,
    rpm,
)

S = ExecutionStatus
R = RejectionReason
K = RetcodeClass


def _then(*steps: Callable[[Driver], object]) -> Callable[[Driver], None]:
    def run(d: Driver) -> None:
        for s in steps:
            s(d)

    return run


def nothing(d: Driver) -> None:
    return None


# name, world, rpm overrides, what the test does after the run, status, reason, sends
CASES: list[tuple[str, World, dict[str, object], Callable[[Driver], None], S, R | None, int]] = [
    ("a DONE with its deal is a fill", World(), {}, nothing, S.FILLED, None, 1),
    (
        "a decision not approved is refused",
        World(),
        {"status": "REJECTED"},
        nothing,
        S.REJECTED,
        R.RPM_NOT_APPROVED,
        0,
    ),
    (
        "a halted portfolio is refused",
        World(),
        {"halted": True},
        nothing,
        S.REJECTED,
        R.TRADING_HALTED,
        0,
    ),
    (
        "a halted switch refuses at validation",
        World(trading=Trading(halted=True, reason="kill")),
        {},
        nothing,
        S.REJECTED,
        R.TRADING_HALTED,
        0,
    ),
    (
        "a terminal not ready",
        World(preflight=[replace(PREFLIGHT, ready=False, not_ready_detail="down")]),
        {},
        nothing,
        S.REJECTED,
        R.TERMINAL_NOT_READY,
        0,
    ),
    (
        "an unknown symbol",
        World(preflight=[replace(PREFLIGHT, spec=None)]),
        {},
        nothing,
        S.REJECTED,
        R.SYMBOL_NOT_TRADABLE,
        0,
    ),
    (
        "a volume under the minimum",
        World(),
        {"position_units": 1},
        nothing,
        S.REJECTED,
        R.INVALID_VOLUME,
        0,
    ),
    (
        "a stale tick",
        World(preflight=[replace(PREFLIGHT, quote=replace(QUOTE, age_seconds=99.0))]),
        {},
        nothing,
        S.REJECTED,
        R.NO_MARKET_DATA,
        0,
    ),
    (
        "a closed market",
        World(preflight=[replace(PREFLIGHT, market_closed=True)]),
        {},
        nothing,
        S.REJECTED,
        R.MARKET_CLOSED,
        0,
    ),
    (
        "a wide spread",
        World(preflight=[replace(PREFLIGHT, quote=replace(QUOTE, ask=1.1100))]),
        {},
        nothing,
        S.REJECTED,
        R.SPREAD_TOO_WIDE,
        0,
    ),
    (
        "margin others already hold",
        World(held_margin=99_000.0),
        {},
        nothing,
        S.REJECTED,
        R.MARGIN_INSUFFICIENT,
        0,
    ),
    (
        "reduce-only refuses a trade that opens",
        World(trading=Trading(reducing=True, reason="drawdown")),
        {},
        nothing,
        S.REJECTED,
        R.REDUCE_ONLY,
        0,
    ),
    (
        "a broker's final rejection",
        World(outcomes=[outcome(K.FINAL, 10006, comment="rejected")]),
        {},
        nothing,
        S.REJECTED,
        R.BROKER_REJECTED,
        1,
    ),
    (
        "market closed at the send",
        World(outcomes=[outcome(K.FINAL, 10018)]),
        {},
        nothing,
        S.REJECTED,
        R.MARKET_CLOSED,
        1,
    ),
    (
        "the broker's send gate saw the halt",
        World(outcomes=[outcome(K.FINAL, None, halted=True, request={})]),
        {},
        nothing,
        S.REJECTED,
        R.TRADING_HALTED,
        1,
    ),
    (
        "a send the terminal never got",
        World(outcomes=[outcome(K.RETRY, None, not_sent=True, comment="no answer")]),
        {},
        nothing,
        S.REJECTED,
        R.NOT_SENT,
        1,
    ),
    (
        "a retry, then a fill",
        World(outcomes=[outcome(K.RETRY, 10004), done()]),
        {},
        lambda d: d.fire(Stage.SUBMIT, after=0.2),
        S.FILLED,
        None,
        2,
    ),
    (
        "retries run out",
        World(outcomes=[outcome(K.RETRY, 10004)]),
        {},
        _then(*[lambda d: d.fire(Stage.SUBMIT, after=0.5)] * 3),
        S.REJECTED,
        R.RETRIES_EXHAUSTED,
        4,
    ),
    (
        "a retry past the deadline is a timeout",
        World(outcomes=[outcome(K.RETRY, 10004, request={})]),
        {},
        lambda d: d.fire(Stage.SUBMIT, after=61.0),
        S.REJECTED,
        R.ORDER_TIMEOUT,
        2,
    ),
    (
        "a placed order filled by the poll",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.FillFound(finding(0.95))),
        S.FILLED,
        None,
        1,
    ),
    (
        "a placed order closed part filled",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.FillFound(finding(0.5))),
        S.PARTIALLY_FILLED,
        None,
        1,
    ),
    (
        "a placed order expired with nothing filled",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.FillFound(finding(0.0, state=6))),
        S.EXPIRED,
        R.ORDER_TIMEOUT,
        1,
    ),
    (
        "a placed order closed unfilled by the broker",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.FillFound(finding(0.0, state=2))),
        S.REJECTED,
        R.BROKER_REJECTED,
        1,
    ),
    (
        "a placed order times out and is removed",
        World(outcomes=[placed()]),
        {},
        lambda d: d.fire(Stage.TIMEOUT, after=60.0),
        S.EXPIRED,
        R.ORDER_TIMEOUT,
        1,
    ),
    (
        "a fill races the timeout's removal",
        World(outcomes=[placed()], after_removal=finding(0.95)),
        {},
        lambda d: d.fire(Stage.TIMEOUT, after=60.0),
        S.FILLED,
        None,
        1,
    ),
    (
        "a halt removes a working order",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.Halted("kill switch")),
        S.REJECTED,
        R.TRADING_HALTED,
        1,
    ),
    (
        "a cancel removes a working order",
        World(outcomes=[placed()]),
        {},
        lambda d: d.tell(ev.Halted("cancelled: user", R.CANCELLED)),
        S.REJECTED,
        R.CANCELLED,
        1,
    ),
    (
        "an ambiguous send found filled",
        World(outcomes=[outcome(K.AMBIGUOUS, None)], lookups=[finding(0.95)]),
        {},
        nothing,
        S.FILLED,
        None,
        1,
    ),
    (
        "an ambiguous send proven absent",
        World(outcomes=[outcome(K.AMBIGUOUS, None)]),
        {},
        lambda d: d.fire(Stage.RECONCILE, after=31.0),
        S.REJECTED,
        R.NOT_SENT,
        1,
    ),
    (
        "a lookup error waits and looks again",
        World(outcomes=[outcome(K.AMBIGUOUS, None)], lookups=["link down", finding(0.95)]),
        {},
        lambda d: d.fire(Stage.RECONCILE, after=1.0),
        S.FILLED,
        None,
        1,
    ),
    (
        "the broker being replaced at preflight is retried",
        World(preflight=["gone: restarting", PREFLIGHT]),
        {},
        lambda d: d.fire(Stage.VALIDATE, after=0.2),
        S.FILLED,
        None,
        1,
    ),
    (
        "a preflight that times out",
        World(preflight=["no answer in 30 s"]),
        {},
        nothing,
        S.REJECTED,
        R.TERMINAL_NOT_READY,
        0,
    ),
]


@pytest.mark.parametrize(
    ("world", "trade", "then", "status", "reason", "sends"),
    [pytest.param(*row[1:], id=row[0]) for row in CASES],
)
def test_execution_ends_as_the_table_says(
    world: World,
    trade: dict[str, object],
    then: Callable[[Driver], None],
    status: S,
    reason: R | None,
    sends: int,
) -> None:
    # Arrange
    d = Driver(world, rpm_=rpm(**trade))

    # Act
    d.run()
    then(d)

    # Assert
    assert isinstance(d.answer, ExecutionConfirmation), d.answer
    assert (d.answer.status, d.answer.rejection_reason) == (status, reason)
    assert len(d.sends()) == sends
    assert d.state.phase is Phase.DONE
    assert d.journal[0] == "EXECUTION_CREATED"


def test_the_first_commit_stores_the_decision_and_the_intent_before_the_send() -> None:
    d = Driver().run()

    commits = [e for e in d.effects if isinstance(e, fx.Commit)]
    first = [entry.event_type for entry in commits[0].entries]
    assert first == ["EXECUTION_CREATED", "VALIDATED", "SUBMITTING"]
    assert commits[0].ack == ev.IntentCommitted(0, 1)
    assert d.effects.index(commits[0]) < d.effects.index(d.sends()[0])
    assert d.journal == [*first, "ORDER_ACCEPTED", "EXECUTION_FILLED"]


def test_nothing_is_sent_when_the_intent_commit_fails() -> None:
    d = Driver(World(commit_fails={"SUBMITTING"})).run()

    assert d.sends() == []
    assert isinstance(d.answer, RuntimeError)
    assert any(isinstance(e, fx.Release) for e in d.effects)


def test_an_intent_ack_for_another_attempt_sends_nothing() -> None:
    d = Driver().run()

    d.tell(ev.IntentCommitted(0, 1))  # a duplicate ack after the send went out
    d.tell(ev.IntentCommitted(0, 7))

    assert len(d.sends()) == 1


def test_a_halt_between_validation_and_the_send_rejects_without_sending() -> None:
    d = Driver()
    d.inbox.append(ev.StageDue(Stage.CREATE))
    _run_until_submit_is_due(d)

    d.tell(ev.Halted("kill switch"))  # ahead of SUBMIT in the inbox
    d.fire(Stage.SUBMIT)

    assert d.sends() == []
    assert isinstance(d.answer, ExecutionConfirmation)
    assert d.answer.rejection_reason is R.TRADING_HALTED
    assert "SUBMITTING" not in d.journal


def _run_until_submit_is_due(d: Driver) -> None:
    while d.inbox:
        event = d.inbox.popleft()
        if isinstance(event, ev.StageDue) and event.stage is Stage.SUBMIT:
            return
        d.state, effects = step(d.state, event, d.now, d.cfg)
        d.effects.extend(effects)
        for effect in effects:
            d.perform(effect)


def test_an_ambiguous_send_is_never_sent_again() -> None:
    d = Driver(World(outcomes=[outcome(K.AMBIGUOUS, None)], lookups=[None])).run()
    for _ in range(5):
        d.fire(Stage.RECONCILE, after=1.0)
        d.fire(Stage.SUBMIT)

    assert len(d.sends()) == 1
    assert d.state.log is not None
    assert d.state.log.status is S.UNKNOWN
    assert d.journal.count("RECONCILE_WAITING") == 1  # once per change, not per lookup


def test_reconcile_waits_out_the_window_before_not_sent() -> None:
    d = Driver(World(outcomes=[outcome(K.AMBIGUOUS, None)])).run()

    d.fire(Stage.RECONCILE, after=29.0)
    assert d.answer is None
    d.fire(Stage.RECONCILE, after=2.0)

    assert isinstance(d.answer, ExecutionConfirmation)
    assert d.answer.rejection_reason is R.NOT_SENT


def test_the_timeout_is_armed_once_for_the_time_left() -> None:
    d = Driver(World(outcomes=[placed()]))
    d.run()
    d.tell(ev.WatchLost())

    arms = [e for e in d.scheduled if isinstance(e, fx.ArmTimeout)]
    assert arms == [fx.ArmTimeout(60.0)]
    assert sum(isinstance(e, fx.Watch) for e in d.effects) == 2


def test_a_stale_timer_after_the_end_changes_nothing() -> None:
    d = Driver().run()
    state = d.state

    d.fire(Stage.TIMEOUT, after=100.0)
    d.tell(ev.Halted("late"))

    assert d.state is state


def test_a_slippage_and_fill_price_follow_the_fills() -> None:
    d = Driver(World(outcomes=[done(price=1.10030)])).run()

    log = d.state.log
    assert log is not None
    assert log.fill_price == pytest.approx(1.1003)
    assert log.slippage_pips == pytest.approx(2.0)
    assert log.executed_units == pytest.approx(95_000)


def test_an_own_failure_without_a_record_is_refused_as_invalid_input() -> None:
    d = Driver().tell(ev.OwnFailure("ValueError: bad"))

    assert isinstance(d.answer, ExecutionConfirmation)
    assert d.answer.rejection_reason is R.INVALID_INPUT
    assert d.journal == []


def test_an_own_failure_while_pending_is_rejected_internal_error() -> None:
    d = Driver()
    d.inbox.append(ev.StageDue(Stage.CREATE))
    _run_until_submit_is_due(d)

    d.tell(ev.OwnFailure("ValueError: bad"))

    assert isinstance(d.answer, ExecutionConfirmation)
    assert d.answer.rejection_reason is R.INTERNAL_ERROR
    assert d.journal == ["EXECUTION_CREATED", "VALIDATED", "EXECUTION_REJECTED"]
