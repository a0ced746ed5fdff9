"""Pure ASGI middleware: request timing for the metrics, and the request body size limit."""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.metrics import EngineMetrics
from api.errors import error_response

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (keeps the label set bounded)."""
OTHER_METHOD = "other"
"""The method label of every method outside `KNOWN_METHODS`."""
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
"""HTTP allows any token as a method and anyone may send one without a token: a label per
invented method would grow the registry (and /metrics) for ever."""


class RequestTiming:
    """Reports every HTTP request's duration to `EngineMetrics.api_request`, labelled by the
    route's path template (`/executions/{execution_id}`), never by the raw path, and by the
    method when it is a known one: every label value comes from a closed set."""

    def __init__(self, app: ASGIApp, metrics: EngineMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.metrics.api_request(
                route_label(scope), method_label(scope["method"]), time.perf_counter() - started
            )


def route_label(scope: Scope) -> str:
    """The path template of the route that took the request (also for a 405: the path
    matched, the method did not), `UNMATCHED_ROUTE` when none did."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class _BodyTooLargeError(HTTPException):
    """Raised from `receive`; an HTTPException so that FastAPI's body parsing passes it on
    to the error table (413) instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413, by Content-Length when the client
    sends one and by counting the bytes as they arrive otherwise (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            f"request body is larger than the limit of {self.max_bytes} bytes",
            {"limit_bytes": self.max_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


__all__ = [
    "KNOWN_METHODS",
    "OTHER_METHOD",
    "UNMATCHED_ROUTE",
    "BodySizeLimit",
    "RequestTiming",
    "method_label",
    "route_label",
]
