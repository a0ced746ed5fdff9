"""Alerts pushed by the engine: Slack-compatible JSON POSTed to EE_ALERT_WEBHOOK_URL.

`Alerts.alert(kind, text, **fields)` never blocks and never raises: it masks the message,
puts it on one bounded queue per webhook URL and returns. A daemon thread per URL POSTs it
(stdlib urllib, a timeout per attempt), retrying a failure (a connection error, a timeout,
a 5xx or 429) with exponential back-off; a URL that hangs delays only its own queue. A full
queue drops its OLDEST message (`ee_alerts_total{outcome="dropped"}`), so the newest state
always gets through. Nothing here touches trading: the callers are the kill switch (every
change to HALTED or REDUCING), the Supervisor (restart-intensity escalation, a terminal
disconnected beyond its limit, a journal write failure, a failed reconciliation) and
whoever else has news for the desk, e.g. a flatten: `alerts.alert("flatten", text, by=...)`.

The payload is `{"text": ..., "kind": ..., "severity": ..., "at": ..., "fields": {...}}`:
Slack and Mattermost show `text` and ignore the rest; other receivers read the fields.
Known secrets (API tokens, the MT5 and database passwords, the audit key, the webhook URLs)
are masked in every string of it, as in the log; the URL, whose path is the webhook's own
secret, is logged as its scheme and host only.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from actors.metrics import EngineMetrics
from api.redact import Redactor
from core.clock import Clock
from core.models import TradingStateRecord
from core.settings import Settings

log = logging.getLogger(__name__)

_STOP_POLL = 0.02
"""Seconds between looks at the queue while `stop` lets it drain."""

QUEUE_SIZE = 100
"""Messages waiting per URL; a full queue drops its oldest."""

CRITICAL_KINDS = frozenset(
    {"halt", "restart_intensity", "journal_write_failure", "reconciliation_failed"}
)

QUIET_KINDS = frozenset({"journal_write_failure", "reconciliation_failed"})
"""Conditions that repeat while they last (each failed write, each reconcile pass): one
message per kind per `repeat_seconds`, the rest counted as suppressed."""


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """urls: where to POST (none: alerts are off). timeout: one attempt's limit.
    attempts / backoff / backoff_cap: retries of a failed POST (back-off doubles).
    repeat_seconds: the least time between two messages of a QUIET kind."""

    urls: tuple[str, ...] = ()
    timeout: float = 3.0
    attempts: int = 5
    backoff: float = 0.5
    backoff_cap: float = 8.0
    repeat_seconds: float = 60.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: urllib would re-send as a GET, body lost."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def describe_url(url: str) -> str:
    """The URL as the log may show it: scheme and host (the path is the webhook's secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


class _Sender:
    """One URL's bounded queue and delivery thread."""

    def __init__(self, url: str, owner: Alerts) -> None:
        if urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise ValueError("an alert webhook URL must be http:// or https://")
        self.url = url
        self.name = describe_url(url)
        self._owner = owner
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._opener = urllib.request.build_opener(_NoRedirect())
        self.thread = threading.Thread(target=self._run, name="ee-alerts", daemon=True)

    def put(self, body: bytes) -> None:
        with self._cond:
            if len(self._queue) >= QUEUE_SIZE:
                self._queue.popleft()
                self._owner.counted("dropped")
            self._queue.append(body)
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        stop = self._owner.stopping
        while True:
            with self._cond:
                while not self._queue and not stop.is_set():
                    self._cond.wait()
                if stop.is_set():
                    return
                body = self._queue[0]
            self._deliver(body, stop)
            with self._cond:
                if self._queue and self._queue[0] is body:
                    self._queue.popleft()

    def _deliver(self, body: bytes, stop: threading.Event) -> None:
        cfg = self._owner.config
        delay = cfg.backoff
        for attempt in range(1, cfg.attempts + 1):
            problem = self._post(body, cfg.timeout)
            if problem is None:
                self._owner.counted("sent")
                return
            if problem.startswith("HTTP 4") and not problem.startswith("HTTP 429"):
                break  # the receiver refuses this message: sending it again changes nothing
            log.warning(
                "alert to %s failed (attempt %d of %d): %s",
                *(self.name, attempt, cfg.attempts, problem),
            )
            if attempt < cfg.attempts:
                self._owner.counted("retried")
                if stop.wait(delay):
                    return
                delay = min(delay * 2, cfg.backoff_cap)
        log.error("alert to %s given up: %s", self.name, problem)
        self._owner.counted("failed")

    def _post(self, body: bytes, timeout: float) -> str | None:
        """None when delivered, else what went wrong (never the URL)."""
        request = urllib.request.Request(  # noqa: S310 - only http(s): see __init__
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "execution-engine"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(1024)
                return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"{type(exc).__name__}: {type(reason).__name__}"


class Alerts:
    """The engine's alert channel (a no-op without URLs). `start()` then `alert(...)`."""

    def __init__(
        self,
        config: AlertConfig,
        clock: Clock,
        *,
        secrets: Iterable[str] = (),
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._redact = Redactor([*secrets, *config.urls])
        self._on_outcome = on_outcome
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._senders = [_Sender(url, self) for url in config.urls]
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for sender in self._senders:
            sender.thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop delivering, after at most `timeout` seconds for what is queued (a halt
        just before shutdown still goes out; a hanging webhook delays shutdown no more)."""
        # Counted in real waits, not read from the injected clock: a manual clock that
        # never moves must not keep shutdown waiting.
        for _ in range(max(1, round(timeout / _STOP_POLL))):
            if not self._started or self.idle() or self.stopping.wait(_STOP_POLL):
                break
        self.stopping.set()
        for sender in self._senders:
            sender.wake()
        for sender in self._senders:
            if sender.thread.is_alive() and sender.thread is not threading.current_thread():
                sender.thread.join(timeout)

    def idle(self) -> bool:
        """Nothing queued or in delivery (for tests and shutdown)."""
        return all(sender.idle() for sender in self._senders)

    def alert(self, kind: str, text: str, **fields: Any) -> None:
        """Queue `text` for every URL; never blocks, never raises."""
        if not self._senders or self.stopping.is_set():
            return
        try:
            if not self._due(kind):
                self.counted("suppressed")
                return
            body = self._payload(kind, text, fields)
        except Exception:
            log.exception("alert %s not built", kind)
            return
        for sender in self._senders:
            sender.put(body)

    def state_changed(self, record: TradingStateRecord) -> None:
        """The kill switch's observer: a change to HALTED or REDUCING (and back to ACTIVE)."""
        kind = {"HALTED": "halt", "REDUCING": "reduce_only"}.get(record.state, "resume")
        self.alert(
            kind,
            f"trading {record.state} by {record.changed_by}: {record.reason}",
            state=record.state,
            by=record.changed_by,
            reason=record.reason,
            changed_at=record.changed_at.isoformat(),
        )

    def counted(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _due(self, kind: str) -> bool:
        if kind not in QUIET_KINDS:
            return True
        now = self._clock.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.config.repeat_seconds:
                return False
            self._last[kind] = now
            return True

    def _payload(self, kind: str, text: str, fields: Mapping[str, Any]) -> bytes:
        severity = "critical" if kind in CRITICAL_KINDS else "warning"
        at = self._clock.now().isoformat()
        message = {
            "text": self._mask(f"[execution-engine] {severity.upper()} {kind}: {text}"),
            "kind": kind,
            "severity": severity,
            "at": at,
            "fields": {str(k): self._mask(v) for k, v in fields.items()},
        }
        return json.dumps(message, ensure_ascii=False, default=str).encode("utf-8")

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self._redact(json.dumps(value, default=str))


def alerts_from_settings(
    settings: Settings,
    clock: Clock,
    metrics: EngineMetrics | None = None,
    extra_secrets: Iterable[str] = (),
) -> Alerts:
    """The engine's alerts as configured (EE_ALERT_WEBHOOK_URL, EE_ALERT_TIMEOUT_SECONDS),
    masking every secret the settings hold."""
    secrets = [*settings.api_token_roles(), *extra_secrets]
    if settings.mt5_password is not None:
        secrets.append(settings.mt5_password.get_secret_value())
    for secret in (settings.audit_key_secret(), settings.database_url):
        if secret:
            secrets.append(secret)
    return Alerts(
        AlertConfig(urls=settings.alert_webhook_urls(), timeout=settings.alert_timeout_seconds),
        clock,
        secrets=secrets,
        on_outcome=metrics.alert_outcome if metrics is not None else None,
    )


__all__ = ["AlertConfig", "Alerts", "alerts_from_settings", "describe_url"]
