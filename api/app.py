"""The app factory: composes the routers over a running `ExecutionFacade`.

The app never starts the engine; it is handed one. Routes never wait on a Pykka future on
the event loop: they call the facade in worker threads (`api.blocking`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from actors.facade import ExecutionFacade, engine_version
from api.auth import TokenTable
from api.config import ApiConfig
from api.errors import AUTHENTICATED_RESPONSES, install_error_handlers
from api.middleware import BodySizeLimit, RequestTiming
from api.routes import audit, console, drills, executions, health, live, metrics, trading
from core.accounts import Accounts, load_accounts

AUTHENTICATED_ROUTERS = (
    live.router,  # before executions: /executions/stream is no execution id
    executions.router,
    audit.router,
    metrics.router,
    trading.router,
    drills.router,
)
OPEN_ROUTERS = (health.router, console.router)


def create_app(
    facade: ExecutionFacade,
    tokens: TokenTable | Mapping[str, str],
    config: ApiConfig | None = None,
    accounts: Accounts | None = None,
) -> FastAPI:
    """The HTTP API of `facade`. `tokens` maps bearer token -> role (or is a `TokenTable`);
    with no tokens every route but `/health` answers 401. `accounts` are those a message may
    name (default: `load_accounts` of the facade's settings)."""
    config = config or ApiConfig()
    app = FastAPI(
        title="MT5 execution engine",
        version=engine_version(),
        description="Executes RPM-approved trades on MetaTrader 5 and keeps the audit trail. "
        "Every route but /health needs `Authorization: Bearer <token>`.",
        docs_url="/docs" if config.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if config.docs else None,
        lifespan=_lifespan(facade) if config.stop_facade_on_shutdown else None,
        # Starlette would answer `/history/` with a redirect to an absolute URL built from
        # the Host header (a client-chosen host); a trailing slash is a plain 404 instead.
        redirect_slashes=False,
    )
    app.state.facade = facade
    app.state.accounts = accounts if accounts is not None else load_accounts(facade.settings)
    app.state.api_config = config
    app.state.closing = threading.Event()  # set when the server starts shutting down
    app.state.tokens = tokens if isinstance(tokens, TokenTable) else TokenTable(tokens)
    for router in AUTHENTICATED_ROUTERS:
        app.include_router(router, responses=AUTHENTICATED_RESPONSES)
    for router in OPEN_ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    # The last added runs first: the size limit refuses a body before anything reads it.
    app.add_middleware(RequestTiming, metrics=facade.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    return app


def _lifespan(
    facade: ExecutionFacade,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(facade.stop)

    return lifespan


__all__ = ["AUTHENTICATED_ROUTERS", "OPEN_ROUTERS", "create_app"]
