"""Executions: submit an RPM message, read one execution, list recent ones."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from actors.facade import ExecutionFacade
from api.accounts import AccountsDep, check_account
from api.blocking import read_storage, run_blocking, wait_for
from api.config import MAX_EXECUTE_WAIT_SECONDS, MAX_HISTORY_LIMIT
from api.deps import ConfigDep, FacadeDep, TraderDep, ViewerDep, WaitersDep
from api.errors import ErrorBody
from api.schemas import EXECUTION_ID_PATTERN, SYMBOL_PATTERN, AccountName, ExecutionAccepted
from core.enums import ExecutionStatus
from core.errors import (
    ActorUnavailableError,
    ExecutionEngineError,
    PersistenceUnavailableError,
    TerminalDisconnectedError,
)
from core.models import MAX_SYMBOL_LENGTH, ExecutionConfirmation, ExecutionLog, RPMOutput

router = APIRouter(tags=["executions"])

ExecutionId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=EXECUTION_ID_PATTERN,
        description="The id `POST /execute` returned.",
    ),
]

_RECORD_GRACE_SECONDS = 5.0
"""After the wait, how long to look for the PENDING row the OrderActor writes first."""


@router.post(
    "/execute",
    response_model=ExecutionConfirmation,
    summary="Execute one RPM message",
    responses={
        202: {"model": ExecutionAccepted, "description": "Not final within the wait; poll it."},
        409: {"model": ErrorBody, "description": "Decision id reused with another payload."},
        422: {
            "model": ErrorBody,
            "description": "Invalid RPM message (names the field), or an unknown account.",
        },
        503: {"model": ErrorBody, "description": "Database or engine unavailable."},
    },
)
async def execute(
    rpm: RPMOutput,
    facade: FacadeDep,
    config: ConfigDep,
    waiters: WaitersDep,
    accounts: AccountsDep,
    _: TraderDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_EXECUTE_WAIT_SECONDS,
            description="Seconds to wait for the final state (default and cap: the server's "
            "configured wait); 0 answers 202 at once.",
        ),
    ] = None,
) -> ExecutionConfirmation | JSONResponse:
    """Run the RPM's decision through the engine. Answers 200 with the confirmation once the
    execution is final (FILLED, PARTIALLY_FILLED, REJECTED or EXPIRED: a rejection is a
    result, not an error), or 202 with its id if it is still in flight after the wait.
    Idempotent on `decision.decision_id`: a repeat answers the same execution. `account`
    (absent: default) must be one of the engine's accounts: 422 naming it otherwise."""
    check_account(accounts, rpm.account)
    future = await run_blocking(facade.submit, rpm)
    limit = config.execute_wait_seconds if wait is None else min(wait, config.execute_wait_seconds)
    confirmation = await wait_for(future, limit, waiters)
    if confirmation is not None:
        return confirmation
    record = await _recorded(facade, rpm.decision_id)
    accepted = ExecutionAccepted(
        execution_id=record.execution_id,
        rpm_decision_id=record.rpm_decision_id,
        status=record.status,
        location=f"/executions/{record.execution_id}",
        account=record.account,
    )
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.location}
    )


async def _recorded(facade: ExecutionFacade, decision_id: str) -> ExecutionLog:
    """The execution's committed row. The OrderActor writes it first thing, so it is there
    unless the database is failing, in which case the caller may retry the same message."""
    with anyio.move_on_after(_RECORD_GRACE_SECONDS):
        delay = 0.005
        while True:
            record = await run_blocking(facade.repository.get_by_decision_id, decision_id)
            if record is not None:
                return record
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25)
    raise await run_blocking(_why_unrecorded, facade, decision_id)


def _why_unrecorded(facade: ExecutionFacade, decision_id: str) -> ExecutionEngineError:
    """The real cause of an execution still unrecorded after the wait. It is written with
    its first status change, after validation, which asks the terminal: a terminal that does
    not answer keeps it unrecorded as surely as a failing database does."""
    again = "send the same message again to learn its outcome (it is idempotent)"
    report = facade.health()
    database, broker = report["database"], report["broker"]
    if not database.get("ok") or database.get("journal_error"):
        return PersistenceUnavailableError(
            f"execution of decision {decision_id!r} is not recorded yet: the database is "
            f"not taking writes; {again}"
        )
    if broker.get("terminal_answering") is False or broker.get("connected") is False:
        return TerminalDisconnectedError(
            f"execution of decision {decision_id!r} is not recorded yet: it is waiting for "
            f"the terminal ({broker.get('terminal')}); {again}"
        )
    return ActorUnavailableError(
        f"execution of decision {decision_id!r} is not recorded yet (the engine is busy); {again}",
        actor="order",
    )


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionLog,
    summary="One execution, in full",
    responses={404: {"model": ErrorBody, "description": "No execution has this id."}},
)
async def get_execution(execution_id: ExecutionId, facade: FacadeDep, _: ViewerDep) -> ExecutionLog:
    return await read_storage(facade.metrics, facade.get_execution, execution_id)


@router.get(
    "/history",
    response_model=list[ExecutionLog],
    summary="Recent executions, newest first",
)
async def history(
    facade: FacadeDep,
    _: ViewerDep,
    symbol: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_SYMBOL_LENGTH,
            pattern=SYMBOL_PATTERN,
            description="Only this symbol, e.g. EURUSD.",
        ),
    ] = None,
    status: Annotated[ExecutionStatus | None, Query(description="Only this status.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="How many, newest first.")
    ] = 50,
    account: AccountName = None,
) -> list[ExecutionLog]:
    # Straight to the repository: the facade's history takes no account yet (and a read
    # works on any instance, whichever owns the account).
    return await read_storage(
        facade.metrics, facade.repository.history, symbol, status, limit, account
    )
