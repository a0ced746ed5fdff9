"""Helpers shared by the API tests: tokens, an engine with its app, an RPM message.

Plain functions and context managers (no fixtures), so each test module states its own
fixtures and this package needs no conftest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal
from fastapi import FastAPI

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from api.app import create_app
from api.config import ApiConfig
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings, rpm

TOKENS = {
    "viewer-token-for-tests": "viewer",
    "trader-token-for-tests": "trader",
    "admin-token-for-tests": "admin",
}
TOKEN_OF = {role: token for token, role in TOKENS.items()}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN_OF[role]}"}


def rpm_message(decision_id: str = "rpm_dec_123", **kwargs: Any) -> dict[str, Any]:
    """The seeds' example: EURUSD buy 95000 units."""
    return rpm(decision_id=decision_id, **kwargs)


@contextmanager
def engine_and_app(
    tmp_path: Path,
    terminal: Any = None,
    config: ApiConfig | None = None,
    **settings: Any,
) -> Iterator[tuple[ExecutionFacade, FastAPI]]:
    """A running engine on the simulated terminal and SQLite under `tmp_path`, its app."""
    facade = create_execution_engine(
        terminal=terminal if terminal is not None else SimulatedTerminal(seed=7),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        settings=fast_settings(**settings),
    )
    try:
        yield facade, create_app(facade, TOKENS, config or ApiConfig(execute_wait_seconds=5.0))
    finally:
        facade.stop()


class ApiClient:
    """A synchronous httpx client over an app in this process: an anyio portal thread runs
    the event loop, as a server would, so the app's worker threads are real ones.

    (Starlette's TestClient now wants the `httpx2` package; this avoids the dependency.)
    """

    def __init__(self, app: FastAPI) -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal())
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        return self._portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._portal.call(self._client.aclose)
        self._stack.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
