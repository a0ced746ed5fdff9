"""Messages and records: frozen pydantic models.

The RPM message is validated at the door, so that everything behind it can trust it: a bad
field is refused with a message that names it. Fields the RPM sends that the engine does not
use are kept as given (``extra="allow"``) so the audit trail holds the whole original message.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from core.enums import DecisionStatus, ExecutionStatus, RejectionReason

MAX_SYMBOL_LENGTH = 32
"""MT5 symbol names are short; 32 leaves room for broker suffixes like ``EURUSD.pro``."""


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number greater than zero")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (UTC), e.g. 2025-12-23T14:30:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        # e.g. 0001-01-01T00:00:00+00:01 has no UTC equivalent in Python's range.
        raise ValueError("is out of the representable date range") from exc


PositiveFinite = Annotated[StrictFloat | StrictInt, AfterValidator(_finite_positive)]
Finite = Annotated[StrictFloat | StrictInt, AfterValidator(_finite)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware_utc)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _FrozenOpen(BaseModel):
    """Frozen, but keeps fields it does not know (the RPM's extra context)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class ApprovedTrade(_FrozenOpen):
    """What the RPM approved: the engine executes exactly this size, never another."""

    symbol: str = Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)
    direction: Literal[1, -1]
    position_units: PositiveFinite
    confidence_score: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = None
    atr: Annotated[StrictFloat | StrictInt, Field(ge=0)] | None = None
    intended_price: PositiveFinite | None = None

    @field_validator("symbol")
    @classmethod
    def _symbol_is_clean(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable() or not value.isascii():
            raise ValueError("must be a printable ASCII symbol name without surrounding spaces")
        return value

    @field_validator("direction", mode="before")
    @classmethod
    def _direction_is_int(cls, value: object) -> object:
        # Literal[1, -1] would accept True (== 1); a direction must be an integer.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be +1 (buy) or -1 (sell)")
        return value


class Decision(_FrozenOpen):
    """The RPM's decision about one trade."""

    status: DecisionStatus
    decision_id: str = Field(min_length=1, max_length=128)
    approved_trade: ApprovedTrade | None = None

    @model_validator(mode="after")
    def _approved_has_trade(self) -> Decision:
        if self.status is DecisionStatus.APPROVED and self.approved_trade is None:
            raise ValueError("decision.approved_trade is required when decision.status is APPROVED")
        return self


class PortfolioState(_FrozenOpen):
    """The RPM's view of the portfolio; only `trading_halted` is read by the engine."""

    trading_halted: bool = False


def _nul_paths(value: Any, where: str) -> Iterator[str]:
    """Where NUL characters sit in a JSON-like value (keys shown with ? for the NUL)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield where or "message"
    elif isinstance(value, dict):
        for key, item in value.items():
            name = (
                f"{where}.{str(key).replace(chr(0), '?')}"
                if where
                else str(key).replace(chr(0), "?")
            )
            if "\x00" in str(key):
                yield name
            yield from _nul_paths(item, name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _nul_paths(item, f"{where}.{index}")


class RPMOutput(_FrozenOpen):
    """One message from the Risk & Portfolio Manager."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        # PostgreSQL cannot store NUL in text or JSON; refuse it at the door, naming where.
        places = list(_nul_paths(data, ""))
        if places:
            raise ValueError("NUL characters are not allowed (at " + ", ".join(places) + ")")
        return data

    decision: Decision
    portfolio_state: PortfolioState = Field(default_factory=PortfolioState)
    rpm_version: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    timestamp: AwareDatetime | None = None

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    def canonical_json(self) -> str:
        """The message as canonical JSON: the same message gives the same text."""
        return canonical_json(self.model_dump(mode="json"))

    def fingerprint(self) -> str:
        """SHA-256 of the canonical message; tells a repeat from a conflicting payload."""
        return self.payload_and_fingerprint()[1]

    def payload_and_fingerprint(self) -> tuple[dict[str, Any], str]:
        """The message as JSON-ready data (what the execution stores) and its fingerprint,
        from one dump: the submit path needs both, and dumping twice was a visible cost."""
        payload = self.model_dump(mode="json")
        return payload, hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, no NaN: one text per value, for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


class MarketSnapshot(_Frozen):
    """A quote as the engine saw it at validation time."""

    symbol: str
    bid: float
    ask: float
    spread_pips: float
    pip_size: float
    point: float
    digits: int
    tick_time_msc: int
    """Broker-server time of the tick, in milliseconds; never used as a record time."""
    observed_at: datetime
    """Engine UTC time when the tick was read."""

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class ExecutionRequest(_Frozen):
    """The order the engine intends to send, built once validation passed."""

    request_id: str
    execution_id: str
    client_id: str
    symbol: str
    direction: Literal[1, -1]
    units: float
    lots: float
    intended_price: float
    magic: int
    deviation_points: int
    max_slippage_pips: float
    timeout_seconds: float
    max_retries: int


class ExecutionLog(_Frozen):
    """The current state of one execution (the `execution_logs` projection)."""

    execution_id: str
    request_id: str
    rpm_decision_id: str
    client_id: str
    symbol: str
    direction: int
    intended_units: float
    executed_units: float = 0.0
    intended_lots: float | None = None
    executed_lots: float = 0.0
    order_id: int | None = None
    position_id: int | None = None
    fill_price: float | None = None
    intended_price: float | None = None
    slippage_pips: float | None = None
    slippage_abs_pips: float | None = None
    status: ExecutionStatus = ExecutionStatus.PENDING
    rejection_reason: RejectionReason | None = None
    rejection_details: str | None = None
    attempts: int = 0
    magic: int | None = None
    confidence_score: float | None = None
    atr: float | None = None
    rpm_version: str | None = None
    model_version: str | None = None
    engine_version: str
    rpm_fingerprint: str
    rpm_payload: dict[str, Any]
    created_at: datetime
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    updated_at: datetime
    broker_time_msc: int | None = None
    """Broker-server time of the fill (ms), kept apart from the engine's UTC times."""

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def evolve(self, **changes: Any) -> ExecutionLog:
        """A copy with `changes` applied and validated (models are frozen)."""
        return self.model_validate({**self.model_dump(), **changes})

    def changes_from(self, previous: ExecutionLog | None) -> dict[str, Any]:
        """The JSON-ready fields that differ from `previous` (all of them when None)."""
        mine = self.model_dump(mode="json")
        if previous is None:
            return mine
        theirs = previous.model_dump(mode="json")
        return {key: value for key, value in mine.items() if theirs.get(key) != value}

    def to_confirmation(self) -> ExecutionConfirmation:
        return ExecutionConfirmation(
            execution_id=self.execution_id,
            order_id=self.order_id,
            status=self.status,
            symbol=self.symbol,
            direction=self.direction,
            intended_units=self.intended_units,
            executed_units=self.executed_units,
            fill_price=self.fill_price,
            intended_price=self.intended_price,
            slippage_pips=self.slippage_pips,
            rejection_reason=self.rejection_reason,
            rejection_details=self.rejection_details,
            rpm_decision_id=self.rpm_decision_id,
        )


class ExecutionConfirmation(_Frozen):
    """What the caller gets back (DESIGN.md, stage 9)."""

    execution_id: str
    order_id: int | None
    status: ExecutionStatus
    symbol: str
    direction: int
    intended_units: float
    executed_units: float
    fill_price: float | None
    intended_price: float | None = None
    slippage_pips: float | None
    rejection_reason: RejectionReason | None = None
    rejection_details: str | None = None
    rpm_decision_id: str | None = None


class JournalEvent(_Frozen):
    """One row of the append-only journal, as read back."""

    sequence: int
    execution_id: str | None
    event_type: str
    payload: dict[str, Any]
    engine_time_us: int
    broker_time_msc: int | None = None
    prev_hash: str
    hash: str


class TradingStateRecord(_Frozen):
    """The kill switch's persisted state: who set it, when and why."""

    state: str
    changed_by: str
    reason: str
    changed_at: datetime
