"""Messages and records: frozen pydantic models.

The RPM message is validated at the door, so that everything behind it can trust it: a bad
field is refused with a message that names it. Fields the RPM sends that the engine does not
use are kept as given (``extra="allow"``) so the audit trail holds the whole original message.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
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
    model_serializer,
    model_validator,
)
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from core.accounts import ACCOUNT_NAME, ACCOUNT_NAME_PATTERN, ACCOUNT_NAME_RULE, DEFAULT_ACCOUNT
from core.enums import DecisionStatus, ExecutionStatus, LegAction, RejectionReason

MAX_SYMBOL_LENGTH = 32
"""MT5 symbol names are short; 32 leaves room for broker suffixes like ``EURUSD.pro``."""

DECISION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
"""A decision id is the idempotency key, so two ids must differ only if they look different:
ASCII letters and digits, then also ``_ . : -``, 1-128 characters. No Unicode (NFC and NFD
forms, fullwidth and other look-alikes), no spaces, controls, zero-width or direction marks.
It starts with a letter or digit, so that it is never read as a CLI option or a hidden name."""

DECISION_ID_RULE = "must be 1-128 ASCII letters, digits and _ . : - starting with a letter or digit"
DECISION_ID = re.compile(DECISION_ID_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
"""The pattern for `fullmatch` (Python's ``$`` would also match before a final newline)."""

MAX_NESTING_DEPTH = 32
"""How deep the RPM message may nest (the engine's own fields use 3 levels): deeper extra
context is refused rather than half-stored (the serializers give up past ~255 levels)."""

MAX_PRICE = 1e12
"""A sanity bound on the RPM's intended price, far above any traded quote: slippage is the
gap to the fill over a pip (as small as 1e-8), and must stay a finite number to be stored."""

_MAX_FLOAT_INT = int(sys.float_info.max)
"""The largest integer a 64-bit float holds; beyond it JSON readers see infinity."""

_FINITE = "must be a finite number (NaN, Infinity and numbers beyond a 64-bit float are refused)"


def _is_finite(value: float) -> bool:
    if isinstance(value, int):
        return -_MAX_FLOAT_INT <= value <= _MAX_FLOAT_INT  # math.isfinite would overflow
    return math.isfinite(value)


def _finite_positive(value: float) -> float:
    if not _is_finite(value) or value <= 0:
        raise ValueError("must be a finite number greater than zero")
    return value


def _finite(value: float) -> float:
    if not _is_finite(value):
        raise ValueError(_FINITE)
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
Price = Annotated[StrictFloat | StrictInt, Field(le=MAX_PRICE), AfterValidator(_finite_positive)]
NonNegativeFinite = Annotated[StrictFloat | StrictInt, Field(ge=0), AfterValidator(_finite)]
Fraction = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1), AfterValidator(_finite)]
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
    confidence_score: Fraction | None = None
    atr: NonNegativeFinite | None = None
    intended_price: Price | None = None
    position_ticket: int | None = Field(
        None,
        gt=0,
        description="Close exactly this open position (its ticket): the direction must be "
        "opposite to it and the units at most its volume; nothing else is opened.",
    )
    stop_loss: Price | None = None
    """Absolute price of a stop-loss the broker holds on the position the trade opens."""
    take_profit: Price | None = None
    """Absolute price of a take-profit the broker holds on the position the trade opens."""

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
    decision_id: str = Field(
        min_length=1,
        max_length=128,
        # The schema states the pattern; the validator enforces it with the exact message.
        json_schema_extra={"pattern": DECISION_ID_PATTERN},
        description="The idempotency key: 1-128 ASCII letters, digits and _ . : - "
        "starting with a letter or digit.",
    )
    approved_trade: ApprovedTrade | None = None

    @field_validator("decision_id")
    @classmethod
    def _decision_id_is_safe(cls, value: str) -> str:
        if DECISION_ID.fullmatch(value) is None:
            raise ValueError(DECISION_ID_RULE)
        return value

    @model_validator(mode="after")
    def _approved_has_trade(self) -> Decision:
        if self.status is DecisionStatus.APPROVED and self.approved_trade is None:
            raise ValueError("decision.approved_trade is required when decision.status is APPROVED")
        return self


class PortfolioState(_FrozenOpen):
    """The RPM's view of the portfolio; only `trading_halted` is read by the engine."""

    trading_halted: bool = False


_MAX_PROBLEMS = 10
"""Problems named in one refusal; a message with thousands of bad values gets a short answer."""


def _name(where: str, key: object) -> str:
    text = str(key).replace("\x00", "?")
    if len(text) > 64:
        text = text[:61] + "..."
    shown = text if text.isprintable() else ascii(text)[1:-1]  # never echo raw controls
    return f"{where}.{shown}" if where else shown


def message_problems(data: Any) -> list[str]:
    """What the whole message (extra context included) holds that the engine refuses: NUL
    characters (PostgreSQL stores none), numbers that are not finite 64-bit floats (JSON
    stores none, so they would be stored as null and two messages share a fingerprint) and
    nesting deeper than `MAX_NESTING_DEPTH`. Iterative, so any depth is safe to walk."""
    problems: list[str] = []
    todo: list[tuple[Any, str, int]] = [(data, "", 0)]
    while todo and len(problems) < _MAX_PROBLEMS:
        value, where, depth = todo.pop()
        if isinstance(value, str):
            if "\x00" in value:
                problems.append(f"{where or 'message'}: NUL characters are not allowed")
        elif isinstance(value, float | int) and not isinstance(value, bool):
            if not _is_finite(value):
                problems.append(f"{where or 'message'}: {_FINITE}")
        elif isinstance(value, dict | list | tuple | BaseModel):
            if depth >= MAX_NESTING_DEPTH:
                problems.append(
                    f"{where or 'message'}: nested deeper than {MAX_NESTING_DEPTH} levels"
                )
                continue
            if isinstance(value, BaseModel):
                value = dict(value)  # fields and extra context (built by a Python caller)
            items = list(value.items() if isinstance(value, dict) else enumerate(value))
            for key, item in reversed(items):  # popped in document order
                name = _name(where, key)
                if isinstance(key, str) and "\x00" in key:
                    problems.append(f"{name}: NUL characters are not allowed (in the name)")
                todo.append((item, name, depth + 1))
    return problems


class RPMOutput(_FrozenOpen):
    """One message from the Risk & Portfolio Manager."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # The whole message is stored and fingerprinted, extra context included: refuse
        # at the door, naming where, what could not be stored as given.
        problems = message_problems(data)
        if problems:
            raise ValueError("; ".join(problems))
        return data

    decision: Decision
    account: str = Field(
        default=DEFAULT_ACCOUNT,
        min_length=1,
        max_length=64,
        json_schema_extra={"pattern": ACCOUNT_NAME_PATTERN},
        description="The account to trade on (a name from the accounts file); absent means "
        f"{DEFAULT_ACCOUNT!r}.",
    )
    portfolio_state: PortfolioState = Field(default_factory=PortfolioState)
    rpm_version: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    timestamp: AwareDatetime | None = None

    @field_validator("account")
    @classmethod
    def _account_is_a_name(cls, value: str) -> str:
        if ACCOUNT_NAME.fullmatch(value) is None:
            raise ValueError(ACCOUNT_NAME_RULE)
        return value

    @model_serializer(mode="wrap")
    def _without_default_account(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The default account is left out of the dump, so that a message naming no account
        # keeps the payload and fingerprint it had before accounts existed (a repeat sent
        # across the upgrade is still a repeat), and naming "default" is the same message.
        data = handler(self)
        if isinstance(data, dict) and data.get("account") == DEFAULT_ACCOUNT:
            del data["account"]
        return data

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


LegStatus = Literal[
    "PLANNED", "SUBMITTING", "UNKNOWN", "FILLED", "PARTIALLY_FILLED", "NOT_FILLED", "NOT_SENT"
]
"""PLANNED: not sent yet. SUBMITTING: written ahead of its order_send. UNKNOWN: the send
was ambiguous, being reconciled. NOT_SENT: never went out (an earlier leg failed, or the
engine stopped before it). NOT_FILLED: sent, and nothing filled."""


class ExecutionLeg(_Frozen):
    """One order_send of an execution: CLOSE position `position_ticket`, or OPEN."""

    index: int
    action: LegAction
    volume: float
    """Lots planned."""
    client_id: str
    """The order comment of this leg (the execution's own for its first leg)."""
    position_ticket: int | None = None
    status: LegStatus = "PLANNED"
    filled_volume: float = 0.0
    fill_price: float | None = None
    order_id: int | None = None
    deal_id: int | None = None

    @property
    def settled(self) -> bool:
        return self.status in ("FILLED", "PARTIALLY_FILLED", "NOT_FILLED", "NOT_SENT")


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
    position: int | None = None
    """Close this position ticket (a CLOSE leg); None opens (or nets) as a plain deal."""
    reduces: bool = False
    """Only reduces a position: allowed through the REDUCING gate."""
    stop_loss: float | None = None
    """Sent as ``sl`` (rounded to the symbol's digits); only by a trade that opens."""
    take_profit: float | None = None
    """Sent as ``tp`` (rounded to the symbol's digits); only by a trade that opens."""


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
    legs: tuple[ExecutionLeg, ...] = ()
    """The order_sends of the execution (closes first, then the opening remainder)."""
    account: str = DEFAULT_ACCOUNT
    """The account it trades on (`RPMOutput.account`); rows from before accounts: default.
    Last, so that the audit export's CSV columns before it keep their places."""

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def evolve(self, **changes: Any) -> ExecutionLog:
        """A copy with `changes` applied and validated (models are frozen).

        Validated from the fields as they are, not from a dump: the legs are valid frozen
        records already (pydantic keeps them), and the RPM payload, which no step changes,
        stays the same object, so the journal writer knows it unchanged without a walk.
        """
        new = self.model_validate({**self.__dict__, **changes})
        if "rpm_payload" not in changes:
            # Validating a `dict[str, Any]` only copies it: the copy would be equal.
            new.__dict__["rpm_payload"] = self.rpm_payload
        return new

    def changes_from(self, previous: ExecutionLog | None) -> dict[str, Any]:
        """The JSON-ready fields that differ from `previous` (when None: all of them, as a
        first journal event records them, `journal_created_fields`)."""
        mine = self.model_dump(mode="json")
        if previous is None:
            return journal_created_fields(mine)
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
            legs=self.legs,
            account=self.account,
        )


def journal_created_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """An execution's JSON fields as its first journal event records them: the default
    account is left out, so a single-account engine writes the journal it wrote before
    accounts existed and an old row, which names none, reads the same (`replay_projection`
    puts `DEFAULT_ACCOUNT` back)."""
    if fields.get("account") != DEFAULT_ACCOUNT:
        return fields
    return {key: value for key, value in fields.items() if key != "account"}


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
    legs: tuple[ExecutionLeg, ...] = ()
    account: str = DEFAULT_ACCOUNT

    @classmethod
    def refused(
        cls,
        execution_id: str,
        reason: RejectionReason,
        details: str,
        rpm_decision_id: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> ExecutionConfirmation:
        """REJECTED before anything was recorded or sent (the message could not be taken)."""
        return cls(
            execution_id=execution_id,
            order_id=None,
            status=ExecutionStatus.REJECTED,
            symbol="",
            direction=0,
            intended_units=0.0,
            executed_units=0.0,
            fill_price=None,
            slippage_pips=None,
            rejection_reason=reason,
            rejection_details=details,
            rpm_decision_id=rpm_decision_id,
            account=account,
        )


class JournalEvent(_Frozen):
    """One row of the append-only journal, as read back."""

    sequence: int
    execution_id: str | None
    event_type: str
    """A `JournalEventType` value; typed `str` so that any stored row still reads back."""
    payload: dict[str, Any]
    engine_time_us: int
    broker_time_msc: int | None = None
    prev_hash: str
    hash: str


class TradingStateRecord(_Frozen):
    """The kill switch's persisted state: who set it, when and why, on which account."""

    state: str
    changed_by: str
    reason: str
    changed_at: datetime
    account: str = DEFAULT_ACCOUNT
    """Each account has its own state; a firm-wide change sets every account's."""

    @model_serializer(mode="wrap")
    def _without_default_account(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Left out for the default account: a single-account engine journals the trading
        # state exactly as it did before accounts existed.
        data = handler(self)
        if isinstance(data, dict) and data.get("account") == DEFAULT_ACCOUNT:
            del data["account"]
        return data
