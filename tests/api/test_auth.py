"""Authentication and roles, over every route the app has (a new route cannot escape)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from actors.facade import ExecutionFacade
from api.app import create_app
from api.auth import TokenTable, generate_admin_token, role_rank, token_identity
from api.deps import RequireRole
from core.settings import API_ROLES
from tests.api._support import TOKEN_OF, TOKENS, ApiClient, bearer, engine_and_app

OPEN_ROUTES = {("GET", "/health"), ("GET", "/console"), ("GET", "/console/{name}")}
ROLE_OF_ROUTE = {
    ("POST", "/execute"): "trader",
    ("GET", "/executions/{execution_id}"): "viewer",
    ("GET", "/executions/{execution_id}/events"): "viewer",
    ("GET", "/executions/stream"): "viewer",
    ("GET", "/whoami"): "viewer",
    ("GET", "/history"): "viewer",
    ("GET", "/metrics"): "viewer",
    ("GET", "/audit_trail"): "viewer",
    ("GET", "/trading-state"): "viewer",
    ("POST", "/halt"): "trader",
    ("POST", "/reduce-only"): "trader",
    ("POST", "/flatten"): "trader",
    ("POST", "/resume"): "admin",
    ("POST", "/drills/{name}"): "admin",
}
"""The intended role of each route; a route missing here fails the inventory test."""

# Query strings and bodies valid enough that only authentication can refuse the request.
_QUERY = {"/audit_trail": "?start_date=2024-01-01&end_date=2024-01-02"}
_BODY = {
    "/halt": {"reason": "test"},
    "/reduce-only": {"reason": "test"},
    "/flatten": {"reason": "test"},
    "/resume": {"reason": "test"},
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[ExecutionFacade, FastAPI]]:
    with engine_and_app(tmp_path) as made:
        yield made


@pytest.fixture
def app(engine: tuple[ExecutionFacade, FastAPI]) -> FastAPI:
    return engine[1]


@pytest.fixture
def client(app: FastAPI) -> Iterator[ApiClient]:
    with ApiClient(app) as client:
        yield client


def _api_routes(app: FastAPI) -> list[tuple[APIRoute, str, set[str]]]:
    """Every route the app serves, with its full path and methods, however FastAPI keeps
    included routers (recent versions wrap them; `iter_route_contexts` unwraps them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x: app.routes holds the routes themselves
        contexts: list[tuple[object, object, object]] = [
            (r, getattr(r, "path", None), getattr(r, "methods", None)) for r in app.routes
        ]
    else:
        contexts = [(c.original_route, c.path, c.methods) for c in iter_route_contexts(app.routes)]
    found = []
    for route, path, methods in contexts:
        assert isinstance(route, APIRoute), f"{route!r} is not an API route (docs must be off)"
        assert isinstance(path, str)
        assert isinstance(methods, set)
        found.append((route, path, methods))
    return found


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, path) for _, path, methods in _api_routes(app) for m in sorted(methods)]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path) + _QUERY.get(path, "")


def _declared_roles(route: APIRoute) -> set[str]:
    roles = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, RequireRole):
            roles.add(dependant.call.role)
        stack.extend(dependant.dependencies)
    return roles


def test_every_route_is_inventoried_with_its_role(app: FastAPI) -> None:
    assert set(_routes(app)) == set(ROLE_OF_ROUTE) | OPEN_ROUTES
    for route, path, methods in _api_routes(app):
        for method in methods:
            expected = ROLE_OF_ROUTE.get((method, path))
            assert _declared_roles(route) == ({expected} if expected else set()), path


def test_every_route_but_health_refuses_a_missing_or_wrong_token(
    app: FastAPI, client: ApiClient
) -> None:
    for method, path in _routes(app):
        if (method, path) in OPEN_ROUTES:
            continue
        url = _concrete(path)
        body = _BODY.get(path, {})
        for headers in (
            {},
            {"Authorization": "Bearer not-a-configured-token"},
            {"Authorization": f"Basic {TOKEN_OF['admin']}"},
            {"Authorization": "Bearer"},
        ):
            response = client.request(method, url, headers=headers, json=body)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_every_route_refuses_a_role_below_its_own(app: FastAPI, client: ApiClient) -> None:
    refused = 0
    for method, path in _routes(app):
        needed = ROLE_OF_ROUTE.get((method, path))
        if needed is None:
            continue
        for role in API_ROLES[: role_rank(needed)]:
            response = client.request(
                method, _concrete(path), headers=bearer(role), json=_BODY.get(path, {})
            )
            assert response.status_code == 403, (method, path, role, response.text)
            assert response.json()["details"] == {"needed": needed, "role": role}
            refused += 1
    assert refused == 8  # 4 trader routes refuse 1 role each, 2 admin routes 2 each


def test_health_is_open(client: ApiClient) -> None:
    assert client.get("/health").status_code == 200


def test_a_role_may_do_what_weaker_roles_may(client: ApiClient) -> None:
    for role in API_ROLES:
        assert client.get("/trading-state", headers=bearer(role)).status_code == 200


def test_with_no_tokens_configured_every_protected_route_is_refused(
    engine: tuple[ExecutionFacade, FastAPI],
) -> None:
    app = create_app(engine[0], {})
    with ApiClient(app) as client:
        for token in TOKENS:
            response = client.get("/history", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
        assert client.get("/health").status_code == 200


def test_token_table_finds_the_caller_and_names_it_without_the_token() -> None:
    table = TokenTable(TOKENS)
    for token, role in TOKENS.items():
        principal = table.authenticate(token)
        assert principal is not None
        assert principal.role == role
        assert principal.identity == token_identity(role, token)
        assert token not in principal.identity
    assert table.authenticate("") is None
    assert table.authenticate(TOKEN_OF["admin"] + "x") is None
    with pytest.raises(ValueError, match="superuser"):
        TokenTable({"t": "superuser"})


def test_generated_tokens_are_long_and_fresh() -> None:
    first, second = generate_admin_token(), generate_admin_token()
    assert first != second
    assert len(first) >= 40


def test_halt_and_resume_journal_the_callers_identity_never_the_token(
    engine: tuple[ExecutionFacade, FastAPI],
    client: ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    facade, _ = engine
    caplog.set_level(logging.DEBUG)
    client.get("/history", headers={"Authorization": "Bearer a-wrong-token-value"})
    halted = client.post("/halt", headers=bearer("trader"), json={"reason": "news at 14:30"})
    resumed = client.post("/resume", headers=bearer("admin"), json={"reason": "news passed"})

    assert halted.status_code == 200, halted.text
    assert halted.json()["state"] == "HALTED"
    assert halted.json()["changed_by"] == token_identity("trader", TOKEN_OF["trader"])
    assert resumed.json()["state"] == "ACTIVE"
    assert resumed.json()["changed_by"] == token_identity("admin", TOKEN_OF["admin"])
    all_time = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    events = [
        event.payload
        for event in facade.repository.audit_events(*all_time)
        if event.event_type == "TRADING_STATE_CHANGED"
    ]
    assert [(e["state"], e["by"], e["reason"]) for e in events] == [
        ("HALTED", token_identity("trader", TOKEN_OF["trader"]), "news at 14:30"),
        ("ACTIVE", token_identity("admin", TOKEN_OF["admin"]), "news passed"),
    ]
    journal = repr(events)
    logged = caplog.text
    for token in [*TOKENS, "a-wrong-token-value"]:
        assert token not in journal
        assert token not in logged
