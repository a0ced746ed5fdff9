"""The engine's one exception tree.

Exceptions are for failures of the machinery and for bad calls. A trade the engine refuses
is not an exception: it is a REJECTED execution carrying a `RejectionReason`
(see `core.rules.Denied`).

::

    ExecutionEngineError
     +-- ConfigurationError
     +-- InvalidRequestError
     +-- IdempotencyConflictError
     +-- ExecutionNotFoundError
     +-- UnknownAccountError
     +-- TradingHaltedError
     +-- AccountNotOwnedError
     +-- TerminalError
     |    +-- TerminalNotReadyError
     |    +-- TerminalDisconnectedError
     +-- PersistenceError
     |    +-- PersistenceUnavailableError
     |    +-- JournalIntegrityError
     |    +-- TicketConflictError
     |    +-- LeaseLostError
     |    +-- DuplicateDecisionError
     +-- ReconciliationError
     +-- EngineStoppedError
     +-- ActorUnavailableError

Every class has a stable `code` (for the HTTP error table and for logs). Context travels as
keyword-only attributes, which `details()` returns as a dict; `message` is the human text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


def _rebuild(
    cls: type[ExecutionEngineError], message: str, details: Mapping[str, Any]
) -> ExecutionEngineError:
    return cls(message, **details)


class ExecutionEngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    code: ClassVar[str] = "EXECUTION_ENGINE_ERROR"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self._default_message()
        super().__init__(self.message)

    def _default_message(self) -> str:
        doc = type(self).__doc__ or type(self).__name__
        return doc.strip().splitlines()[0]

    def details(self) -> dict[str, Any]:
        """The keyword attributes of this error (empty for errors that carry none)."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        # The default Exception reduction replays `self.args` positionally, which loses the
        # keyword-only attributes, so pickle and copy.copy would fail or mislabel them.
        return (_rebuild, (type(self), self.message, self.details()))

    def __repr__(self) -> str:
        parts = [repr(self.message), *(f"{k}={v!r}" for k, v in self.details().items())]
        return f"{type(self).__name__}({', '.join(parts)})"


class ConfigurationError(ExecutionEngineError):
    """The configuration (environment variables or arguments) is invalid."""

    code: ClassVar[str] = "CONFIGURATION_ERROR"


class InvalidRequestError(ExecutionEngineError):
    """An RPM message or API request failed validation before any execution was created."""

    code: ClassVar[str] = "INVALID_REQUEST"

    def __init__(self, message: str | None = None, *, errors: tuple[str, ...] = ()) -> None:
        self.errors = tuple(errors)
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"errors": self.errors}


class IdempotencyConflictError(ExecutionEngineError):
    """The RPM decision id was already used with a different payload."""

    code: ClassVar[str] = "IDEMPOTENCY_CONFLICT"

    def __init__(self, message: str | None = None, *, decision_id: str, execution_id: str) -> None:
        self.decision_id = decision_id
        self.execution_id = execution_id
        super().__init__(
            message
            if message is not None
            else f"decision {decision_id!r} was already executed as {execution_id!r} "
            "with a different payload"
        )

    def details(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "execution_id": self.execution_id}


class ExecutionNotFoundError(ExecutionEngineError):
    """No execution has this id."""

    code: ClassVar[str] = "EXECUTION_NOT_FOUND"

    def __init__(self, message: str | None = None, *, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(
            message if message is not None else f"execution {execution_id!r} not found"
        )

    def details(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id}


class UnknownAccountError(ExecutionEngineError):
    """A trading control named an account this engine does not trade (an execution naming
    one is REJECTED with UNKNOWN_ACCOUNT instead: a refused trade is not an exception)."""

    code: ClassVar[str] = "UNKNOWN_ACCOUNT"

    def __init__(
        self, message: str | None = None, *, account: str, known: tuple[str, ...] = ()
    ) -> None:
        self.account = account
        self.known = tuple(known)
        super().__init__(
            message
            if message is not None
            else f"unknown account {account!r} (this engine trades: {', '.join(known)})"
        )

    def details(self) -> dict[str, Any]:
        return {"account": self.account, "known": list(self.known)}


class TradingHaltedError(ExecutionEngineError):
    """A control-plane action needs ACTIVE trading but trading is halted.

    Order submissions never raise this: they become REJECTED executions with reason
    TRADING_HALTED, so that the refusal is journaled.
    """

    code: ClassVar[str] = "TRADING_HALTED"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


class TerminalError(ExecutionEngineError):
    """The MetaTrader 5 terminal (or the bridge to it) failed."""

    code: ClassVar[str] = "TERMINAL_ERROR"

    def __init__(
        self,
        message: str | None = None,
        *,
        last_error_code: int | None = None,
        last_error_text: str | None = None,
    ) -> None:
        self.last_error_code = last_error_code
        self.last_error_text = last_error_text
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"last_error_code": self.last_error_code, "last_error_text": self.last_error_text}


class TerminalNotReadyError(TerminalError):
    """The terminal is up but cannot trade (not initialized, not logged in, AutoTrading off)."""

    code: ClassVar[str] = "TERMINAL_NOT_READY"


class TerminalDisconnectedError(TerminalError):
    """The IPC or bridge connection to the terminal is lost."""

    code: ClassVar[str] = "TERMINAL_DISCONNECTED"


class PersistenceError(ExecutionEngineError):
    """The execution store failed."""

    code: ClassVar[str] = "PERSISTENCE_ERROR"


class PersistenceUnavailableError(PersistenceError):
    """The database could not take a write; nothing may be sent (fail closed)."""

    code: ClassVar[str] = "PERSISTENCE_UNAVAILABLE"


class JournalIntegrityError(PersistenceError):
    """The journal's hash chain is broken at `sequence`."""

    code: ClassVar[str] = "JOURNAL_INTEGRITY"

    def __init__(self, message: str | None = None, *, sequence: int) -> None:
        self.sequence = sequence
        super().__init__(
            message if message is not None else f"journal hash chain broken at sequence {sequence}"
        )

    def details(self) -> dict[str, Any]:
        return {"sequence": self.sequence}


class TicketConflictError(PersistenceError):
    """An order ticket already claimed by one execution was about to be stored on another."""

    code: ClassVar[str] = "TICKET_CONFLICT"

    def __init__(
        self, message: str | None = None, *, ticket: int, owner: str, claimant: str
    ) -> None:
        self.ticket = ticket
        self.owner = owner
        self.claimant = claimant
        super().__init__(
            message
            if message is not None
            else f"order ticket {ticket} is already claimed by execution {owner!r}; not stored "
            f"for execution {claimant!r} (two executions never share a ticket: the terminal "
            "reused it, so it is not the one the journal knows)"
        )

    def details(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "owner": self.owner, "claimant": self.claimant}


class LeaseLostError(PersistenceError):
    """This instance no longer holds the account's lease: it may not write an intent for it.

    Raised inside the write-ahead transaction (`storage.lease.check_lease`), so that an
    instance whose lease session died, or whose lease another instance took (a newer fencing
    `current_epoch`), cannot commit an intent and therefore cannot send.
    """

    code: ClassVar[str] = "LEASE_LOST"

    def __init__(
        self,
        message: str | None = None,
        *,
        account: str,
        epoch: int | None,
        current_epoch: int | None = None,
    ) -> None:
        self.account = account
        self.epoch = epoch
        self.current_epoch = current_epoch
        if message is None:
            held = f"epoch {epoch}" if epoch is not None else "no lease"
            now = f", the lease is at epoch {current_epoch}" if current_epoch is not None else ""
            message = (
                f"lease on account {account!r} lost ({held}{now}): this instance may not "
                "write or send for it"
            )
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"account": self.account, "epoch": self.epoch, "current_epoch": self.current_epoch}


class AccountNotOwnedError(ExecutionEngineError):
    """Another engine instance owns this account's lease; trade it there."""

    code: ClassVar[str] = "ACCOUNT_NOT_OWNED"

    def __init__(
        self,
        message: str | None = None,
        *,
        account: str,
        owner: str | None = None,
        advertise_url: str | None = None,
    ) -> None:
        self.account = account
        self.owner = owner
        self.advertise_url = advertise_url
        if message is None:
            where = f"instance {owner!r}" if owner is not None else "no instance yet"
            at = f" ({advertise_url})" if advertise_url is not None else ""
            message = f"account {account!r} is owned by {where}{at}, not by this one"
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"account": self.account, "owner": self.owner, "advertise_url": self.advertise_url}


class DuplicateDecisionError(PersistenceError):
    """Another execution already holds this RPM decision id; the whole batch was rolled back."""

    code: ClassVar[str] = "DUPLICATE_DECISION"

    def __init__(
        self, message: str | None = None, *, decision_id: str, execution_id: str, op_index: int
    ) -> None:
        self.decision_id = decision_id
        self.execution_id = execution_id
        self.op_index = op_index
        super().__init__(
            message
            if message is not None
            else f"decision {decision_id!r} is already stored for another execution "
            f"(op {op_index}, execution {execution_id!r})"
        )

    def details(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "execution_id": self.execution_id,
            "op_index": self.op_index,
        }


class ReconciliationError(ExecutionEngineError):
    """Executions could not be reconciled with the terminal; trading stays halted."""

    code: ClassVar[str] = "RECONCILIATION_FAILED"


class EngineStoppedError(ExecutionEngineError):
    """The engine is stopped (or stopping) and takes no new work."""

    code: ClassVar[str] = "ENGINE_STOPPED"


class ActorUnavailableError(ExecutionEngineError):
    """An actor is dead or did not answer in time."""

    code: ClassVar[str] = "ACTOR_UNAVAILABLE"

    def __init__(self, message: str | None = None, *, actor: str) -> None:
        self.actor = actor
        super().__init__(message if message is not None else f"actor {actor!r} is unavailable")

    def details(self) -> dict[str, Any]:
        return {"actor": self.actor}


__all__ = [
    "AccountNotOwnedError",
    "ActorUnavailableError",
    "ConfigurationError",
    "DuplicateDecisionError",
    "EngineStoppedError",
    "ExecutionEngineError",
    "ExecutionNotFoundError",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "JournalIntegrityError",
    "LeaseLostError",
    "PersistenceError",
    "PersistenceUnavailableError",
    "ReconciliationError",
    "TerminalDisconnectedError",
    "TerminalError",
    "TerminalNotReadyError",
    "TicketConflictError",
    "TradingHaltedError",
    "UnknownAccountError",
]
