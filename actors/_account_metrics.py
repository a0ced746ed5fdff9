"""Per-account metric families (label `account`), beside the engine-wide ones.

New families rather than an `account` label on the existing ones: a dashboard or alert
written for a single-account engine keeps its queries (`ee_trading_state{state}` is still
the first account's state), and a many-account engine adds these.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from core.enums import TradingState
from core.models import ExecutionLog


class AccountMetrics:
    """`ee_account_*` families on the engine's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.executions = Counter(
            "ee_account_executions",
            "Executions that reached a final state, by account.",
            ["account", "status", "reason"],
            registry=r,
        )
        self.trading_state = Gauge(
            "ee_account_trading_state",
            "1 for each account's current trading state (ACTIVE, REDUCING or HALTED), else 0.",
            ["account", "state"],
            registry=r,
        )
        self.broker_connected = Gauge(
            "ee_account_terminal_connected",
            "1 while the account's terminal is connected (its watchdog's last look).",
            ["account"],
            registry=r,
        )
        self.disconnected = Gauge(
            "ee_account_terminal_disconnected_seconds",
            "How long the account's terminal has been disconnected (0 while connected).",
            ["account"],
            registry=r,
        )

    def execution_final(self, record: ExecutionLog) -> None:
        reason = record.rejection_reason.value if record.rejection_reason else ""
        self.executions.labels(record.account, record.status.value, reason).inc()

    def bind(
        self,
        account: str,
        state: Callable[[], TradingState],
        disconnected_seconds: Callable[[], float],
    ) -> None:
        """The gauges of one account, read at each scrape."""
        for each in TradingState:
            self.trading_state.labels(account, each.value).set_function(
                lambda each=each: 1.0 if state() is each else 0.0  # type: ignore[misc]
            )
        self.disconnected.labels(account).set_function(disconnected_seconds)
        self.broker_connected.labels(account).set_function(
            lambda: 0.0 if disconnected_seconds() > 0 else 1.0
        )


__all__ = ["AccountMetrics"]
