"""Health: the one route open without a token (for load balancers and HEALTHCHECK).

Anyone gets the states: the broker's connection, the database, the trading state and each
actor's state. A caller with a valid token (any role) gets the engine's full report too
(restart counts, the last failures, why trading is halted), which may name internals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from actors.facade import ExecutionFacade, engine_version
from api.auth import Principal, TokenTable
from api.blocking import run_blocking
from api.deps import FacadeDep, bearer_scheme, strict_query
from api.errors import without_urls
from api.schemas import HealthOut

router = APIRouter(tags=["health"], dependencies=[Depends(strict_query)])

ALIVE = "alive"


async def optional_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """The caller if the request carries a valid token; None (never 401) otherwise."""
    if credentials is None:
        return None
    tokens: TokenTable = request.app.state.tokens
    return tokens.authenticate(credentials.credentials)


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Is the engine up? 200 ok, 503 degraded",
    responses={503: {"model": HealthOut, "description": "A part is down; the body says which."}},
    # The token is optional here: `{}` is OpenAPI's "or no authentication at all".
    openapi_extra={"security": [{}, {"HTTPBearer": []}]},
)
async def health(
    facade: FacadeDep, caller: Annotated[Principal | None, Depends(optional_caller)]
) -> JSONResponse:
    report: dict[str, Any] = await run_blocking(facade.health)
    facade.metrics.database_checked(bool(report["database"]["ok"]))
    body = summarize(report)
    if caller is not None:
        detail = {**without_urls(report), "journal_checkpoint": _checkpoint(facade)}
        body = body.model_copy(update={"detail": detail})
    status = 200 if body.status == "ok" else 503
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status)


def _checkpoint(facade: ExecutionFacade) -> dict[str, Any]:
    """The journal's last verified head: the sequence and time of the last audit checkpoint
    (null before the first one), as the metrics hold them."""
    registry = facade.metrics.registry
    sequence = registry.get_sample_value("ee_audit_checkpoint_sequence")
    at = registry.get_sample_value("ee_audit_checkpoint_timestamp_seconds")
    if not sequence or not at:
        return {"sequence": None, "at": None}
    return {"sequence": int(sequence), "at": datetime.fromtimestamp(at, UTC).isoformat()}


def summarize(report: dict[str, Any]) -> HealthOut:
    """The open part of the engine's health report, and its verdict: "ok" when the
    database answers, no account's terminal is known to be disconnected and every
    supervised actor is alive. A halted engine is healthy: halting is a decision, not a
    fault."""
    first = _account_summary(report)
    database_ok = bool(report["database"]["ok"])
    accounts = {name: _account_summary(each) for name, each in report.get("accounts", {}).items()}
    parts = [first, *accounts.values()]
    healthy = database_ok and all(
        part["broker"]["connected"] is not False
        and all(s == ALIVE for s in part["actors"].values())
        for part in parts
    )
    return HealthOut(
        status="ok" if healthy else "degraded",
        broker=first["broker"],
        database={"ok": database_ok},
        trading_state=first["trading_state"],
        actors=first["actors"],
        executions_in_flight=int(report["actors"].get("orders", {}).get("in_flight", 0)),
        version=engine_version(),
        instance=report.get("instance"),
        accounts_owned=report.get("accounts_owned"),
        accounts=accounts or None,
    )


def _account_summary(report: dict[str, Any]) -> dict[str, Any]:
    """One account's broker link, trading state and actors, from its Supervisor's report."""
    actors = {
        name: str(state.get("state"))
        for name, state in report["actors"].items()
        if name != "orders"
    }
    connected = report["broker"].get("connected")
    if report["broker"].get("terminal_answering") is False:
        connected = False  # a frozen terminal is no connected one
    return {
        "broker": {"connected": connected},
        "trading_state": report["trading_state"],
        "actors": actors,
    }
