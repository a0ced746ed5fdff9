"""Journal payloads of what the terminal answered (a finding's is in `core.rules.settlement`,
shared with recovery)."""

from __future__ import annotations

from typing import Any

from core.records import SendOutcome
from core.rules import retcode_name


def outcome_payload(outcome: SendOutcome) -> dict[str, Any]:
    return {
        "retcode": outcome.retcode,
        "retcode_name": retcode_name(outcome.retcode),
        "class": outcome.klass.value,
        "order": outcome.order,
        "deal": outcome.deal,
        "volume": outcome.volume,
        "price": outcome.price,
        "bid": outcome.bid,
        "ask": outcome.ask,
        "comment": outcome.comment,
        "request_id": outcome.request_id,
        "last_error": list(outcome.last_error) if outcome.last_error else None,
        "request": outcome.request,
    }


__all__ = ["outcome_payload"]
