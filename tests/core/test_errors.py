"""Tests of core.errors: the tree, codes, attributes, pickling."""

from __future__ import annotations

import copy
import inspect
import pickle
import re

import pytest

import core.errors as errors_module
from core.errors import (
    AccountNotOwnedError,
    ActorUnavailableError,
    ConfigurationError,
    DuplicateDecisionError,
    EngineStoppedError,
    ExecutionEngineError,
    ExecutionNotFoundError,
    IdempotencyConflictError,
    InvalidRequestError,
    JournalIntegrityError,
    LeaseLostError,
    PersistenceError,
    PersistenceUnavailableError,
    ReconciliationError,
    TerminalDisconnectedError,
    TerminalError,
    TerminalNotReadyError,
    TicketConflictError,
    TradingHaltedError,
    UnknownAccountError,
)

ALL: list[type[ExecutionEngineError]] = [
    cls
    for _, cls in inspect.getmembers(errors_module, inspect.isclass)
    if issubclass(cls, ExecutionEngineError)
]

PARENTS: dict[type[ExecutionEngineError], type[Exception]] = {
    ExecutionEngineError: Exception,
    ConfigurationError: ExecutionEngineError,
    InvalidRequestError: ExecutionEngineError,
    IdempotencyConflictError: ExecutionEngineError,
    ExecutionNotFoundError: ExecutionEngineError,
    TradingHaltedError: ExecutionEngineError,
    TerminalError: ExecutionEngineError,
    TerminalNotReadyError: TerminalError,
    TerminalDisconnectedError: TerminalError,
    PersistenceError: ExecutionEngineError,
    PersistenceUnavailableError: PersistenceError,
    JournalIntegrityError: PersistenceError,
    TicketConflictError: PersistenceError,
    LeaseLostError: PersistenceError,
    AccountNotOwnedError: ExecutionEngineError,
    UnknownAccountError: ExecutionEngineError,
    DuplicateDecisionError: PersistenceError,
    ReconciliationError: ExecutionEngineError,
    EngineStoppedError: ExecutionEngineError,
    ActorUnavailableError: ExecutionEngineError,
}

# One instance of each, with its keyword attributes filled in.
SAMPLES: list[ExecutionEngineError] = [
    ExecutionEngineError(),
    ConfigurationError("MAX_RETRIES: Input should be >= 0"),
    InvalidRequestError("bad RPM output", errors=("symbol: missing",)),
    IdempotencyConflictError(decision_id="dec-1", execution_id="exec_1"),
    ExecutionNotFoundError(execution_id="exec_404"),
    TradingHaltedError(reason="operator halt"),
    TerminalError(last_error_code=-10004, last_error_text="No IPC connection"),
    TerminalNotReadyError("AutoTrading disabled"),
    TerminalDisconnectedError(last_error_code=-10002),
    PersistenceError(),
    PersistenceUnavailableError("database is locked"),
    JournalIntegrityError(sequence=42),
    TicketConflictError(ticket=50_000_001, owner="exec_1", claimant="exec_2"),
    LeaseLostError(account="alpha", epoch=3, current_epoch=4),
    AccountNotOwnedError(account="alpha", owner="host-b", advertise_url="http://b:8000"),
    UnknownAccountError(account="gamma", known=("alpha", "beta")),
    DuplicateDecisionError(decision_id="dec-1", execution_id="exec_2", op_index=3),
    ReconciliationError("order 7 not found"),
    EngineStoppedError(),
    ActorUnavailableError(actor="broker"),
]


def test_every_class_is_tested() -> None:
    assert set(ALL) == set(PARENTS) == {type(e) for e in SAMPLES}


@pytest.mark.parametrize(("cls", "parent"), PARENTS.items(), ids=lambda c: c.__name__)
def test_tree(cls: type[ExecutionEngineError], parent: type[Exception]) -> None:
    assert cls.__bases__ == (parent,)


def test_tree_is_drawn_in_the_docstring() -> None:
    doc = errors_module.__doc__ or ""
    for cls in ALL:
        assert re.search(rf"\b{cls.__name__}\b", doc), cls.__name__


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_one_line_docstring_and_code(cls: type[ExecutionEngineError]) -> None:
    assert cls.__doc__
    assert re.fullmatch(r"[A-Z][A-Z_]+", cls.code)


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (IdempotencyConflictError, "IDEMPOTENCY_CONFLICT"),
        (ExecutionNotFoundError, "EXECUTION_NOT_FOUND"),
        (InvalidRequestError, "INVALID_REQUEST"),
        (ConfigurationError, "CONFIGURATION_ERROR"),
        (PersistenceUnavailableError, "PERSISTENCE_UNAVAILABLE"),
        (JournalIntegrityError, "JOURNAL_INTEGRITY"),
        (TicketConflictError, "TICKET_CONFLICT"),
        (TradingHaltedError, "TRADING_HALTED"),
        (LeaseLostError, "LEASE_LOST"),
        (AccountNotOwnedError, "ACCOUNT_NOT_OWNED"),
        (UnknownAccountError, "UNKNOWN_ACCOUNT"),
    ],
)
def test_codes(cls: type[ExecutionEngineError], code: str) -> None:
    assert cls.code == code


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_and_copy_keep_type_message_and_attributes(error: ExecutionEngineError) -> None:
    # Unpickling bytes this test just made, not untrusted data.
    unpickled = pickle.loads(pickle.dumps(error))  # noqa: S301
    for clone in (unpickled, copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert clone.message == error.message
        assert str(clone) == str(error)
        assert clone.details() == error.details()


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_message_is_never_empty(error: ExecutionEngineError) -> None:
    assert str(error)
    assert error.message == str(error)
    assert repr(error).startswith(type(error).__name__ + "(")


def test_default_message_is_the_docstring_summary() -> None:
    assert str(EngineStoppedError()) == "The engine is stopped (or stopping) and takes no new work."


def test_idempotency_conflict_carries_both_ids() -> None:
    error = IdempotencyConflictError(decision_id="dec-1", execution_id="exec_1")
    assert (error.decision_id, error.execution_id) == ("dec-1", "exec_1")
    assert "dec-1" in str(error)
    assert "exec_1" in str(error)
    assert error.details() == {"decision_id": "dec-1", "execution_id": "exec_1"}


def test_attributes_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        JournalIntegrityError("broken", 42)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ExecutionNotFoundError()  # type: ignore[call-arg]


def test_journal_integrity_names_the_sequence() -> None:
    error = JournalIntegrityError(sequence=42)
    assert error.sequence == 42
    assert "42" in str(error)


def test_explicit_message_wins() -> None:
    error = ActorUnavailableError("broker did not answer in 30 s", actor="broker")
    assert str(error) == "broker did not answer in 30 s"
    assert error.actor == "broker"
    assert "actor='broker'" in repr(error)


def test_terminal_errors_are_caught_as_terminal_errors() -> None:
    with pytest.raises(TerminalError) as caught:
        raise TerminalDisconnectedError(last_error_code=-10004, last_error_text="No IPC connection")
    assert caught.value.last_error_code == -10004
    assert caught.value.code == "TERMINAL_DISCONNECTED"


def test_invalid_request_errors_tuple() -> None:
    error = InvalidRequestError(errors=["a", "b"])  # type: ignore[arg-type]
    assert error.errors == ("a", "b")


def test_a_lost_lease_names_the_account_and_both_epochs() -> None:
    error = LeaseLostError(account="alpha", epoch=3, current_epoch=4)

    assert isinstance(error, PersistenceError)  # the writer's fail-closed path catches it
    assert "'alpha'" in str(error)
    assert "epoch 3" in str(error)
    assert "epoch 4" in str(error)
    assert "no lease" in str(LeaseLostError(account="alpha", epoch=None))


def test_an_account_owned_elsewhere_names_the_owner_and_its_url() -> None:
    error = AccountNotOwnedError(account="alpha", owner="host-b", advertise_url="http://b:8000")

    assert "'host-b' (http://b:8000)" in str(error)
    assert "no instance yet" in str(AccountNotOwnedError(account="alpha"))
