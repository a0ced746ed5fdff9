"""What an execution needs from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.enums import OppositePolicy, PartialFillPolicy, PositionScope


@dataclass(frozen=True, slots=True)
class OrderConfig:
    """What an execution needs from the settings (defaults are the seeds').

    max_slippage_pips: sets `deviation`, in points. order_timeout: seconds to wait for a fill.
    max_retries: re-sends after a clean (retryable) rejection. margin_cushion: 1.5 x margin.
    max_spread_pips / max_tick_age: market-data checks. reconcile_window: how long after
    order_send actually started an order must stay absent, with evidence that the terminal
    processed past the send (`core.rules.reconcile`), before the execution is NOT_SENT.
    reconcile_interval / reconcile_backoff_cap: first and longest pause between lookups.
    """

    engine_version: str
    magic: int = 770001
    max_slippage_pips: float = 10.0
    order_timeout: float = 60.0
    max_retries: int = 3
    margin_cushion: float = 1.5
    max_spread_pips: float = 5.0
    max_tick_age: float = 10.0
    pip_overrides: dict[str, float] = field(default_factory=dict)
    partial_policy: PartialFillPolicy = PartialFillPolicy.ACCEPT
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    reconcile_window: float = 30.0
    reconcile_interval: float = 0.25
    reconcile_backoff_cap: float = 2.0
    ask_timeout: float = 30.0
    position_scope: PositionScope = PositionScope.ENGINE
    opposite_positions: OppositePolicy = OppositePolicy.REDUCE


__all__ = ["OrderConfig"]
