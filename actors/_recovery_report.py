"""What a reconciliation run needs from the settings, and what it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    """What reconciliation needs from the settings.

    reconcile_window: seconds after an execution's last change before an order the
        terminal does not have is provably absent (NOT_SENT).
    ask_timeout: timeout of every ask to the BrokerActor and every commit.
    recheck_interval: pause between passes over executions that must wait for the window.
    max_wait: longest a waiting `run` keeps checking beyond the window (engine clock
        frozen in tests, a broker that keeps failing).
    """

    reconcile_window: float = 30.0
    ask_timeout: float = 30.0
    pip_overrides: Mapping[str, float] = field(default_factory=dict)
    recheck_interval: float = 0.05
    account: str | None = None
    """Whose executions these are: only that account's tickets are claimed (None: all)."""
    max_wait: float = 10.0
    look_interval: float = 0.25
    look_backoff_cap: float = 2.0
    """First and longest pause between two lookups of one execution that waits."""


@dataclass(slots=True)
class RecoveryReport:
    """The outcome of one `Reconciler.run`."""

    examined: int = 0
    resolved: dict[str, str] = field(default_factory=dict)
    """execution_id -> the final status it was given."""
    waiting: list[str] = field(default_factory=list)
    """Executions still inside the reconcile window when the run ended."""
    failures: dict[str, str] = field(default_factory=dict)
    """execution_id -> why it could not be reconciled."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.waiting

    def error(self) -> str:
        """One line naming the first problem (empty when ok)."""
        if self.failures:
            first, why = next(iter(self.failures.items()))
            more = len(self.failures) - 1
            return f"{first}: {why}" + (f" (+{more} more)" if more else "")
        if self.waiting:
            return f"{len(self.waiting)} execution(s) still inside the reconcile window"
        return ""

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for status in self.resolved.values():
            counts[status] = counts.get(status, 0) + 1
        return {
            "examined": self.examined,
            "resolved": counts,
            "waiting": len(self.waiting),
            "failures": dict(self.failures),
            "seconds": round(self.seconds, 3),
        }


__all__ = ["RecoveryConfig", "RecoveryReport"]
