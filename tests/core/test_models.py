"""The RPM message model: bad input refused with the field named, extra context kept."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.models import RPMOutput


def message(**trade: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"symbol": "EURUSD", "direction": 1, "position_units": 95000}
    base.update(trade)
    return {
        "decision": {"status": "APPROVED", "decision_id": "d1", "approved_trade": base},
        "portfolio_state": {"trading_halted": False, "exposure": 0.2},
    }


def test_extra_fields_are_kept_for_the_audit_trail() -> None:
    parsed = RPMOutput.model_validate(message(stop_loss_pips=25))
    dumped = parsed.model_dump(mode="json")
    assert dumped["decision"]["approved_trade"]["stop_loss_pips"] == 25
    assert dumped["portfolio_state"]["exposure"] == 0.2


def test_the_fingerprint_is_the_same_for_the_same_message() -> None:
    assert (
        RPMOutput.model_validate(message()).fingerprint()
        == RPMOutput.model_validate(message()).fingerprint()
    )
    assert (
        RPMOutput.model_validate(message()).fingerprint()
        != RPMOutput.model_validate(message(position_units=96000)).fingerprint()
    )


@pytest.mark.parametrize(
    ("trade", "field"),
    [
        ({"position_units": float("nan")}, "position_units"),
        ({"position_units": float("inf")}, "position_units"),
        ({"position_units": 0}, "position_units"),
        ({"position_units": -1}, "position_units"),
        ({"position_units": "95000"}, "position_units"),
        ({"direction": 0}, "direction"),
        ({"direction": 2}, "direction"),
        ({"direction": True}, "direction"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "X" * 33}, "symbol"),
        ({"symbol": " EURUSD"}, "symbol"),
        ({"confidence_score": 1.5}, "confidence_score"),
        ({"note": "a\x00b"}, "note"),
    ],
)
def test_bad_trades_are_refused_naming_the_field(trade: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RPMOutput.model_validate(message(**trade))


def test_missing_decision_id_and_approved_without_trade_are_refused() -> None:
    with pytest.raises(ValidationError, match="decision_id"):
        RPMOutput.model_validate({"decision": {"status": "HOLD"}})
    with pytest.raises(ValidationError, match="approved_trade is required"):
        RPMOutput.model_validate({"decision": {"status": "APPROVED", "decision_id": "d"}})


def test_a_hold_decision_needs_no_trade() -> None:
    parsed = RPMOutput.model_validate({"decision": {"status": "HOLD", "decision_id": "h"}})
    assert parsed.decision.approved_trade is None


def test_naive_timestamps_are_refused() -> None:
    data = message()
    data["timestamp"] = "2025-12-23T14:30:00"
    with pytest.raises(ValidationError, match="time zone"):
        RPMOutput.model_validate(data)


def test_a_timestamp_without_a_utc_equivalent_is_refused_not_crashed() -> None:
    data = message()
    data["timestamp"] = "0001-01-01T00:00:00+00:01"
    with pytest.raises(ValidationError, match="date range"):
        RPMOutput.model_validate(data)


HUGE = 10**400
"""1 followed by 400 zeros: a JSON integer beyond any 64-bit float (`float()` overflows)."""


@pytest.mark.parametrize(
    ("trade", "field"),
    [
        ({"atr": HUGE}, "atr"),
        ({"atr": float("inf")}, "atr"),
        ({"atr": float("nan")}, "atr"),
        ({"position_units": HUGE}, "position_units"),
        ({"intended_price": HUGE}, "intended_price"),
        ({"intended_price": float("inf")}, "intended_price"),
        ({"confidence_score": float("nan")}, "confidence_score"),
        ({"stop_loss_pips": float("inf")}, "stop_loss_pips"),
        ({"stop_loss_pips": -HUGE}, "stop_loss_pips"),
        ({"levels": [1.0, {"deep": float("nan")}]}, "levels.1.deep"),
    ],
)
def test_numbers_that_are_not_finite_floats_are_refused_anywhere(
    trade: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=f"{field}: must be a finite number"):
        RPMOutput.model_validate(message(**trade))


def test_the_largest_finite_numbers_are_kept_as_given() -> None:
    largest = int(1.7976931348623157e308)  # an int, kept an int: fingerprints do not change
    parsed = RPMOutput.model_validate(message(atr=largest, note=-1e308))
    trade = parsed.model_dump(mode="json")["decision"]["approved_trade"]
    assert (trade["atr"], trade["note"]) == (largest, -1e308)


def test_extra_context_nested_too_deep_is_refused_naming_the_limit() -> None:
    deep: Any = "leaf"
    for _ in range(980):  # 256-980 levels gave "Maximum serialization depth exceeded"
        deep = {"k": deep}
    with pytest.raises(ValidationError, match="nested deeper than 32 levels"):
        RPMOutput.model_validate(message(context=deep))
    fine: Any = "leaf"
    for _ in range(28):  # with the message's own 3 levels: 31, under the limit
        fine = {"k": fine}
    RPMOutput.model_validate(message(context=fine)).fingerprint()


def test_non_finite_extras_no_longer_share_a_fingerprint_with_null() -> None:
    # They were stored as null: {"x": NaN} and {"x": null} had one fingerprint.
    assert RPMOutput.model_validate(message(x=None)).fingerprint()
    with pytest.raises(ValidationError, match="x: must be a finite number"):
        RPMOutput.model_validate(message(x=float("nan")))


def _with_id(decision_id: str) -> dict[str, Any]:
    data = message()
    data["decision"]["decision_id"] = decision_id
    return data


@pytest.mark.parametrize(
    "decision_id",
    ["rpm_dec_123", "d1", "bench-ab12-0000001", "drill-ab12-00001", "A.b:c-d_e", "x" * 128],
)
def test_safe_decision_ids_are_accepted(decision_id: str) -> None:
    assert RPMOutput.model_validate(_with_id(decision_id)).decision_id == decision_id


@pytest.mark.parametrize(
    "decision_id",
    [
        "caf\u00e9",  # NFC
        "cafe\u0301",  # NFD: the same text to a reader
        "\uff41bc",  # fullwidth a
        "a\u200bbc",  # zero-width space
        "a\u200fbc",  # right-to-left mark
        "a\x1bbc",  # ESC
        "abc\n",
        " abc",
        "a b",
        "-abc",
        "_abc",
        "a/b",
        "x" * 129,
    ],
)
def test_look_alike_and_unsafe_decision_ids_are_refused(decision_id: str) -> None:
    with pytest.raises(ValidationError, match="decision_id"):
        RPMOutput.model_validate(_with_id(decision_id))


def test_an_intended_price_beyond_any_quote_is_refused() -> None:
    # 1e308 passed, the order was FILLED, then its slippage (-inf pips) could not be stored.
    with pytest.raises(ValidationError, match="intended_price"):
        RPMOutput.model_validate(message(intended_price=1e308))
    assert RPMOutput.model_validate(message(intended_price=1e12)).decision.approved_trade


@pytest.mark.parametrize("field", ["stop_loss", "take_profit"])
@pytest.mark.parametrize("value", [0, -1.1, 1e13, float("nan"), float("inf"), True, "1.1"])
def test_stops_must_be_finite_positive_bounded_prices(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        RPMOutput.model_validate(message(**{field: value}))


def test_stops_are_optional_and_kept() -> None:
    trade = RPMOutput.model_validate(message(stop_loss=1.09, take_profit=1.1)).decision
    assert trade.approved_trade is not None
    assert (trade.approved_trade.stop_loss, trade.approved_trade.take_profit) == (1.09, 1.1)
    plain = RPMOutput.model_validate(message()).decision.approved_trade
    assert plain is not None
    assert (plain.stop_loss, plain.take_profit) == (None, None)
