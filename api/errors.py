"""Every error the API answers with, mapped to HTTP in one table.

The body is always `{"code": ..., "message": ..., "details": {...}}`: `code` is stable (the
engine error's `code`), `message` is one human sentence that names the problem.

=============================  ======  ===============================================
error                          status  when
=============================  ======  ===============================================
request validation             422     bad field, type, enum value, date, unknown body
                                       field; a body that is not JSON in UTF-8
InvalidRequestError            422     an RPM message that fails a rule (or holds a NUL),
                                       an unknown or repeated query parameter, a date
                                       range that ends before it starts
NotAuthenticatedError          401     no bearer token, or one that is not configured
PermissionDeniedError          403     the token's role is below the route's
ExecutionNotFoundError         404     no execution has this id
UnknownAccountError            404     a trading control names an account the engine
                                       does not trade
IdempotencyConflictError       409     decision id reused with another payload
TradingHaltedError             409     an action that needs ACTIVE trading
DrillNotAllowedError           409     a drill where drills may not run (a real terminal)
body too large                 413     over `ApiConfig.max_body_bytes`
pykka.ActorDeadError, Timeout  503     an actor died or did not answer
TerminalError (and children)   503     the terminal is disconnected or not ready
PersistenceError               503     the database cannot take or serve the request
                                       (the answer says only that; the log says why)
EngineStoppedError             503     the engine is shutting down
ActorUnavailableError          503     an actor is dead or did not answer in time
ReconciliationError            503     recovery could not finish; trading stays halted
AccountNotOwnedError           307     another instance owns the account: to its
                               503     advertised URL (EE_ADVERTISE_URL), else 503
                                       naming the owner
JournalIntegrityError          500     the audit chain is broken (needs a human)
any other error                500     a bug; logged with its traceback, not shown
=============================  ======  ===============================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import pykka
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.accounts import redirect_for
from api.schemas import PATTERN_MESSAGES
from core.errors import (
    AccountNotOwnedError,
    ActorUnavailableError,
    EngineStoppedError,
    ExecutionEngineError,
    ExecutionNotFoundError,
    IdempotencyConflictError,
    InvalidRequestError,
    JournalIntegrityError,
    PersistenceError,
    ReconciliationError,
    TerminalError,
    TradingHaltedError,
    UnknownAccountError,
)

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong, in one sentence.")
    details: dict[str, Any] = Field(default_factory=dict, description="Context, by name.")


class ApiError(ExecutionEngineError):
    """An error that exists only at the HTTP door."""


class NotAuthenticatedError(ApiError):
    """A bearer token is required (Authorization: Bearer <token>)."""

    code: ClassVar[str] = "NOT_AUTHENTICATED"


class PermissionDeniedError(ApiError):
    """The token's role does not allow this route."""

    code: ClassVar[str] = "PERMISSION_DENIED"

    def __init__(self, message: str | None = None, *, needed: str, role: str) -> None:
        self.needed = needed
        self.role = role
        super().__init__(
            message
            if message is not None
            else f"this route needs the {needed} role; the token's role is {role}"
        )

    def details(self) -> dict[str, Any]:
        return {"needed": self.needed, "role": self.role}


class DrillNotAllowedError(ApiError):
    """Drills run only against the simulated terminal."""

    code: ClassVar[str] = "DRILL_NOT_ALLOWED"


# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_ERROR: Sequence[tuple[type[Exception], int]] = (
    (NotAuthenticatedError, 401),
    (PermissionDeniedError, 403),
    (DrillNotAllowedError, 409),
    (InvalidRequestError, 422),
    (ExecutionNotFoundError, 404),
    (UnknownAccountError, 404),
    (IdempotencyConflictError, 409),
    (TradingHaltedError, 409),
    (JournalIntegrityError, 500),
    (TerminalError, 503),
    (PersistenceError, 503),
    (EngineStoppedError, 503),
    (ActorUnavailableError, 503),
    (ReconciliationError, 503),
    (AccountNotOwnedError, 503),
    (pykka.ActorDeadError, 503),
    (pykka.Timeout, 503),
)


AUTHENTICATED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or one that is not configured."},
    403: {"model": ErrorBody, "description": "The token's role is below the route's."},
    413: {"model": ErrorBody, "description": "The request body is over the size limit."},
    503: {"model": ErrorBody, "description": "The database or an engine actor is unavailable."},
}
"""Answers every authenticated route may give, documented once for the OpenAPI schema."""


def status_of(exc: Exception) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, details=dict(details or {}))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _describe_validation(errors: Sequence[Any]) -> list[str]:
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "string_pattern_mismatch":
            pattern = str((error.get("ctx") or {}).get("pattern"))
            message = PATTERN_MESSAGES.get(pattern, message)
        problems.append(f"{where}: {message}" if where else message)
    return problems


DATABASE_UNAVAILABLE = "the database is unavailable; send the request again later"
"""The whole message of a 503 for a database failure: the error's own message names the
database (user, host, database name) and the driver's words, which are for the log only."""


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ExecutionEngineError)
    if isinstance(exc, AccountNotOwnedError):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        redirect = redirect_for(exc, target)
        if redirect is not None:
            return redirect
    status = status_of(exc)
    if status >= 500:
        log.error("request failed: %s: %s%s", exc.code, exc.message, _cause(exc))
    if status == 503 and isinstance(exc, PersistenceError):
        return error_response(status, exc.code, DATABASE_UNAVAILABLE)
    # A server-side error may quote another (a failed reconciliation, the write that broke
    # it) and with it a database URL: the caller gets the sentence without the URL.
    message = without_urls(exc.message) if status >= 500 else exc.message
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, exc.code, message, _jsonable(exc.details()), headers)


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")


def without_urls(value: Any) -> Any:
    """`value` (a string, or a report of nested dicts and lists) with every URL written as
    `<url>`: the database URL (user, host, name) is for the log, not for answers."""
    if isinstance(value, str):
        return _URL.sub("<url>", value)
    if isinstance(value, dict):
        return {key: without_urls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_urls(item) for item in value]
    return value


def _cause(exc: BaseException) -> str:
    """The first line of the error's cause (the driver's message), for the log."""
    cause = exc.__cause__
    if cause is None:
        return ""
    lines = str(cause).strip().splitlines()
    return f" ({type(cause).__name__}: {lines[0] if lines else ''})"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _describe_validation(exc.errors())
    return error_response(
        422,
        InvalidRequestError.code,
        "invalid request: " + "; ".join(problems),
        {"errors": problems},
    )


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


_UNPARSABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body it could not decode (not UTF-8, or not JSON it can read)."""


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        problem = "body: not a JSON document in UTF-8"
        return error_response(
            422, InvalidRequestError.code, f"invalid request: {problem}", {"errors": [problem]}
        )
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _actor_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("an actor did not answer: %r", exc)
    return error_response(
        503, ActorUnavailableError.code, f"an engine actor is unavailable ({type(exc).__name__})"
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in a request", exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal error; see the engine's log")


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in details.items()}


Handler = Callable[[Request, Exception], Awaitable[Response]]


def install_error_handlers(app: FastAPI) -> None:
    """Register the one handler table on `app`."""
    handlers: dict[type[Exception], Handler] = {
        ExecutionEngineError: _engine_error,
        RequestValidationError: _validation_error,
        StarletteHTTPException: _http_error,
        pykka.ActorDeadError: _actor_error,
        pykka.Timeout: _actor_error,
        Exception: _unexpected,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)


__all__ = [
    "AUTHENTICATED_RESPONSES",
    "DATABASE_UNAVAILABLE",
    "STATUS_BY_ERROR",
    "ApiError",
    "DrillNotAllowedError",
    "ErrorBody",
    "NotAuthenticatedError",
    "PermissionDeniedError",
    "error_response",
    "install_error_handlers",
    "status_of",
    "without_urls",
]
