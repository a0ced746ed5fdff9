"""The facade's intake of RPM messages: validation and the idempotency claims.

A decision id is claimed once: a repeat with the same payload gets the same execution (its
future while it runs, the stored record afterwards) and sends nothing; the same id with
another payload is an `IdempotencyConflictError`. The claims of the last `_RECENT_DECISIONS`
finished decisions stay in memory; older repeats are answered from the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka
from pydantic import ValidationError

from core.errors import IdempotencyConflictError, InvalidRequestError
from core.models import DECISION_ID, ExecutionConfirmation, ExecutionLog, RPMOutput

_RECENT_DECISIONS = 10_000
"""Finished decisions remembered in memory; older repeats are answered from the database."""


@dataclass(slots=True)
class _Claim:
    fingerprint: str
    execution_id: str
    future: pykka.Future[ExecutionConfirmation]


class DecisionClaims:
    """The claims on decision ids; the caller holds its own lock around every call."""

    def __init__(self, is_live: Callable[[str], bool], limit: int = _RECENT_DECISIONS) -> None:
        """`is_live(execution_id)`: whether an OrderActor still runs that execution."""
        self._is_live = is_live
        self._limit = limit
        self._claims: OrderedDict[str, _Claim] = OrderedDict()

    def known(
        self, decision_id: str, fingerprint: str
    ) -> pykka.Future[ExecutionConfirmation] | None:
        """The future of a decision claimed before, or None to claim it now."""
        claim = self._claims.get(decision_id)
        if claim is None:
            return None
        if claim.fingerprint != fingerprint:
            raise IdempotencyConflictError(decision_id=decision_id, execution_id=claim.execution_id)
        if failed(claim.future) and not self._is_live(claim.execution_id):
            # That attempt died (e.g. the database refused its write): what the database
            # holds decides now, and a decision it never stored may be executed again.
            del self._claims[decision_id]
            return None
        self._claims.move_to_end(decision_id)
        return claim.future

    def claim(self, decision_id: str, fingerprint: str, execution_id: str) -> pykka.Future[Any]:
        """Claim `decision_id` for a new execution; returns the future of its confirmation."""
        future: pykka.Future[ExecutionConfirmation] = pykka.ThreadingFuture()
        self._claims[decision_id] = _Claim(fingerprint, execution_id, future)
        return future

    def forget_finished(self) -> None:
        """Keep a bounded memory of finished decisions; older repeats hit the database."""
        while len(self._claims) > self._limit:
            oldest = next(iter(self._claims))
            if self._is_live(self._claims[oldest].execution_id):
                break
            self._claims.popitem(last=False)


def answer_stored(stored: ExecutionLog, fingerprint: str) -> pykka.Future[ExecutionConfirmation]:
    """The answer to a repeat of a decision a previous run stored."""
    if stored.rpm_fingerprint != fingerprint:
        raise IdempotencyConflictError(
            decision_id=stored.rpm_decision_id, execution_id=stored.execution_id
        )
    return answered(stored.to_confirmation())


def answered(confirmation: ExecutionConfirmation) -> pykka.Future[ExecutionConfirmation]:
    future: pykka.Future[ExecutionConfirmation] = pykka.ThreadingFuture()
    future.set(confirmation)
    return future


def failed(future: pykka.Future[Any]) -> bool:
    """True when `future` is done with an exception."""
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True
    return False


def parse_rpm(rpm_output: object) -> RPMOutput:
    """The RPM message, validated (an `RPMOutput` is taken as it is: it was validated when
    built); `InvalidRequestError` naming every bad field otherwise."""
    if isinstance(rpm_output, RPMOutput):
        return rpm_output
    try:
        return RPMOutput.model_validate(rpm_output)
    except ValidationError as exc:
        errors = tuple(_describe(error) for error in exc.errors())
        raise InvalidRequestError(
            "invalid RPM message: " + "; ".join(errors), errors=errors
        ) from exc


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def clean_decision_id(rpm_output: object) -> str | None:
    """The refused message's decision id, if it is a valid one (else it is not echoed)."""
    if isinstance(rpm_output, RPMOutput):
        return rpm_output.decision_id
    decision = rpm_output.get("decision") if isinstance(rpm_output, Mapping) else None
    found = decision.get("decision_id") if isinstance(decision, Mapping) else None
    return found if isinstance(found, str) and DECISION_ID.fullmatch(found) else None


__all__ = [
    "DecisionClaims",
    "answer_stored",
    "answered",
    "clean_decision_id",
    "failed",
    "parse_rpm",
]
