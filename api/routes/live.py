"""What the console reads: who the caller is, the live executions, one execution's journal.

`GET /executions/stream` pushes Server-Sent Events: first a snapshot of the newest
executions, then every execution whose journal moved, within `POLL_SECONDS`. Each stream
polls the journal's indexed key in a worker thread (never a Pykka future on the event loop),
and at most `MAX_STREAMS` run at once: a browser tab holds one, a script that opens many
gets 503.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from actors.facade import ExecutionFacade
from api.blocking import read_storage, run_blocking
from api.deps import FacadeDep, ViewerDep
from api.errors import ErrorBody
from api.schemas import EXECUTION_ID_PATTERN
from core.enums import ExecutionStatus
from core.errors import ActorUnavailableError, ExecutionEngineError
from core.models import ExecutionLog, JournalEvent

router = APIRouter(tags=["console"])

POLL_SECONDS = 0.5
"""How often a stream looks for journal events: an update shows within a second."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often, so that proxies keep an idle stream open."""
MAX_STREAMS = 16
"""Live streams served at once (each costs one small query per poll)."""
SNAPSHOT_ROWS = 100


class Identity(BaseModel):
    """The caller: its role and its name in the journal (a digest, never the token)."""

    role: str
    identity: str


class ExecutionRow(BaseModel):
    """One line of the live list: the execution without its RPM payload."""

    execution_id: str
    symbol: str
    direction: int
    intended_units: float
    executed_units: float
    status: ExecutionStatus
    fill_price: float | None
    intended_price: float | None
    slippage_pips: float | None
    rejection_reason: str | None
    created_at: datetime
    submitted_at: datetime | None
    filled_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, record: ExecutionLog) -> ExecutionRow:
        return cls.model_validate(record.model_dump(include=set(cls.model_fields)))


ExecutionId = Annotated[str, Path(min_length=1, max_length=128, pattern=EXECUTION_ID_PATTERN)]


@router.get("/whoami", response_model=Identity, summary="The caller's role and identity")
async def whoami(caller: ViewerDep) -> Identity:
    return Identity(role=caller.role, identity=caller.identity)


@router.get(
    "/executions/stream",
    summary="Live executions (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: snapshot` (the newest executions, newest first), then "
            "`event: executions` with every execution that changed; `data` is JSON.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        503: {"model": ErrorBody, "description": "Too many live streams are open."},
    },
)
async def stream(request: Request, facade: FacadeDep, _: ViewerDep) -> StreamingResponse:
    if _open_streams(request) >= MAX_STREAMS:
        raise _too_many()
    return StreamingResponse(
        _events(request, facade),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/executions/{execution_id}/events",
    response_model=list[JournalEvent],
    summary="One execution's journal events, in order",
    responses={404: {"model": ErrorBody, "description": "No execution has this id."}},
)
async def execution_events(
    execution_id: ExecutionId, facade: FacadeDep, _: ViewerDep
) -> list[JournalEvent]:
    await read_storage(facade.metrics, facade.get_execution, execution_id)  # 404 if unknown
    return await read_storage(facade.metrics, facade.repository.events_for, execution_id)


def _open_streams(request: Request) -> int:
    return int(getattr(request.app.state, "live_streams", 0))


def _too_many() -> ExecutionEngineError:
    return ActorUnavailableError(
        f"{MAX_STREAMS} live streams are open already; close one", actor="stream"
    )


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _rows(records: list[ExecutionLog]) -> list[dict[str, Any]]:
    return [ExecutionRow.of(record).model_dump(mode="json") for record in records]


async def _events(request: Request, facade: ExecutionFacade) -> AsyncIterator[bytes]:
    state = request.app.state
    # Counted here, not in the route: a generator that never starts never ends either.
    if _open_streams(request) >= MAX_STREAMS:
        yield _sse("error", {"message": str(_too_many())})
        return
    state.live_streams = _open_streams(request) + 1
    try:
        repository = facade.repository
        # The sequence first, then the snapshot: a change between the two is sent twice
        # (the page keeps the newest by id), never lost.
        last = await run_blocking(repository.last_sequence)
        snapshot = await run_blocking(facade.get_execution_history, None, None, SNAPSHOT_ROWS)
        yield _sse("snapshot", _rows(snapshot))
        idle = 0.0
        closing: threading.Event = state.closing
        while not closing.is_set():
            await anyio.sleep(POLL_SECONDS)
            try:
                changed, last = await run_blocking(repository.changed_after, last)
            except ExecutionEngineError as exc:  # the database is down: say so, keep trying
                yield _sse("error", {"message": str(exc)})
                continue
            if changed:
                changed.sort(key=lambda r: (r.created_at, r.execution_id), reverse=True)
                yield _sse("executions", _rows(changed))
                idle = 0.0
                continue
            idle += POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                idle = 0.0
    finally:
        state.live_streams = max(0, _open_streams(request) - 1)


__all__ = ["MAX_STREAMS", "ExecutionRow", "Identity", "router"]
