"""Dependencies of the routes, as typed `Annotated` aliases.

`FacadeDep` and `ConfigDep` hand a route the engine and the API's bounds; `ViewerDep`,
`TraderDep` and `AdminDep` authenticate the caller and check the role, and give the route
the `Principal` (who called, for the journal). Every dependency here is `async` and does no
I/O, so none of them takes a worker thread.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from actors.facade import ExecutionFacade
from api.auth import Principal, TokenTable, role_rank
from api.config import ApiConfig
from api.errors import NotAuthenticatedError, PermissionDeniedError
from core.errors import InvalidRequestError

log = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from EE_API_TOKENS ('role:token' pairs; roles viewer, trader, admin).",
)


async def get_facade(request: Request) -> ExecutionFacade:
    facade: ExecutionFacade = request.app.state.facade
    return facade


async def get_config(request: Request) -> ApiConfig:
    config: ApiConfig = request.app.state.api_config
    return config


async def get_waiters(request: Request) -> anyio.CapacityLimiter:
    """The thread pool of `POST /execute` calls waiting for a final state (made on first use,
    inside the event loop, which anyio requires)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "waiters", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(state.api_config.max_waiting_requests)
        state.waiters = limiter
    return limiter


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller of this request; 401 without a configured bearer token."""
    where = request.client.host if request.client else "unknown"
    if credentials is None:
        log.info("refused %s %s from %s: no bearer token", request.method, request.url.path, where)
        raise NotAuthenticatedError("a bearer token is required (Authorization: Bearer <token>)")
    tokens: TokenTable = request.app.state.tokens
    principal = tokens.authenticate(credentials.credentials)
    if principal is None:
        log.warning("refused %s %s from %s: unknown token", request.method, request.url.path, where)
        raise NotAuthenticatedError("the bearer token is not valid")
    return principal


def _query_names(dependant: Any) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def strict_query(request: Request) -> None:
    """422 for a query parameter the route does not take (`?symbl=EURUSD` is a typo to
    report, not a filter to drop silently) or one given twice (`?limit=5&limit=500`: every
    parameter here takes one value, and which one counts must not be a guess)."""
    if not request.query_params:
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    # A walk over a handful of nodes, only for requests that carry a query string.
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted(set(names) - _query_names(dependant))
    repeated = sorted({name for name in names if names.count(name) > 1} - set(unknown))
    problems = tuple(
        [f"query.{name or '(empty name)'}: unknown parameter" for name in unknown]
        + [f"query.{name}: given more than once" for name in repeated]
    )
    if problems:
        raise InvalidRequestError("invalid request: " + "; ".join(problems), errors=problems)


class RequireRole:
    """A dependency that lets through callers whose role is `role` or stronger (403 else),
    then refuses unknown query parameters (after authentication, so an anonymous caller
    learns nothing about a route's parameters)."""

    def __init__(self, role: str) -> None:
        role_rank(role)
        self.role = role

    async def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        if not principal.allows(self.role):
            raise PermissionDeniedError(needed=self.role, role=principal.role)
        await strict_query(request)
        return principal


FacadeDep = Annotated[ExecutionFacade, Depends(get_facade)]
ConfigDep = Annotated[ApiConfig, Depends(get_config)]
WaitersDep = Annotated[anyio.CapacityLimiter, Depends(get_waiters)]
ViewerDep = Annotated[Principal, Depends(RequireRole("viewer"))]
TraderDep = Annotated[Principal, Depends(RequireRole("trader"))]
AdminDep = Annotated[Principal, Depends(RequireRole("admin"))]

__all__ = [
    "AdminDep",
    "ConfigDep",
    "FacadeDep",
    "RequireRole",
    "TraderDep",
    "ViewerDep",
    "WaitersDep",
    "authenticate",
    "bearer_scheme",
    "strict_query",
]
