"""The state of one execution, as one frozen record, and what the core is told besides.

`Execution` replaces the OrderActor's attributes: the shell keeps the current record and
swaps it for the one `step` returns. Phases say what the execution waits for; they are an
Enum, so a typo is an import error, not a run-time `AttributeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from core.enums import ExecutionStatus
from core.models import ExecutionLeg, ExecutionLog, ExecutionRequest, RPMOutput
from core.records import Preflight, SendTrace, SymbolSpec
from core.rules.positions import PositionPlan
from core.rules.validation import Market


class Phase(Enum):
    """What the execution is waiting for."""

    NEW = "new"
    """Created; its record is built on the CREATE stage."""
    VALIDATING = "validating"
    """The preflight, the positions, the planned legs or the margin hold is asked for."""
    VALIDATED = "validated"
    """Validated (or waiting to re-send a leg): the SUBMIT stage comes next."""
    AWAITING_INTENT_COMMIT = "awaiting_intent_commit"
    """SUBMITTING is being committed: nothing may be sent before it is acknowledged."""
    AWAITING_SEND = "awaiting_send"
    """The leg is in the BrokerActor's send line or being sent."""
    WATCHING = "watching"
    """SUBMITTED: the order is working and polled."""
    RECONCILING = "reconciling"
    """The send's outcome is unknown: looking its order up, never resending."""
    REMOVING = "removing"
    """A timeout or a halt removes the working order, then settles on what filled."""
    DONE = "done"


class Stage(Enum):
    """The steps the execution tells itself (now or after a delay), between which a Halt
    or a fill in its inbox is handled."""

    CREATE = "create"
    VALIDATE = "validate"
    SUBMIT = "submit"
    RECONCILE = "reconcile"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Now:
    """The time of one step: wall time for records, monotonic for deadlines."""

    wall: datetime
    mono: float


@dataclass(frozen=True, slots=True)
class Trading:
    """The kill switch as the shell read it when it delivered the event."""

    halted: bool = False
    reducing: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """The execution's inputs, as the facade handed them over."""

    execution_id: str
    request_id: str
    client_id: str
    rpm: RPMOutput
    fingerprint: str
    rpm_payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal event (and the projection it writes, if it changes the record)."""

    execution_id: str
    event_type: str
    payload: dict[str, Any]
    engine_time_us: int
    broker_time_msc: int | None = None
    projection: ExecutionLog | None = None
    creates: bool = False


@dataclass(frozen=True, slots=True)
class Validation:
    """What validation learned so far, between its asks."""

    pre: Preflight
    spec: SymbolSpec
    lots: float
    plan: PositionPlan | None = None
    market: Market | None = None


@dataclass(frozen=True, slots=True)
class Removal:
    """Why the working order is being removed, and what the removal answered."""

    reason: Any
    """The `RejectionReason` the execution ends with if nothing filled."""
    details: str


@dataclass(frozen=True, slots=True)
class Execution:
    """Everything one execution knows between two steps."""

    job: Job
    born: float
    """About when submit() was called (monotonic): the start of submit-to-send latency."""
    phase: Phase = Phase.NEW
    log: ExecutionLog | None = None
    request: ExecutionRequest | None = None
    spec: SymbolSpec | None = None
    ticket: int | None = None
    order_lots: float = 0.0
    prior_fills: tuple[tuple[float, float], ...] = ()
    """(lots, price) filled by earlier orders of this execution (legs, `complete` policy)."""
    current_fills: tuple[tuple[float, float], ...] = ()
    """(lots, price) of the current order: its DONE result, or its deals once polled."""
    deadline: float | None = None
    timeout_armed: bool = False
    halt_reason: str | None = None
    broker_gone: int = 0
    """Validations retried because the BrokerActor was being replaced."""
    deferred: tuple[Entry, ...] = ()
    """Events written with the next commit (see `_run.Run.write`)."""
    looks: int = 0
    """Lookups of an ambiguous send so far (their back-off)."""
    absence_base: tuple[int, int, float] | None = None
    """`AbsenceClock.base`: how long an ambiguous send's order has had to appear."""
    fate: str | None = None
    """What the last lookup that found nothing learned (journaled when it changes)."""
    legs: tuple[ExecutionLeg, ...] = ()
    leg: int = 0
    """Index of the leg being sent or settled."""
    leg_request: ExecutionRequest | None = None
    leg_attempts: int = 0
    last_deal: int = 0
    position_gone: bool = False
    """The current CLOSE leg was answered 10036: its position no longer exists."""
    validation: Validation | None = None
    removal: Removal | None = None
    trace: SendTrace | None = None
    """The send trace of the lookup in progress (read before the lookup itself)."""

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def fills(self) -> tuple[tuple[float, float], ...]:
        return (*self.prior_fills, *self.current_fills)

    @property
    def status(self) -> ExecutionStatus | None:
        return self.log.status if self.log is not None else None


__all__ = [
    "Entry",
    "Execution",
    "Job",
    "Now",
    "Phase",
    "Removal",
    "Stage",
    "Trading",
    "Validation",
]
