"""Failover drills (admin; only on an engine whose terminal is the simulated one).

A drill runs in a scratch engine of its own (its own simulated terminal and store; this
engine is not touched): a burst of synthetic trades, one fault mid-burst, recovery, and a
verdict. It takes seconds; drills run one at a time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.engine import make_url

from actors.facade import ExecutionFacade
from api.blocking import run_blocking
from api.deps import AdminDep, FacadeDep
from api.errors import DrillNotAllowedError, ErrorBody
from api.schemas import DrillReport
from core.errors import ConfigurationError
from drills import DRILL_NAMES, run_drill_beside
from terminals.simulated import SimulatedTerminal

router = APIRouter(tags=["drills"])

Drill = StrEnum("Drill", {name.upper().replace("-", "_"): name for name in DRILL_NAMES})  # type: ignore[misc]
"""The drills `drills` knows, as the path parameter's enum."""

MAX_DRILL_EXECUTIONS = 1000


@router.post(
    "/drills/{name}",
    response_model=DrillReport,
    summary="Run a failover drill in a scratch engine (simulated terminal only)",
    responses={
        409: {
            "model": ErrorBody,
            "description": "Not allowed here (a real terminal, or the "
            "drill needs PostgreSQL and this engine runs on SQLite).",
        },
    },
)
async def run_drill(
    request: Request,
    name: Annotated[Drill, Path(description="Which drill.")],
    facade: FacadeDep,
    _: AdminDep,
    executions: Annotated[
        int, Query(ge=2, le=MAX_DRILL_EXECUTIONS, description="Trades in the burst.")
    ] = 200,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="Seed of the market.")] = 0,
) -> DrillReport:
    """The drill's report; `passed` says whether the engine kept its promises (no duplicate,
    no lost execution, no order without intent, audit chain intact)."""
    if not isinstance(facade.terminal, SimulatedTerminal):
        raise DrillNotAllowedError("drills run only on an engine whose terminal is simulated")
    async with _one_at_a_time(request):
        try:
            report = await run_blocking(
                run_drill_beside,
                facade.terminal,
                str(name.value),
                executions=executions,
                seed=seed,
                database_url=_scratch_server(facade),
            )
        except ConfigurationError as exc:
            raise DrillNotAllowedError(exc.message) from exc
    return DrillReport.model_validate(report)


def _scratch_server(facade: ExecutionFacade) -> str | None:
    """The engine's PostgreSQL server, where a drill makes (and drops) a scratch database;
    None (a temporary SQLite file) when the engine runs on SQLite."""
    url = facade.database_url
    return url if make_url(url).get_backend_name() == "postgresql" else None


def _one_at_a_time(request: Request) -> anyio.Lock:
    state = request.app.state
    lock: anyio.Lock | None = getattr(state, "drill_lock", None)
    if lock is None:
        lock = anyio.Lock()
        state.drill_lock = lock
    return lock
