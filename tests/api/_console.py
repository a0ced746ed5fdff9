"""A real `execution-engine serve` for the console's end-to-end tests (SQLite under the
test's directory: the stream and the page are what is under test, not the store)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api._server import Server, running
from tests.api._support import TOKEN_OF, TOKENS

FAST = {
    "EE_POLL_INTERVAL_SECONDS": "0.01",
    "EE_RETRY_BACKOFF_SECONDS": "0.005",
    "EE_RETRY_BACKOFF_CAP_SECONDS": "0.02",
    "EE_CACHE_TICK_SECONDS": "0",
}


@contextmanager
def console_server(directory: Path) -> Iterator[Server]:
    env = {"EE_API_TOKENS": ",".join(f"{r}:{t}" for t, r in TOKENS.items()), **FAST}
    url = f"sqlite:///{directory / 'console.db'}"
    args = ["execution-engine", "serve", "--port", "0", "--database-url", url]
    with running(args, directory, env) as server:
        yield server


def client(server: Server, role: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN_OF[role]}"}, timeout=30
    )
