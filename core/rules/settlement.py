"""How an execution settles on what the terminal says filled (pure).

One set of rules for the OrderActor (through `core.execution`) and for crash recovery and
late corrections (`actors._recover_order`, `actors._recover_legs`, `actors._corrections`): the
fill price, the slippage against the intended price, the units, the rounding, the leg
status, and what an order that closed with nothing filled ends as.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.enums import ExecutionStatus, RejectionReason
from core.models import LegStatus
from core.records import OrderFinding, SymbolSpec
from core.rules.prices import pip_size, slippage_pips
from core.rules.volume import lots_to_units

VOLUME_EPS = 1e-9
"""Lots closer than this are equal (volumes are float sums of broker-rounded lots)."""
ORDER_STATE_EXPIRED = 6
"""ORDER_STATE_EXPIRED: the order's own expiry ended it (MetaTrader5 5.0.6231)."""


@dataclass(frozen=True, slots=True)
class FillSummary:
    """An execution's fills as its record stores them."""

    lots: float
    """Rounded to 8 places (float sums of lots drift)."""
    price: float
    """The volume-weighted price, unrounded (journal payloads keep it so)."""
    fill_price: float
    """`price` rounded to the symbol's digits + 3, as stored."""
    pip: float
    slippage_pips: float | None
    slippage_abs_pips: float | None
    units: float

    def record_changes(self) -> dict[str, Any]:
        """The `ExecutionLog` fields a fill sets (with `filled_at` left to the caller)."""
        return {
            "executed_lots": self.lots,
            "executed_units": self.units,
            "fill_price": self.fill_price,
            "slippage_pips": self.slippage_pips,
            "slippage_abs_pips": self.slippage_abs_pips,
        }


def fills_vwap(fills: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(lots rounded to 8 places, volume-weighted price) of (lots, price) fills; (0, 0)
    without any."""
    lots = round(sum(volume for volume, _ in fills), 8)
    if lots <= 0:
        return 0.0, 0.0
    return lots, sum(volume * price for volume, price in fills) / lots


def summarize_fills(
    lots: float,
    price: float,
    *,
    spec: SymbolSpec,
    direction: int,
    intended_price: float | None,
    pip_override: float | None,
) -> FillSummary:
    """`lots` filled at `price` (a VWAP) against the intended price.

    Slippage is unknown (None) without an intended price or a price (a finding without
    its deals); the sign follows the side: positive is worse for the trader.
    """
    lots = round(lots, 8)
    pip = pip_size(spec.digits, spec.point, pip_override)
    signed: float | None = None
    absolute: float | None = None
    if intended_price is not None and price > 0:
        signed, absolute = slippage_pips(1 if direction > 0 else -1, intended_price, price, pip)
    return FillSummary(
        lots=lots,
        price=price,
        fill_price=round(price, spec.digits + 3),
        pip=pip,
        slippage_pips=signed,
        slippage_abs_pips=absolute,
        units=lots_to_units(lots, spec.trade_contract_size),
    )


def is_complete(filled: float, lots: float) -> bool:
    return filled >= lots - VOLUME_EPS


def leg_status(filled: float, volume: float) -> LegStatus:
    """A sent leg's status from what filled of it."""
    if filled >= volume - VOLUME_EPS:
        return "FILLED"
    return "PARTIALLY_FILLED" if filled > 0 else "NOT_FILLED"


def closed_unfilled(state: int | None) -> tuple[ExecutionStatus, RejectionReason]:
    """An order that closed at the server with nothing filled: its own expiry is a
    timeout (EXPIRED); anything else is the broker's refusal (REJECTED)."""
    if state == ORDER_STATE_EXPIRED:
        return ExecutionStatus.EXPIRED, RejectionReason.ORDER_TIMEOUT
    return ExecutionStatus.REJECTED, RejectionReason.BROKER_REJECTED


def finding_payload(finding: OrderFinding) -> dict[str, Any]:
    """A finding as journal events carry it."""
    return {
        "ticket": finding.ticket,
        "open": finding.open,
        "state": finding.state,
        "filled_volume": finding.filled_volume,
        "vwap": finding.vwap,
        "deals": [[d.ticket, d.volume, d.price] for d in finding.deals],
    }


__all__ = [
    "ORDER_STATE_EXPIRED",
    "VOLUME_EPS",
    "FillSummary",
    "closed_unfilled",
    "fills_vwap",
    "finding_payload",
    "is_complete",
    "leg_status",
    "summarize_fills",
]
