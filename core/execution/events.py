"""What an execution is told: each a frozen record, one per fact.

The shell turns every message and every answer to an effect into one of these and feeds it
to `step`. Answers carry what was answered; failures carry the error's text (or, for a
commit, the exception the caller is answered with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.enums import RejectionReason
from core.execution.state import Stage, Trading
from core.records import OrderFinding, Preflight, SendOutcome, SendTrace
from core.rules._common import Denied
from core.rules.positions import OpenPosition, PositionPlan


@dataclass(frozen=True, slots=True)
class StageDue:
    """A stage the execution told itself (now, or later by the scheduler) is due."""

    stage: Stage
    trading: Trading = field(default_factory=Trading)


@dataclass(frozen=True, slots=True)
class Preflighted:
    pre: Preflight
    held_margin: float
    """Margin held by every execution in flight, read as the preflight was answered."""


@dataclass(frozen=True, slots=True)
class PreflightFailed:
    error: str
    broker_gone: bool
    """The BrokerActor never took the ask (it is being replaced): try again later."""


@dataclass(frozen=True, slots=True)
class PositionsRead:
    read: tuple[float, tuple[OpenPosition, ...]] | None
    """(read at, the symbol's positions), or None when they could not be read."""


@dataclass(frozen=True, slots=True)
class Planned:
    plan: PositionPlan | Denied
    trading: Trading = field(default_factory=Trading)


@dataclass(frozen=True, slots=True)
class MarginHeld:
    refusal: Denied | None
    """None: the margin is held for this execution."""


@dataclass(frozen=True, slots=True)
class IntentCommitted:
    """The write-ahead (SUBMITTING) of this leg and attempt is committed."""

    leg: int
    attempt: int


@dataclass(frozen=True, slots=True)
class CommitFailed:
    error: Exception


@dataclass(frozen=True, slots=True)
class SendCompleted:
    outcome: SendOutcome
    trading: Trading = field(default_factory=Trading)


@dataclass(frozen=True, slots=True)
class WatchFailed:
    """The BrokerActor was not there to take the watch."""


@dataclass(frozen=True, slots=True)
class WatchLost:
    """A restarted BrokerActor has lost the watches of the old one."""


@dataclass(frozen=True, slots=True)
class FillFound:
    """The shared poll found news about the watched order."""

    finding: OrderFinding


@dataclass(frozen=True, slots=True)
class Halted:
    """Trading was halted (or this execution cancelled)."""

    why: str
    reason: RejectionReason = RejectionReason.TRADING_HALTED


@dataclass(frozen=True, slots=True)
class Removed:
    """TRADE_ACTION_REMOVE answered (`outcome`), or failed (`error`)."""

    outcome: SendOutcome | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class RemovalChecked:
    """The removed order as the terminal shows it afterwards; None: not readable."""

    finding: OrderFinding | None


@dataclass(frozen=True, slots=True)
class Traced:
    trace: SendTrace


@dataclass(frozen=True, slots=True)
class LookedUp:
    """The ambiguous send's order, or None when the terminal has no such order."""

    finding: OrderFinding | None


@dataclass(frozen=True, slots=True)
class LookFailed:
    error: str


@dataclass(frozen=True, slots=True)
class OwnFailure:
    """Handling this execution's own data raised (see `can_settle_own_failure`)."""

    details: str


Event = (
    StageDue
    | Preflighted
    | PreflightFailed
    | PositionsRead
    | Planned
    | MarginHeld
    | IntentCommitted
    | CommitFailed
    | SendCompleted
    | WatchFailed
    | WatchLost
    | FillFound
    | Halted
    | Removed
    | RemovalChecked
    | Traced
    | LookedUp
    | LookFailed
    | OwnFailure
)

__all__ = [
    "CommitFailed",
    "Event",
    "FillFound",
    "Halted",
    "IntentCommitted",
    "LookFailed",
    "LookedUp",
    "MarginHeld",
    "OwnFailure",
    "Planned",
    "PositionsRead",
    "PreflightFailed",
    "Preflighted",
    "RemovalChecked",
    "Removed",
    "SendCompleted",
    "StageDue",
    "Traced",
    "WatchFailed",
    "WatchLost",
]
