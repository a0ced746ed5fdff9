"""The engine's metrics: Prometheus text, or the JSON summary when the client asks for JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.facade import ExecutionFacade
from api.blocking import run_blocking
from api.deps import FacadeDep, ViewerDep

router = APIRouter(tags=["metrics"])

JSON = "application/json"
TEXT = "text/plain"


@router.get(
    "/metrics",
    summary="Execution quality, reliability and latency metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format; with `Accept: application/json`, the "
            "summary (success rate, slippage, error rates, latency percentiles).",
            "content": {
                TEXT: {"schema": {"type": "string"}},
                JSON: {"schema": {"type": "object"}},
            },
        }
    },
)
async def metrics(
    facade: FacadeDep,
    _: ViewerDep,
    accept: Annotated[str | None, Header(description="application/json for the summary")] = None,
) -> Response:
    await run_blocking(_refresh_database_gauge, facade)
    if prefers_json(accept):
        summary = await run_blocking(facade.metrics.summary)
        return JSONResponse(summary)
    body = await run_blocking(generate_latest, facade.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _refresh_database_gauge(facade: ExecutionFacade) -> None:
    facade.metrics.database_checked(facade.repository.ping())


def prefers_json(accept: str | None) -> bool:
    """True when the Accept header ranks application/json above every text format."""
    if not accept:
        return False
    json_q, text_q = 0.0, 0.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        quality = _quality(params)
        media = media.strip().lower()
        if media == JSON:
            json_q = max(json_q, quality)
        elif media in {TEXT, "text/*", "application/openmetrics-text", "*/*"}:
            text_q = max(text_q, quality)
    return json_q > 0 and json_q >= text_q


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
