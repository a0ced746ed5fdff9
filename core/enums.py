"""Enumerations shared by every layer: statuses, their transition table, reason codes."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class DecisionStatus(StrEnum):
    """What the RPM decided. Only APPROVED decisions are ever sent to a terminal."""

    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    HOLD = "HOLD"


class Direction(IntEnum):
    """+1 buy, -1 sell, as the RPM sends it."""

    BUY = 1
    SELL = -1


class ExecutionStatus(StrEnum):
    """Lifecycle of one execution (DESIGN.md, "Statuses")."""

    PENDING = "PENDING"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    UNKNOWN = "UNKNOWN"
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {
        ExecutionStatus.FILLED,
        ExecutionStatus.PARTIALLY_FILLED,
        ExecutionStatus.REJECTED,
        ExecutionStatus.EXPIRED,
    }
)

_S = ExecutionStatus

#: The one table of legal status changes. Final statuses have no way out: a fill that
#: arrives after a final state is a reconciliation finding, journaled, never a transition.
TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    # PENDING -> REJECTED covers validation failures and halts before anything is sent.
    _S.PENDING: frozenset({_S.SUBMITTING, _S.REJECTED}),
    # SUBMITTING is the write-ahead state: the send may have happened or not.
    # -> PENDING is a retry after a clean rejection (nothing executed).
    _S.SUBMITTING: frozenset(
        {
            _S.PENDING,
            _S.SUBMITTED,
            _S.UNKNOWN,
            _S.FILLED,
            _S.PARTIALLY_FILLED,
            _S.REJECTED,
        }
    ),
    # SUBMITTED -> SUBMITTING: the `complete` partial-fill policy sends the remainder.
    _S.SUBMITTED: frozenset(
        {_S.SUBMITTING, _S.FILLED, _S.PARTIALLY_FILLED, _S.EXPIRED, _S.UNKNOWN, _S.REJECTED}
    ),
    # UNKNOWN is resolved only by reconciliation, never by resending.
    _S.UNKNOWN: frozenset({_S.SUBMITTED, _S.FILLED, _S.PARTIALLY_FILLED, _S.REJECTED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.PARTIALLY_FILLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


def can_transition(old: ExecutionStatus, new: ExecutionStatus) -> bool:
    """True when `old -> new` is in the transition table."""
    return new in TRANSITIONS[old]


class RejectionReason(StrEnum):
    """Reason codes carried by REJECTED (and EXPIRED) executions."""

    RPM_NOT_APPROVED = "RPM_NOT_APPROVED"
    TRADING_HALTED = "TRADING_HALTED"
    SYMBOL_NOT_TRADABLE = "SYMBOL_NOT_TRADABLE"
    MARKET_CLOSED = "MARKET_CLOSED"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    INVALID_VOLUME = "INVALID_VOLUME"
    MARGIN_INSUFFICIENT = "MARGIN_INSUFFICIENT"
    TERMINAL_NOT_READY = "TERMINAL_NOT_READY"
    BROKER_REJECTED = "BROKER_REJECTED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    NOT_SENT = "NOT_SENT"
    ORDER_TIMEOUT = "ORDER_TIMEOUT"
    CANCELLED = "CANCELLED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    INVALID_INPUT = "INVALID_INPUT"
    """The RPM message broke a rule of the message itself (the details name the field)."""
    REDUCE_ONLY = "REDUCE_ONLY"
    """Trading is REDUCING and the trade would open (or add to) a position: nothing sent."""
    INVALID_STOPS = "INVALID_STOPS"
    """The stop-loss or take-profit is on the wrong side or inside the symbol's stops level."""


class RetcodeClass(StrEnum):
    """What an order_send outcome means for the next step (DESIGN.md, stage 4)."""

    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    AMBIGUOUS = "AMBIGUOUS"
    FINAL = "FINAL"


class PartialFillPolicy(StrEnum):
    """`accept` keeps a partial fill as final; `complete` re-submits the remainder."""

    ACCEPT = "accept"
    COMPLETE = "complete"


class TradingState(StrEnum):
    """The engine-wide kill switch: ACTIVE, REDUCING (only trades that reduce positions may
    be sent), HALTED (nothing is sent)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class LegAction(StrEnum):
    """One order_send of an execution: CLOSE a position by its ticket (fully or partly), or
    OPEN: a plain deal with no position ticket (on a netting account MT5 nets it itself)."""

    CLOSE = "CLOSE"
    OPEN = "OPEN"


class PositionScope(StrEnum):
    """Which open positions the engine counts as its own (`EE_POSITION_SCOPE`)."""

    ENGINE = "engine"
    """Only those carrying this engine's magic."""
    ACCOUNT = "account"
    """Every position on the account, whoever opened it."""


class OppositePolicy(StrEnum):
    """What a trade opposite to open positions does on a hedging account
    (`EE_OPPOSITE_POSITIONS`)."""

    REDUCE = "reduce"
    """Close them oldest first (FIFO), open a new position only for the remainder."""
    HEDGE = "hedge"
    """Open a new position beside them."""
