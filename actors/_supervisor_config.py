"""The Supervisor's timings, read from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings

SUPERVISOR = "supervisor"
"""`changed_by` of the automatic halts."""


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Timings of supervision (the defaults of `from_settings`).

    restart_intensity / restart_period: more restarts than this within the period halt
        trading and end the restarting (OTP's intensity and period; default 5 in 10 s).
    heartbeat_interval / heartbeat_timeout: how often each child is asked `Heartbeat`,
        and how long an answer may take before the child counts as hung.
    disconnect_halt_after: seconds of a disconnected terminal before trading halts.
    tick: the watcher's pass period (a reported death wakes it at once).
    ask_timeout: commits and broker asks made by the Supervisor itself.
    recovery_interval: pass period of the thread that reconciles orphan executions.
    late_interval / late_lookback: how often, and how far back, the recovery thread checks
        that no execution settled NOT_SENT has an order at the terminal after all.
    """

    restart_intensity: int = 5
    restart_period: float = 10.0
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 30.0
    disconnect_halt_after: float = 30.0
    tick: float = 0.05
    ask_timeout: float = 30.0
    recovery_interval: float = 0.1
    late_interval: float = 10.0
    late_lookback: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SupervisorConfig:
        return cls(
            restart_intensity=settings.restart_intensity,
            restart_period=settings.restart_period_seconds,
            heartbeat_interval=min(0.5, settings.ask_timeout_seconds / 4),
            heartbeat_timeout=settings.ask_timeout_seconds,
            disconnect_halt_after=settings.disconnect_halt_seconds,
            ask_timeout=settings.ask_timeout_seconds,
            recovery_interval=min(0.25, settings.reconcile_window_seconds / 3),
            late_interval=min(10.0, max(1.0, settings.reconcile_window_seconds)),
        )

    @property
    def connection_interval(self) -> float:
        return max(min(0.5, self.disconnect_halt_after / 4), self.tick)


__all__ = ["SUPERVISOR", "SupervisorConfig"]
