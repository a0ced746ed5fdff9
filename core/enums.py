"""Enumerations shared by every layer: statuses, their transition table, reason codes, and
the journal's event types."""

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
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    """The RPM message names an account this engine does not have (the accounts file):
    nothing recorded, nothing sent."""


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


class JournalEventType(StrEnum):
    """What a journal row records (its `event_type` column).

    The values are the stored strings, unchanged: a StrEnum member equals its value, so rows
    written before the enum existed read back as members. Names are at most 64 characters
    (the column's width). An execution's events come first, then the engine-wide ones.
    """

    EXECUTION_CREATED = "EXECUTION_CREATED"
    """The execution was accepted and its PENDING row created (the first event of each)."""
    VALIDATED = "VALIDATED"
    """Pre-trade checks passed; the payload keeps the quote, lots and margin they used."""
    SUBMITTING = "SUBMITTING"
    """Write-ahead of an `order_send`: committed before the send, or nothing is sent."""
    SEND_RETRY = "SEND_RETRY"
    """The send was refused with a retryable retcode; back to PENDING for another try."""
    SEND_AMBIGUOUS = "SEND_AMBIGUOUS"
    """The send's outcome is unknown (timeout, lost link): UNKNOWN until reconciled."""
    POSITION_ALREADY_CLOSED = "POSITION_ALREADY_CLOSED"
    """A closing leg found its position gone (10036): the leg is looked up, never resent."""
    ORDER_ACCEPTED = "ORDER_ACCEPTED"
    """The terminal accepted the order (a ticket): SUBMITTED, or a leg's acceptance."""
    ORDER_FOUND = "ORDER_FOUND"
    """An order of an UNKNOWN execution was found at the terminal: SUBMITTED again."""
    PARTIAL_FILL_OBSERVED = "PARTIAL_FILL_OBSERVED"
    """A working order has filled in part so far (no change of status)."""
    PARTIAL_FILL = "PARTIAL_FILL"
    """The order closed short; under the `complete` policy the remainder is sent next."""
    LEG_FILLED = "LEG_FILLED"
    """One leg of a multi-leg execution filled; the next leg follows."""
    ORDER_CLOSED_UNFILLED = "ORDER_CLOSED_UNFILLED"
    """The order closed with nothing filled: REJECTED, or EXPIRED when it expired."""
    ORDER_REMOVE_REQUESTED = "ORDER_REMOVE_REQUESTED"
    """The engine asked the terminal to remove a working order (timeout, halt, recovery)."""
    ORDER_EXPIRED = "ORDER_EXPIRED"
    """The order was removed at its timeout with nothing filled: EXPIRED."""
    ORDER_REMOVED = "ORDER_REMOVED"
    """The order was removed for another reason (a halt) with nothing filled: REJECTED."""
    RECONCILE_DEFERRED = "RECONCILE_DEFERRED"
    """An UNKNOWN execution's lookup failed (terminal unreachable); it will look again."""
    RECONCILE_WAITING = "RECONCILE_WAITING"
    """No order found yet, but absence is not proven: the lookup waits, never resends."""
    RECONCILED_FOUND = "RECONCILED_FOUND"
    """Reconciliation found the UNKNOWN execution's order at the terminal."""
    RECONCILED_ABSENT = "RECONCILED_ABSENT"
    """Reconciliation proved no order exists: nothing executed (or only earlier legs)."""
    EXECUTION_FILLED = "EXECUTION_FILLED"
    """Final: the whole volume filled."""
    EXECUTION_PARTIALLY_FILLED = "EXECUTION_PARTIALLY_FILLED"
    """Final: part of the volume filled and the rest never will."""
    EXECUTION_REJECTED = "EXECUTION_REJECTED"
    """Final: nothing executed (validation, halt, broker refusal, ...); see its reason."""
    RECOVERY_STEP = "RECOVERY_STEP"
    """Crash recovery walking the transition table one committed status at a time."""
    RECOVERED_FOUND = "RECOVERED_FOUND"
    """Crash recovery found the order of an execution left in flight."""
    RECOVERED_LEG_FOUND = "RECOVERED_LEG_FOUND"
    """Crash recovery found the order of one leg of a multi-leg execution."""
    RECOVERED_LEG_ABSENT = "RECOVERED_LEG_ABSENT"
    """Crash recovery proved one leg's order was never executed."""
    RECOVERED_FILLED = "RECOVERED_FILLED"
    """Final, set by crash recovery: the whole volume filled."""
    RECOVERED_PARTIALLY_FILLED = "RECOVERED_PARTIALLY_FILLED"
    """Final, set by crash recovery: part of the volume filled."""
    RECOVERED_REJECTED = "RECOVERED_REJECTED"
    """Final, set by crash recovery: nothing executed."""
    RECOVERED_EXPIRED = "RECOVERED_EXPIRED"
    """Final, set by crash recovery: the order expired with nothing filled."""
    RECONCILE_CORRECTION = "RECONCILE_CORRECTION"
    """An order turned up for an execution settled without one: its real outcome replaces it."""
    TRADING_STATE_CHANGED = "TRADING_STATE_CHANGED"
    """The kill switch changed (ACTIVE, REDUCING, HALTED), with who and why."""
    FLATTEN = "FLATTEN"
    """A flatten started: the positions found and the close executions submitted."""
    FLATTEN_DONE = "FLATTEN_DONE"
    """A flatten finished: what was closed and the realized profit."""
    ACTOR_RESTARTED = "ACTOR_RESTARTED"
    """The supervisor restarted a dead child actor."""
    TERMINAL_IDENTIFIED = "TERMINAL_IDENTIFIED"
    """The terminal's identity, first seen or accepted by a resume: the known one from then."""
    TERMINAL_REFUSED = "TERMINAL_REFUSED"
    """The connected terminal is not the one the journal knows: trading stays halted."""

    @classmethod
    def recovered(cls, status: ExecutionStatus) -> JournalEventType:
        """The event with which crash recovery settles an execution on final `status`."""
        return cls(f"RECOVERED_{status.value}")
