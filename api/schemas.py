"""Request and response bodies of the HTTP API that are not engine records.

Request bodies refuse fields they do not know (no mass assignment: a `risk_override` sent
to /halt is a 422, not silently ignored). The RPM message is the exception, by design: its
extra context is kept for the audit trail (see `core.models.RPMOutput`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.accounts import ACCOUNT_NAME_PATTERN, DEFAULT_ACCOUNT
from core.enums import ExecutionStatus, TradingState
from core.models import TradingStateRecord

# Characters a one-line reason may not hold anywhere (C0 and C1 controls, DEL, line and
# paragraph separators) and may not start or end with (whitespace). Spelled out
# rather than `\s`, so that Python and the JSON Schema (ECMA) regex mean the same thing.
_NEVER = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
_SPACE = " \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000\\ufeff"
REASON_PATTERN = f"^[^{_NEVER}{_SPACE}](?:[^{_NEVER}]*[^{_NEVER}{_SPACE}])?$"

Reason = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500, pattern=REASON_PATTERN),
]
"""Free text for the journal: one line of 1-500 characters, no surrounding spaces."""

SYMBOL_PATTERN = r"^[\x21-\x7e]+$"
EXECUTION_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"

AccountName = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=ACCOUNT_NAME_PATTERN,
        description="Only this account's, e.g. default (any account the store holds).",
    ),
]
"""The `?account=` filter of the reads; not checked against the accounts file, so that the
history of an account since removed from it can still be read."""

PATTERN_MESSAGES = {
    REASON_PATTERN: "must be one line without control characters or surrounding spaces",
    SYMBOL_PATTERN: "must be printable ASCII without spaces",
    EXECUTION_ID_PATTERN: "must be letters, digits and _ . : - only",
    ACCOUNT_NAME_PATTERN: "must be 1-64 ASCII letters, digits and _ . - starting with a "
    "letter or digit",
}
"""What each pattern means, for error messages (a regex is no explanation)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AccountField = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=ACCOUNT_NAME_PATTERN,
        description="Only this account (one of the engine's); absent: every account, the firm.",
    ),
]
"""The `account` of a trading-control request (422 when the engine has no such account)."""


class HaltRequest(_Request):
    """Why trading stops."""

    reason: Reason = Field(description="Why trading stops; journaled with who asked.")
    account: AccountField = None
    flatten: bool = Field(
        default=False,
        description="Close every position the engine owns first (REDUCING meanwhile), then halt.",
    )


class FlattenRequest(_Request):
    """Why the engine's positions are closed, and which symbol's (all when absent)."""

    reason: Reason = Field(description="Why; journaled with who asked.")
    account: AccountField = None
    symbol: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SYMBOL_PATTERN)]
        | None
    ) = Field(default=None, description="Only this symbol's positions.")


class FlattenReport(BaseModel):
    """What a flatten did (the fields `actors._flatten` documents, kept as given)."""

    model_config = ConfigDict(extra="allow")

    operation: str
    positions_found: int
    positions_closed: int
    volume_closed: float
    realized_profit: float | None = None
    executions: list[dict[str, Any]]


class ReduceOnlyRequest(_Request):
    """Why trading may only reduce positions from now on."""

    reason: Reason = Field(description="Why trading becomes reduce-only; journaled with who.")
    account: AccountField = None


class ResumeRequest(_Request):
    """Why trading may start again."""

    reason: Reason = Field(description="Why trading resumes; journaled with who asked.")
    account: AccountField = None


class TradingStateOut(BaseModel):
    """The kill switch: ACTIVE, REDUCING or HALTED, and who set it, when and why (null if
    never set)."""

    state: TradingState
    changed_by: str | None = None
    reason: str | None = None
    changed_at: datetime | None = None
    account: str | None = Field(
        default=None, description="Whose state this is (absent: the only or first account's)."
    )
    flatten: FlattenReport | None = Field(
        default=None, description="The flatten's report, for a halt with `flatten`."
    )

    @classmethod
    def of(cls, record: TradingStateRecord | None, account: str | None = None) -> TradingStateOut:
        if record is None:
            return cls(state=TradingState.ACTIVE, account=account)
        return cls(
            state=TradingState(record.state),
            changed_by=record.changed_by,
            reason=record.reason,
            changed_at=record.changed_at,
            account=account,
        )


class ExecutionAccepted(BaseModel):
    """`POST /execute` did not reach a final state within the wait: poll the execution."""

    execution_id: str = Field(description="Poll GET /executions/{execution_id}.")
    rpm_decision_id: str
    status: ExecutionStatus = Field(description="The last committed (not final) status.")
    location: str = Field(description="Path of the execution's resource.")
    account: str = Field(default=DEFAULT_ACCOUNT, description="The account it trades on.")


class HealthOut(BaseModel):
    """`GET /health`: 200 when every part is up, else 503 with the same body."""

    status: Literal["ok", "degraded"]
    broker: dict[str, Any] = Field(
        description="`connected`: the terminal's link (null: not yet checked)."
    )
    database: dict[str, Any] = Field(description="`ok`: the database answered.")
    trading_state: TradingState
    actors: dict[str, str] = Field(
        description="Each supervised actor's state: alive, restarting, dead or stopped."
    )
    executions_in_flight: int
    version: str
    instance: str | None = Field(
        default=None, description="Hot standby: this instance's name (absent otherwise)."
    )
    accounts_owned: list[str] | None = Field(
        default=None,
        description="Hot standby: the accounts this instance trades now; the others are "
        "traded by another instance (absent without a standby).",
    )
    accounts: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="With several accounts, each one's `broker` (`connected`), "
        "`trading_state` and `actors`; the top level is the first account's.",
    )
    detail: dict[str, Any] | None = Field(
        default=None,
        description="The engine's full report (restarts, last failures, halt reason); "
        "only for a caller with a valid token.",
    )


class DrillReport(BaseModel):
    """A failover drill's verdict (the fields `drills` documents, kept as given)."""

    model_config = ConfigDict(extra="allow")

    drill: str
    executions: int
    passed: bool


__all__ = [
    "EXECUTION_ID_PATTERN",
    "PATTERN_MESSAGES",
    "REASON_PATTERN",
    "SYMBOL_PATTERN",
    "AccountName",
    "DrillReport",
    "ExecutionAccepted",
    "FlattenReport",
    "FlattenRequest",
    "HaltRequest",
    "HealthOut",
    "Reason",
    "ReduceOnlyRequest",
    "ResumeRequest",
    "TradingStateOut",
]
