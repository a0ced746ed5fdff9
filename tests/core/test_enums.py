"""Tests of core.enums: the status table and the reason codes other layers rely on."""

from __future__ import annotations

from collections import deque
from enum import Enum
from itertools import product

import pytest

from core.enums import (
    FINAL_STATUSES,
    TRANSITIONS,
    DecisionStatus,
    Direction,
    ExecutionStatus,
    PartialFillPolicy,
    RejectionReason,
    RetcodeClass,
    TradingState,
    can_transition,
)

S = ExecutionStatus
NOT_FINAL = [s for s in S if s not in FINAL_STATUSES]


def test_final_statuses_are_the_designed_ones() -> None:
    assert {s for s in S if s.is_final} == FINAL_STATUSES
    assert {S.FILLED, S.PARTIALLY_FILLED, S.REJECTED, S.EXPIRED} == FINAL_STATUSES
    assert set(NOT_FINAL) == {S.PENDING, S.SUBMITTING, S.SUBMITTED, S.UNKNOWN}


def test_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_final_statuses_have_no_way_out(status: ExecutionStatus) -> None:
    assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize(("old", "new"), list(product(S, S)))
def test_can_transition_follows_the_table(old: ExecutionStatus, new: ExecutionStatus) -> None:
    assert can_transition(old, new) is (new in TRANSITIONS[old])


@pytest.mark.parametrize("status", list(S))
def test_no_self_transitions(status: ExecutionStatus) -> None:
    assert not can_transition(status, status)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.SUBMITTING),
        (S.PENDING, S.REJECTED),  # validation failure, halt
        (S.SUBMITTING, S.SUBMITTED),
        (S.SUBMITTING, S.FILLED),  # DONE with a deal
        (S.SUBMITTING, S.UNKNOWN),  # TIMEOUT, None + IPC error
        (S.SUBMITTING, S.PENDING),  # clean reject, retry
        (S.SUBMITTING, S.REJECTED),
        (S.SUBMITTED, S.EXPIRED),  # order timeout
        (S.SUBMITTED, S.SUBMITTING),  # `complete` policy re-submits the remainder
        (S.UNKNOWN, S.FILLED),  # reconciliation found it
        (S.UNKNOWN, S.REJECTED),  # provably absent: NOT_SENT
    ],
)
def test_designed_transitions_are_allowed(old: ExecutionStatus, new: ExecutionStatus) -> None:
    assert can_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.FILLED),  # nothing is filled that was not first written ahead
        (S.PENDING, S.SUBMITTED),
        (S.PENDING, S.UNKNOWN),
        (S.UNKNOWN, S.PENDING),  # an UNKNOWN is reconciled, never resent
        (S.UNKNOWN, S.SUBMITTING),
        (S.FILLED, S.PENDING),
        (S.REJECTED, S.SUBMITTING),
    ],
)
def test_dangerous_transitions_are_refused(old: ExecutionStatus, new: ExecutionStatus) -> None:
    assert not can_transition(old, new)


def _reachable(start: ExecutionStatus) -> set[ExecutionStatus]:
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in TRANSITIONS[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


@pytest.mark.parametrize("status", NOT_FINAL)
def test_every_open_status_can_still_end(status: ExecutionStatus) -> None:
    assert _reachable(status) & FINAL_STATUSES


def test_every_status_is_reachable_from_pending() -> None:
    assert _reachable(S.PENDING) == set(S)


@pytest.mark.parametrize(
    "enum",
    [DecisionStatus, ExecutionStatus, RejectionReason, RetcodeClass, TradingState],
)
def test_string_enums_are_their_names(enum: type[Enum]) -> None:
    for member in enum:
        assert member.value == member.name
        assert str(member) == member.name


def test_direction_is_plus_minus_one() -> None:
    assert (Direction.BUY, Direction.SELL) == (1, -1)
    assert Direction(1) is Direction.BUY


def test_partial_fill_policy_values() -> None:
    assert [p.value for p in PartialFillPolicy] == ["accept", "complete"]


def test_reason_codes_used_by_the_rules_exist() -> None:
    for name in (
        "INVALID_VOLUME",
        "MARGIN_INSUFFICIENT",
        "SYMBOL_NOT_TRADABLE",
        "NOT_SENT",
        "SPREAD_TOO_WIDE",
        "NO_MARKET_DATA",
        "TRADING_HALTED",
        "ORDER_TIMEOUT",
    ):
        assert RejectionReason[name].value == name


def test_retcode_classes() -> None:
    assert {c.value for c in RetcodeClass} == {"SUCCESS", "RETRY", "AMBIGUOUS", "FINAL"}
