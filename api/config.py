"""What the HTTP layer needs beyond the engine's settings: bounds on waits, bodies and pages."""

from __future__ import annotations

from dataclasses import dataclass

MAX_EXECUTE_WAIT_SECONDS = 300.0
"""The largest `?wait=` a client may ask of `POST /execute` (the configured cap still applies)."""

MAX_HISTORY_LIMIT = 1000
"""Most executions `GET /history` returns in one answer."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Bounds of the HTTP API.

    execute_wait_seconds: how long `POST /execute` waits for the final state before it
        answers 202 with the execution id (default 10); a client may ask for less with
        `?wait=`, never for more.
    max_body_bytes: largest request body accepted; larger ones get 413 (default 64 KiB,
        a hundred times an RPM message).
    health_timeout_seconds: how long `/health` waits for each actor to answer (default 2).
    max_waiting_requests: `POST /execute` calls that may wait for a final state at once,
        each in a worker thread of their own pool so that reads never queue behind them
        (default 64); further callers queue for a slot.
    docs: serve `/docs` and `/openapi.json` (default off: unauthenticated routes are
        kept to `/health`).
    stop_facade_on_shutdown: the app stops the facade when the server shuts down (what
        `execution-engine serve` wants; an embedding program that owns the facade does not).
    """

    execute_wait_seconds: float = 10.0
    max_body_bytes: int = 64 * 1024
    health_timeout_seconds: float = 2.0
    max_waiting_requests: int = 64
    docs: bool = False
    stop_facade_on_shutdown: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.execute_wait_seconds <= MAX_EXECUTE_WAIT_SECONDS:
            raise ValueError(f"execute_wait_seconds must be in [0, {MAX_EXECUTE_WAIT_SECONDS}]")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.health_timeout_seconds <= 0:
            raise ValueError("health_timeout_seconds must be positive")
        if self.max_waiting_requests < 1:
            raise ValueError("max_waiting_requests must be at least 1")


__all__ = ["MAX_EXECUTE_WAIT_SECONDS", "MAX_HISTORY_LIMIT", "ApiConfig"]
