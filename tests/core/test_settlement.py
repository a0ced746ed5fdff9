"""The settlement rules the OrderActor and crash recovery share (`core.rules.settlement`)."""

from __future__ import annotations

import pytest

from core.enums import ExecutionStatus, RejectionReason
from core.rules.settlement import (
    closed_unfilled,
    fills_vwap,
    is_complete,
    leg_status,
    summarize_fills,
)
from tests.core._execution_driver import EURUSD


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (6, (ExecutionStatus.EXPIRED, RejectionReason.ORDER_TIMEOUT)),
        (2, (ExecutionStatus.REJECTED, RejectionReason.BROKER_REJECTED)),
        (None, (ExecutionStatus.REJECTED, RejectionReason.BROKER_REJECTED)),
    ],
)
def test_an_order_closed_unfilled_is_expired_only_by_its_own_expiry(
    state: int | None, expected: tuple[ExecutionStatus, RejectionReason]
) -> None:
    assert closed_unfilled(state) == expected


@pytest.mark.parametrize(
    ("filled", "volume", "status"),
    [(1.0, 1.0, "FILLED"), (1.0 - 1e-12, 1.0, "FILLED"), (0.4, 1.0, "PARTIALLY_FILLED"),
     (0.0, 1.0, "NOT_FILLED")],
)  # fmt: skip
def test_leg_status(filled: float, volume: float, status: str) -> None:
    assert leg_status(filled, volume) == status


def test_summary_rounds_and_signs_slippage_against_the_side() -> None:
    lots, price = fills_vwap([(0.5, 1.10010), (0.5, 1.10030)])

    buy = summarize_fills(
        lots, price, spec=EURUSD, direction=1, intended_price=1.10010, pip_override=None
    )
    sell = summarize_fills(
        lots, price, spec=EURUSD, direction=-1, intended_price=1.10010, pip_override=None
    )

    assert (buy.lots, buy.fill_price, buy.units) == (1.0, 1.1002, 100_000.0)
    assert buy.slippage_pips == pytest.approx(1.0)  # a buy filled higher: worse
    assert sell.slippage_pips == pytest.approx(-1.0)
    assert buy.slippage_abs_pips == sell.slippage_abs_pips == pytest.approx(1.0)
    assert is_complete(buy.lots, 1.0)


def test_slippage_is_unknown_without_an_intended_price_or_a_price() -> None:
    no_intent = summarize_fills(
        1.0, 1.1, spec=EURUSD, direction=1, intended_price=None, pip_override=None
    )
    no_price = summarize_fills(
        1.0, 0.0, spec=EURUSD, direction=1, intended_price=1.1, pip_override=None
    )

    assert no_intent.slippage_pips is None
    assert no_price.slippage_abs_pips is None
