"""Requests anyone may send without a token: they must not grow the metrics or be redirected
to a host of their choosing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from fastapi import FastAPI

from actors.facade import ExecutionFacade
from api.app import AUTHENTICATED_ROUTERS, OPEN_ROUTERS
from api.middleware import KNOWN_METHODS, OTHER_METHOD, UNMATCHED_ROUTE
from tests.api._support import ApiClient, bearer, engine_and_app

VIEWER = bearer("viewer")

INVENTED_METHODS = [f"X{chr(65 + i % 26)}B{i:02d}CD{'Q' * (i % 5)}" for i in range(40)]
"""40 methods no HTTP client sends, e.g. `XAB00CD`: each was a new label series before."""
RANDOM_PATHS = [f"/nope-{i:02d}-{i * 7919 % 10007:x}/{'deep/' * (i % 4)}z{i}" for i in range(40)]
"""40 paths no route matches."""

_SERIES = re.compile(r'^ee_api_request_seconds_count\{method="([^"]*)",route="([^"]*)"\}', re.M)


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[ExecutionFacade, FastAPI]]:
    with engine_and_app(tmp_path) as made:
        yield made


@pytest.fixture
def client(engine: tuple[ExecutionFacade, FastAPI]) -> Iterator[ApiClient]:
    with ApiClient(engine[1]) as client:
        yield client


def test_invented_methods_and_paths_add_no_metric_series(client: ApiClient) -> None:
    for method in INVENTED_METHODS:
        assert client.request(method, "/health").status_code == 405
    for path in RANDOM_PATHS:
        assert client.get(path).status_code == 404

    text = client.get("/metrics", headers=VIEWER).text
    series = set(_SERIES.findall(text))
    templates = {
        getattr(route, "path", None)
        for router in (*AUTHENTICATED_ROUTERS, *OPEN_ROUTERS)
        for route in router.routes
    }
    assert series, text
    assert {method for method, _ in series} <= KNOWN_METHODS | {OTHER_METHOD}
    assert {route for _, route in series} <= templates | {UNMATCHED_ROUTE}
    for invented in [*INVENTED_METHODS, *RANDOM_PATHS]:
        assert invented not in text
    # Every invented method and every unknown path fell into one series each.
    assert (OTHER_METHOD, "/health") in series
    assert ("GET", UNMATCHED_ROUTE) in series
    assert f'method="{OTHER_METHOD}",route="/health"}} 40.0' in text
    assert f'method="GET",route="{UNMATCHED_ROUTE}"}} 40.0' in text


@pytest.mark.parametrize("path", ["/history/", "/trading-state/", "/executions/exec_1/"])
def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(
    client: ApiClient, path: str
) -> None:
    for headers in ({"Host": "evil.example"}, {"Host": "evil.example", **VIEWER}):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, response.headers
        assert "location" not in response.headers
        assert response.json()["code"] == "NOT_FOUND"
        assert "evil.example" not in response.text
