"""`execution-engine serve`: the engine and its HTTP API in one process, under uvicorn.

Order of work: logging, settings, tokens, the engine (which migrates the database first, so
a fresh database works), then the socket, then the URL (and a generated token) printed, then
uvicorn. The app stops the engine when uvicorn shuts down (SIGINT or SIGTERM).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from actors.engine import create_execution_engine
from api.app import create_app
from api.auth import TokenTable, generate_admin_token, token_identity
from api.config import ApiConfig
from api.logs import configure_logging
from core.settings import Settings, load_settings
from storage.db import default_sqlite_url, redact_url
from storage.single_instance import sqlite_instance_lock

log = logging.getLogger(__name__)


def _secrets_of(settings: Settings, tokens: dict[str, str], database_url: str) -> list[str]:
    found = list(tokens)
    if settings.mt5_password is not None:
        found.append(settings.mt5_password.get_secret_value())
    audit_key = settings.audit_key_secret()
    if audit_key is not None:
        found.append(audit_key)
    try:
        password = make_url(database_url).password
    except ArgumentError:  # an unparseable URL fails later, with its own message
        password = None
    if password:
        found.append(str(password))
    return found


def _write(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _listen(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not in 0-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104 - only for display
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@contextmanager
def _start_up_failure_logged(as_json: bool) -> Iterator[None]:
    """With EE_LOG_FORMAT=json, a start-up failure (port taken, database unreachable) is one
    JSON log line and exit status 1, not the command line's plain-text error line."""
    if not as_json:
        yield
        return
    try:
        yield
    except Exception as exc:
        # The driver's own message when there is one: its first line, never the SQL.
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.critical("cannot serve: %s: %s", type(exc).__name__, lines[0] if lines else "")
        raise SystemExit(1) from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: str | None = None,
    config: ApiConfig | None = None,
    out: TextIO | None = None,
) -> None:
    """Run the engine and its API until interrupted. Writes the URL (and, when
    EE_API_TOKENS is unset, a generated admin token, once) to `out` (stdout); progress goes
    to the log (stderr), so that with EE_LOG_FORMAT=json every stderr line is JSON."""
    out = out if out is not None else sys.stdout
    settings = load_settings()
    tokens = settings.api_token_roles()
    generated = None
    if not tokens:
        generated = generate_admin_token()
        tokens = {generated: "admin"}
    url = database_url or settings.database_url or default_sqlite_url()
    configure_logging(settings.log_format, settings.log_level, _secrets_of(settings, tokens, url))

    with _start_up_failure_logged(settings.log_format == "json"):
        # SQLite is single-instance: a second engine on the file stops here, in one line.
        instance_lock = sqlite_instance_lock(url)
        try:
            sock = _listen(host, port)
        except BaseException:
            if instance_lock is not None:
                instance_lock.release()
            raise
        try:
            log.info("starting the engine on %s (terminal: %s)", redact_url(url), settings.terminal)
            facade = create_execution_engine(database_url=url, settings=settings)
        except BaseException:
            sock.close()
            if instance_lock is not None:
                instance_lock.release()
            raise
    try:
        api_config = dataclasses.replace(config or ApiConfig(), stop_facade_on_shutdown=True)
        app = create_app(facade, TokenTable(tokens), api_config)
        server = _Server(
            app,
            uvicorn.Config(
                app,
                log_config=None,
                access_log=True,
                server_header=False,
                timeout_graceful_shutdown=math.ceil(api_config.execute_wait_seconds) + 5,
            ),
        )
        _write(out, f"execution-engine serving on {_url(sock, host)}")
        if generated is not None:
            _write(
                out,
                "no EE_API_TOKENS set: generated an admin token, shown once "
                f"({token_identity('admin', generated)}):\n    {generated}",
            )
        server.run(sockets=[sock])
    finally:
        facade.stop()
        sock.close()
        if instance_lock is not None:
            instance_lock.release()


class _Server(uvicorn.Server):
    """uvicorn's server that also tells the app it is closing, on the signal itself: the
    live streams end then, so the graceful shutdown waits only for real requests."""

    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._closing: threading.Event = app.state.closing

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._closing.set()
        super().handle_exit(sig, frame)


__all__ = ["serve"]
