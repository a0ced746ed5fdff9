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
