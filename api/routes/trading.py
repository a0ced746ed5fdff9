"""The kill switch: read it, halt trading or make it reduce-only (trader), resume it (admin)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter

from actors.facade import ExecutionFacade
from api.blocking import read_storage, run_blocking
from api.deps import AdminDep, FacadeDep, TraderDep, ViewerDep
from api.errors import ErrorBody
from api.schemas import (
    AccountName,
    FlattenReport,
    FlattenRequest,
    HaltRequest,
    ReduceOnlyRequest,
    ResumeRequest,
    TradingStateOut,
)

router = APIRouter(tags=["trading"])

_UNKNOWN = "`account` names an account the engine does not trade."


@router.get(
    "/trading-state",
    response_model=TradingStateOut,
    summary="The kill switch",
    responses={404: {"model": ErrorBody, "description": _UNKNOWN}},
)
async def trading_state(
    facade: FacadeDep, _: ViewerDep, account: AccountName = None
) -> TradingStateOut:
    """The first account's state (the only one without an accounts file), or `account`'s."""
    return await _state(facade, account)


def _target(account: str | None) -> dict[str, Any]:
    """The facade's `account` keyword: absent for the firm (every account). An account the
    engine does not trade is the facade's `UnknownAccountError` (404)."""
    return {} if account is None else {"account": account}


async def _state(facade: ExecutionFacade, account: str | None) -> TradingStateOut:
    target = _target(account)
    record = await read_storage(facade.metrics, functools.partial(facade.trading_state, **target))
    return TradingStateOut.of(record, account)


@router.post(
    "/halt",
    response_model=TradingStateOut,
    summary="Stop trading now",
    responses={
        404: {"model": ErrorBody, "description": _UNKNOWN},
        409: {"model": ErrorBody, "description": "`flatten` while already halted."},
        503: {"model": ErrorBody, "description": "The halt could not be journaled."},
    },
)
async def halt(body: HaltRequest, facade: FacadeDep, caller: TraderDep) -> TradingStateOut:
    """Nothing is sent to the terminal after this answers; executions not yet sent are
    rejected. Journaled with the reason and the caller's identity. With `flatten`, every
    position the engine owns is closed first (REDUCING meanwhile) and the report returned."""
    target = _target(body.account)
    report = await run_blocking(
        facade.halt, body.reason, caller.identity, flatten=body.flatten, **target
    )
    state = await _state(facade, body.account)
    if report is None:
        return state
    return state.model_copy(update={"flatten": FlattenReport.model_validate(report)})


@router.post(
    "/flatten",
    response_model=FlattenReport,
    summary="Close every position the engine owns",
    responses={
        404: {"model": ErrorBody, "description": _UNKNOWN},
        409: {"model": ErrorBody, "description": "Trading is halted: nothing is sent."},
        503: {"model": ErrorBody, "description": "The terminal or the journal failed."},
    },
)
async def flatten(body: FlattenRequest, facade: FacadeDep, caller: TraderDep) -> FlattenReport:
    """Each open position of the engine (of `symbol`, or all) is closed by its ticket as one
    execution, written ahead and reconciled like any other; journaled (FLATTEN) with the
    reason and the caller's identity. A second flatten on a flat book sends nothing; a
    position whose close is still being reconciled is skipped, never closed twice."""
    target = _target(body.account)
    report = await run_blocking(
        facade.flatten, body.symbol, reason=body.reason, by=caller.identity, **target
    )
    return FlattenReport.model_validate(report)


@router.post(
    "/reduce-only",
    response_model=TradingStateOut,
    summary="Only trades that reduce positions may be sent",
    responses={
        404: {"model": ErrorBody, "description": _UNKNOWN},
        409: {"model": ErrorBody, "description": "Trading is halted: only a resume leaves it."},
        503: {"model": ErrorBody, "description": "The change could not be journaled."},
    },
)
async def reduce_only(
    body: ReduceOnlyRequest, facade: FacadeDep, caller: TraderDep
) -> TradingStateOut:
    """REDUCING: a trade that only reduces open positions is sent; any opening part is
    rejected with REDUCE_ONLY and nothing of it is sent. Journaled with the reason and the
    caller's identity; `POST /resume` (admin) returns to ACTIVE."""
    target = _target(body.account)
    await run_blocking(facade.reduce_only, reason=body.reason, by=caller.identity, **target)
    return await _state(facade, body.account)


@router.post(
    "/resume",
    response_model=TradingStateOut,
    summary="Let trading start again",
    responses={
        404: {"model": ErrorBody, "description": _UNKNOWN},
        503: {"model": ErrorBody, "description": "The resume could not be journaled."},
    },
)
async def resume(body: ResumeRequest, facade: FacadeDep, caller: AdminDep) -> TradingStateOut:
    """Journaled with the reason and the caller's identity. Needs the admin role: halting
    is cheap, resuming is privileged. Trading resumes only after a successful
    reconciliation with the terminal (503 otherwise, and trading stays halted)."""
    target = _target(body.account)
    await run_blocking(facade.resume, caller.identity, body.reason, **target)
    return await _state(facade, body.account)
