"""The engine's own Prometheus metrics (a registry per engine, never the global one).

Actors report through this object; `/metrics` serves `registry` as Prometheus text, and
`summary()` gives the seeds' monitoring figures as JSON (success rate, slippage, rates of
partial fills, timeouts, network errors, broker rejections and system errors, latencies).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors._account_metrics import AccountMetrics
from core.enums import ExecutionStatus, RejectionReason, TradingState
from core.models import ExecutionLog

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
_SLIPPAGE_BUCKETS = (-10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20)
_WINDOW = 10_000
"""Recent observations kept for the JSON summary's averages and percentiles."""

# Outcomes of terminal calls that mean the link (not the market) failed.
NETWORK_OUTCOMES = frozenset({"ipc_error", "exception"})
_SYSTEM_REASONS = frozenset({RejectionReason.INTERNAL_ERROR})
_BROKER_REASONS = frozenset({RejectionReason.BROKER_REJECTED, RejectionReason.RETRIES_EXHAUSTED})


class EngineMetrics:
    """Counters, histograms and gauges of one engine; thread-safe (prometheus_client is)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.executions = Counter(
            "ee_executions",
            "Executions that reached a final state.",
            ["status", "reason"],
            registry=r,
        )
        self.slippage = Histogram(
            "ee_slippage_pips",
            "Signed slippage of filled executions (positive = adverse).",
            buckets=_SLIPPAGE_BUCKETS,
            registry=r,
        )
        self.terminal_calls = Counter(
            "ee_terminal_calls",
            "Calls to the terminal by function and outcome.",
            ["function", "outcome"],
            registry=r,
        )
        self.terminal_seconds = Histogram(
            "ee_terminal_call_seconds",
            "Duration of terminal calls.",
            ["function"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.submit_latency = Histogram(
            "ee_submit_to_send_seconds",
            "From submit() to the start of the first order_send.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fill_time = Histogram(
            "ee_fill_seconds",
            "From the first order_send to the final fill.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.db_write = Histogram(
            "ee_db_write_seconds",
            "Duration of one group-commit transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.db_read = Histogram(
            "ee_db_query_seconds",
            "Duration of one read query (reads served by the API).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.database_up = Gauge(
            "ee_database_up", "1 when the database answered its last check.", registry=r
        )
        self.api_seconds = Histogram(
            "ee_api_request_seconds",
            "HTTP request duration by route.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "ee_send_retries",
            "Re-sends after a clean (retryable) rejection.",
            ["retcode"],
            registry=r,
        )
        self.restarts = Counter(
            "ee_actor_restarts", "Actor restarts by the supervisor.", ["actor"], registry=r
        )
        for actor in ("persistence", "broker", "order"):
            self.restarts.labels(actor)  # a zero from the start: rate() sees the first one
        self.journal_failures = Counter(
            "ee_journal_write_failures",
            "Journal commits the database refused (trading halts on the first).",
            registry=r,
        )
        self.reconcile_failures = Counter(
            "ee_reconcile_failures",
            "Failed attempts to reconcile an execution (one per execution per pass: at "
            "start, in the background, at resume).",
            registry=r,
        )
        self.terminal_disconnected = Gauge(
            "ee_terminal_disconnected_seconds",
            "How long the terminal has been disconnected (0 while connected).",
            registry=r,
        )
        self.alerts = Counter(
            "ee_alerts",
            "Webhook alerts by outcome: sent, retried (one failed attempt), failed (given "
            "up), dropped (queue full, oldest first), suppressed (a repeat too soon).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("sent", "retried", "failed", "dropped", "suppressed"):
            self.alerts.labels(outcome)
        self.accounts = AccountMetrics(r)
        """The `ee_account_*` families (label `account`)."""
        self.trading_halted = Gauge(
            "ee_trading_halted", "1 when the kill switch is engaged.", registry=r
        )
        self.trading_state = Gauge(
            "ee_trading_state",
            "1 for the kill switch's current state (ACTIVE, REDUCING or HALTED), else 0.",
            ["state"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ee_executions_in_flight", "Executions not yet final in this process.", registry=r
        )
        self.audit_checkpoint_sequence = Gauge(
            "ee_audit_checkpoint_sequence",
            "Journal sequence of the last audit checkpoint (the chain's head then).",
            registry=r,
        )
        self.audit_checkpoint_time = Gauge(
            "ee_audit_checkpoint_timestamp_seconds",
            "When the last audit checkpoint was taken (Unix time).",
            registry=r,
        )
        self.unknown_now = Gauge(
            "ee_executions_unknown",
            "Executions whose order's fate is not known yet (UNKNOWN, being reconciled); "
            "their margin stays reserved.",
            registry=r,
        )
        self.unknown_now.set_function(lambda: float(self.unknown_count()))
        self.corrections = Counter(
            "ee_reconcile_corrections",
            "Executions settled without an order whose order later appeared at the terminal.",
            registry=r,
        )
        self._unknown: set[str] = set()
        self._halted_fn: Callable[[], bool] = lambda: False
        self._state_fn: Callable[[], TradingState] = lambda: TradingState.ACTIVE
        self._in_flight_fn: Callable[[], int] = lambda: 0
        self._lock = threading.Lock()
        self._database_up: bool | None = None
        self._finals: deque[tuple[str, str]] = deque(maxlen=_WINDOW)
        self._slips: deque[float] = deque(maxlen=_WINDOW)
        self._calls: deque[str] = deque(maxlen=_WINDOW)
        self._latencies: dict[str, deque[float]] = {
            "submit_to_send": deque(maxlen=_WINDOW),
            "order_send": deque(maxlen=_WINDOW),
            "fill": deque(maxlen=_WINDOW),
            "db_write": deque(maxlen=_WINDOW),
            "db_query": deque(maxlen=_WINDOW),
            "api": deque(maxlen=_WINDOW),
        }

    # --- reporting hooks ----------------------------------------------------------------

    def terminal_call(self, function: str, outcome: str, seconds: float) -> None:
        self.terminal_calls.labels(function, outcome).inc()
        self.terminal_seconds.labels(function).observe(seconds)
        with self._lock:
            self._calls.append(outcome)
            if function == "order_send":
                self._latencies["order_send"].append(seconds)

    def execution_final(self, record: ExecutionLog) -> None:
        reason = record.rejection_reason.value if record.rejection_reason else ""
        self.executions.labels(record.status.value, reason).inc()
        self.accounts.execution_final(record)
        with self._lock:
            self._finals.append((record.status.value, reason))
            if record.slippage_pips is not None:
                self._slips.append(record.slippage_pips)
        if record.slippage_pips is not None:
            self.slippage.observe(record.slippage_pips)
        if record.submitted_at is not None and record.filled_at is not None:
            self._observe("fill", (record.filled_at - record.submitted_at).total_seconds())

    def submitted(self, seconds: float) -> None:
        self._observe("submit_to_send", seconds)

    def retry(self, retcode: int | None) -> None:
        self.retries.labels(str(retcode)).inc()

    def journal_failed(self) -> None:
        self.journal_failures.inc()

    def reconcile_failed(self, count: int) -> None:
        self.reconcile_failures.inc(count)

    def alert_outcome(self, outcome: str) -> None:
        self.alerts.labels(outcome).inc()

    def bind_terminal(self, disconnected_seconds: Callable[[], float]) -> None:
        self.terminal_disconnected.set_function(disconnected_seconds)

    def db_written(self, ops: int, seconds: float) -> None:
        del ops
        self._observe("db_write", seconds)

    def db_queried(self, seconds: float) -> None:
        self._observe("db_query", seconds)

    def database_checked(self, up: bool) -> None:
        self.database_up.set(1.0 if up else 0.0)
        with self._lock:
            self._database_up = up

    def api_request(self, route: str, method: str, seconds: float) -> None:
        self.api_seconds.labels(route, method).observe(seconds)
        with self._lock:
            self._latencies["api"].append(seconds)

    def audit_checkpoint(self, sequence: int, at_seconds: float) -> None:
        self.audit_checkpoint_sequence.set(sequence)
        self.audit_checkpoint_time.set(at_seconds)

    def unknown(self, execution_id: str, unknown: bool) -> None:
        """`execution_id` is now (or no longer) UNKNOWN and being reconciled."""
        with self._lock:
            if unknown:
                self._unknown.add(execution_id)
            else:
                self._unknown.discard(execution_id)

    def unknown_count(self) -> int:
        with self._lock:
            return len(self._unknown)

    def corrected(self) -> None:
        self.corrections.inc()

    def restarted(self, actor: str) -> None:
        self.restarts.labels(actor).inc()

    def bind_gauges(
        self,
        halted: Callable[[], bool],
        in_flight: Callable[[], int],
        state: Callable[[], TradingState] | None = None,
    ) -> None:
        self._halted_fn = halted
        self._in_flight_fn = in_flight
        self.trading_halted.set_function(lambda: 1.0 if halted() else 0.0)
        if state is not None:
            self._state_fn = state
            for each in TradingState:
                self.trading_state.labels(each.value).set_function(
                    lambda each=each: 1.0 if state() is each else 0.0  # type: ignore[misc]
                )
        self.in_flight.set_function(lambda: float(in_flight()))

    def _observe(self, name: str, seconds: float) -> None:
        histogram = {
            "submit_to_send": self.submit_latency,
            "fill": self.fill_time,
            "db_write": self.db_write,
            "db_query": self.db_read,
        }[name]
        histogram.observe(seconds)
        with self._lock:
            self._latencies[name].append(seconds)

    # --- the JSON summary ---------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self._lock:
            finals = list(self._finals)
            slips = list(self._slips)
            calls = list(self._calls)
            latencies = {name: list(values) for name, values in self._latencies.items()}
            database_up = self._database_up
        total = len(finals)

        def rate(predicate: Callable[[str, str], bool]) -> float | None:
            return sum(1 for s, r in finals if predicate(s, r)) / total if total else None

        network = sum(1 for outcome in calls if outcome in NETWORK_OUTCOMES)
        return {
            "executions": total,
            "success_rate": rate(lambda s, _: s == ExecutionStatus.FILLED.value),
            "partial_fill_rate": rate(lambda s, _: s == ExecutionStatus.PARTIALLY_FILLED.value),
            "timeout_rate": rate(lambda _, r: r == RejectionReason.ORDER_TIMEOUT.value),
            "broker_rejection_rate": rate(lambda _, r: r in {x.value for x in _BROKER_REASONS}),
            "system_error_rate": rate(lambda _, r: r in {x.value for x in _SYSTEM_REASONS}),
            "network_error_rate": network / len(calls) if calls else None,
            "slippage_pips": {
                "average": sum(slips) / len(slips) if slips else None,
                "average_abs": sum(abs(x) for x in slips) / len(slips) if slips else None,
                "p95": _percentile(slips, 0.95),
            },
            "latency_ms": {name: _latency_summary(values) for name, values in latencies.items()},
            "trading_halted": self._halted_fn(),
            "trading_state": self._state_fn().value,
            "executions_in_flight": self._in_flight_fn(),
            "executions_unknown": self.unknown_count(),
            "database_up": database_up,
        }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(int(q * len(ordered)), len(ordered) - 1)
    return ordered[index]


def _latency_summary(values: list[float]) -> dict[str, float | None]:
    return {
        "count": float(len(values)),
        "p50": _ms(_percentile(values, 0.5)),
        "p95": _ms(_percentile(values, 0.95)),
        "mean": _ms(sum(values) / len(values)) if values else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
