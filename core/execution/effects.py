"""What an execution asks the world to do: each a frozen record.

The shell carries them out in order. One rule binds it: an effect that follows a `Commit`
in the same list runs only once that commit is acknowledged. When the commit fails, the
rest of the list is dropped and, for a commit with `answer_failure`, `CommitFailed` is fed
back (the execution answers the error); for any other commit the error is raised (the
actor dies, and recovery settles the execution from its last committed state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.enums import OppositePolicy, PositionScope
from core.execution.events import IntentCommitted
from core.execution.state import Entry, Stage
from core.models import ApprovedTrade, ExecutionConfirmation, ExecutionLog, ExecutionRequest
from core.records import Preflight


@dataclass(frozen=True, slots=True)
class Commit:
    entries: tuple[Entry, ...]
    ack: IntentCommitted | None = None
    """Fed back once committed: the write-ahead a send waits for."""
    answer_failure: bool = False


@dataclass(frozen=True, slots=True)
class Next:
    """Tell the execution `stage` now, behind what is already in its inbox."""

    stage: Stage


@dataclass(frozen=True, slots=True)
class Schedule:
    """Tell the execution `stage` after `delay` seconds."""

    delay: float
    stage: Stage


@dataclass(frozen=True, slots=True)
class ArmTimeout:
    """Schedule the order timeout (TIMEOUT stage) after `delay`; one at a time."""

    delay: float


@dataclass(frozen=True, slots=True)
class DisarmTimeout:
    """Cancel the armed order timeout (the order settled, or the execution is ending)."""


@dataclass(frozen=True, slots=True)
class AskPreflight:
    symbol: str


@dataclass(frozen=True, slots=True)
class ReadPositions:
    symbol: str


@dataclass(frozen=True, slots=True)
class ClaimLegs:
    """Plan the legs against the positions others are not already closing, and claim the
    ones this plan closes (`PositionClaims`): answered by `Planned`."""

    pre: Preflight
    trade: ApprovedTrade
    lots: float
    magic: int
    scope: PositionScope
    policy: OppositePolicy


@dataclass(frozen=True, slots=True)
class HoldMargin:
    """Check `amount` against the free margin and what others hold, and hold it, as one
    step: answered by `MarginHeld`."""

    amount: float
    free: float
    cushion: float


@dataclass(frozen=True, slots=True)
class SendLeg:
    """order_send of one leg, queued at the BrokerActor: answered by `SendCompleted`."""

    request: ExecutionRequest
    deadline: float | None
    wait: float
    """How long the answer may take: the time to the deadline (plus an ask timeout)."""
    leg: int
    attempt: int


@dataclass(frozen=True, slots=True)
class Watch:
    ticket: int
    lots: float


@dataclass(frozen=True, slots=True)
class Unwatch:
    ticket: int


@dataclass(frozen=True, slots=True)
class RemoveOrder:
    """TRADE_ACTION_REMOVE: answered by `Removed`."""

    ticket: int


@dataclass(frozen=True, slots=True)
class CheckRemoval:
    """Read the removed order: answered by `RemovalChecked` (None on any failure)."""

    ticket: int
    lots: float


@dataclass(frozen=True, slots=True)
class TraceSend:
    """What the BrokerActor saw of the send: answered by `Traced` or `LookFailed`."""

    client_id: str


@dataclass(frozen=True, slots=True)
class QueryOrder:
    """Answered by `LookedUp` or `LookFailed`."""

    ticket: int
    lots: float


@dataclass(frozen=True, slots=True)
class FindOrder:
    """The order by its client id: answered by `LookedUp` or `LookFailed`."""

    client_id: str
    symbol: str
    direction: int
    lots: float
    since: datetime


@dataclass(frozen=True, slots=True)
class MarkSubmitted:
    """The first send of the execution starts: its submit-to-send latency."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CountRetry:
    retcode: int | None


@dataclass(frozen=True, slots=True)
class MarkUnknown:
    unknown: bool


@dataclass(frozen=True, slots=True)
class Release:
    """Give back the margin and position claims held, and the UNKNOWN mark."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The final state is committed: report it and answer the caller with it; stop."""

    log: ExecutionLog


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer the caller with `error` and stop (the last committed state stands)."""

    error: Exception


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer without a record (none could be built) and stop."""

    confirmation: ExecutionConfirmation


Effect = (
    Commit
    | Next
    | Schedule
    | ArmTimeout
    | DisarmTimeout
    | AskPreflight
    | ReadPositions
    | ClaimLegs
    | HoldMargin
    | SendLeg
    | Watch
    | Unwatch
    | RemoveOrder
    | CheckRemoval
    | TraceSend
    | QueryOrder
    | FindOrder
    | MarkSubmitted
    | CountRetry
    | MarkUnknown
    | Release
    | Finish
    | Fail
    | Refuse
)

__all__ = [
    "ArmTimeout",
    "AskPreflight",
    "CheckRemoval",
    "ClaimLegs",
    "Commit",
    "CountRetry",
    "DisarmTimeout",
    "Effect",
    "Fail",
    "FindOrder",
    "Finish",
    "HoldMargin",
    "MarkSubmitted",
    "MarkUnknown",
    "Next",
    "QueryOrder",
    "ReadPositions",
    "Refuse",
    "Release",
    "RemoveOrder",
    "Schedule",
    "SendLeg",
    "TraceSend",
    "Unwatch",
    "Watch",
]
