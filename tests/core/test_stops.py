"""The stop-loss / take-profit rule: side, stops level, and the numbers in the detail."""

from __future__ import annotations

from typing import Any

import pytest

from core.enums import RejectionReason
from core.rules import Denied, stops_check

# EURUSD-like quote: bid 1.10000, ask 1.10012, point 0.00001.
QUOTE: dict[str, Any] = {"bid": 1.10000, "ask": 1.10012, "point": 0.00001}


def check(direction: int, sl: float | None = None, tp: float | None = None, level: int = 0) -> Any:
    return stops_check(
        direction=direction, stop_loss=sl, take_profit=tp, stops_level=level, **QUOTE
    )


@pytest.mark.parametrize(
    ("direction", "sl", "tp", "level"),
    [
        (1, None, None, 100),
        (1, 1.09500, 1.10500, 0),
        (1, 1.09900, 1.10100, 100),  # exactly the stops level from the bid
        (-1, 1.10500, 1.09500, 0),
        (-1, 1.10112, 1.09912, 100),  # exactly the stops level from the ask
        (1, 1.09999, None, 0),  # one point is enough without a stops level
    ],
)
def test_stops_that_suit_the_side_pass(
    direction: int, sl: float | None, tp: float | None, level: int
) -> None:
    assert check(direction, sl, tp, level) is None


@pytest.mark.parametrize(
    ("direction", "sl", "tp", "level", "words"),
    [
        (1, 1.10100, None, 0, "stop_loss 1.101 of a buy must be below the bid 1.1"),
        (1, None, 1.09900, 0, "take_profit 1.099 of a buy must be above the bid 1.1"),
        (1, 1.10000, None, 0, "stop_loss 1.1 of a buy must be below"),  # at the price
        (-1, 1.10000, None, 0, "stop_loss 1.1 of a sell must be above the ask 1.10012"),
        (-1, None, 1.10100, 0, "take_profit 1.101 of a sell must be below the ask"),
        (1, 1.09950, None, 100, "stops level of 100 points (0.001); it is 0.0005 below"),
        (-1, None, 1.09950, 100, "take_profit 1.0995 of a sell must be below"),
        (1, 1.09000, 1.10050, 100, "take_profit 1.1005"),  # the sl is fine, the tp is not
    ],
)
def test_stops_on_the_wrong_side_or_too_near_are_invalid_stops(
    direction: int, sl: float | None, tp: float | None, level: int, words: str
) -> None:
    denied = check(direction, sl, tp, level)
    assert isinstance(denied, Denied)
    assert denied.reason is RejectionReason.INVALID_STOPS
    assert words in denied.detail


@pytest.mark.parametrize(
    "quote",
    [{"bid": 0.0}, {"point": float("nan")}, {"ask": float("inf")}],
)
def test_a_broken_quote_or_spec_is_a_value_error(quote: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="unusable"):
        stops_check(
            direction=1, stop_loss=1.0, take_profit=None, stops_level=0, **{**QUOTE, **quote}
        )
    with pytest.raises(ValueError, match="unusable"):
        stops_check(direction=1, stop_loss=1.0, take_profit=None, stops_level=-1, **QUOTE)
