"""The account in the RPM message and the execution record (issue 13)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.enums import RejectionReason
from core.models import ExecutionConfirmation, ExecutionLog, RPMOutput, journal_created_fields

MESSAGE: dict[str, Any] = {
    "decision": {"status": "HOLD", "decision_id": "dec-1"},
    "rpm_version": "1.0",
    "extra": {"kept": True},
}


def _old_fingerprint(data: dict[str, Any]) -> str:
    """The fingerprint as computed before accounts: the canonical JSON of every field."""
    payload = {
        "decision": {**data["decision"], "approved_trade": None},
        "portfolio_state": {"trading_halted": False},
        "rpm_version": data["rpm_version"],
        "model_version": None,
        "timestamp": None,
        "extra": data["extra"],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_message_naming_no_account_is_the_default_accounts_with_its_old_fingerprint() -> None:
    rpm = RPMOutput.model_validate(MESSAGE)

    assert rpm.account == "default"
    assert "account" not in rpm.model_dump(mode="json")
    assert rpm.fingerprint() == _old_fingerprint(MESSAGE)


def test_naming_the_default_account_is_the_same_message() -> None:
    named = RPMOutput.model_validate({**MESSAGE, "account": "default"})

    assert named.account == "default"
    assert (
        named.payload_and_fingerprint()
        == RPMOutput.model_validate(MESSAGE).payload_and_fingerprint()
    )


def test_another_account_is_kept_in_the_payload_and_changes_the_fingerprint() -> None:
    alpha = RPMOutput.model_validate({**MESSAGE, "account": "alpha-1.b_2"})
    payload, fingerprint = alpha.payload_and_fingerprint()

    assert alpha.account == "alpha-1.b_2"
    assert payload["account"] == "alpha-1.b_2"
    assert fingerprint != _old_fingerprint(MESSAGE)
    assert RPMOutput.model_validate(payload) == alpha  # the stored payload reads back


@pytest.mark.parametrize(
    "name", ["", " alpha", "alpha ", "al pha", "_alpha", "a" * 65, "Ålpha", "a/b", 7, None]
)
def test_a_bad_account_is_refused_naming_the_field(name: object) -> None:
    with pytest.raises(ValidationError) as caught:
        RPMOutput.model_validate({**MESSAGE, "account": name})

    assert [error["loc"] for error in caught.value.errors()] == [("account",)]


def _log(**changes: Any) -> ExecutionLog:
    at = datetime(2024, 3, 1, tzinfo=UTC)
    return ExecutionLog(
        execution_id="exec_1",
        request_id="req_1",
        rpm_decision_id="dec-1",
        client_id="ee-1",
        symbol="EURUSD",
        direction=1,
        intended_units=1000.0,
        engine_version="0.1.0",
        rpm_fingerprint="f" * 64,
        rpm_payload={},
        created_at=at,
        updated_at=at,
        **changes,
    )


def test_the_record_and_its_confirmation_carry_the_account() -> None:
    assert _log().account == "default"
    alpha = _log(account="alpha")
    assert alpha.to_confirmation().account == "alpha"
    assert list(ExecutionLog.model_fields)[-1] == "account"  # the CSV export's last column
    refused = ExecutionConfirmation.refused(
        "exec_2", RejectionReason.UNKNOWN_ACCOUNT, "no", account="x"
    )
    assert (refused.account, refused.rejection_reason) == ("x", "UNKNOWN_ACCOUNT")


def test_a_first_journal_event_names_only_an_account_other_than_the_default() -> None:
    assert "account" not in _log().changes_from(None)
    assert _log(account="alpha").changes_from(None)["account"] == "alpha"
    fields = _log().model_dump(mode="json")
    assert journal_created_fields(fields) == {k: v for k, v in fields.items() if k != "account"}
    assert "account" in fields  # the input is not changed
