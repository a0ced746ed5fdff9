"""Every message the actors exchange, in one place.

Commands and events between actors are frozen, slotted dataclasses rather than pydantic
models: they carry futures and actor references (not data), are created on the hot path,
and never cross a process boundary. Records that are data (what the broker saw, what a
poll found) are frozen too, so nothing mutates a message after it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka

from actors._reply import Call, Settable
from core.execution.state import Stage
from core.models import RPMOutput
from core.records import OrderFinding

# --- messages to the OrderActor ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advance:
    """Run `stage` next; sent by the OrderActor to itself between stages."""

    stage: Stage


@dataclass(frozen=True, slots=True)
class FillUpdate:
    """The shared poll found news about a watched order."""

    finding: OrderFinding


@dataclass(frozen=True, slots=True)
class Halt:
    """Trading was halted: reject if not yet sent, remove the order if it is still open."""

    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


# --- messages to the PersistenceActor ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Ops to commit; `reply` is set with the journal events after the commit."""

    ops: tuple[Any, ...]
    reply: Settable[Any]


@dataclass(frozen=True, slots=True)
class Flush:
    """Commit everything received so far in one transaction (group commit)."""


# --- what the facade hands an OrderActor ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewExecution:
    execution_id: str
    request_id: str
    client_id: str
    rpm: RPMOutput
    fingerprint: str
    reply: pykka.Future[Any]
    rpm_payload: dict[str, Any]
    """`rpm` as JSON-ready data, dumped once by the facade for its fingerprint too."""


# --- supervision ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The Supervisor's liveness ask; a supervised actor answers True from its inbox."""


@dataclass(frozen=True, slots=True)
class Rewatch:
    """The BrokerActor was restarted: an OrderActor watching an order registers it again."""


@dataclass(frozen=True, slots=True)
class InjectFault:
    """A drill's fault for a supervised actor (never sent in normal operation).

    kind: ``crash`` (the message fails, as a bug in a told message would) or ``hang``
    (the actor blocks until `release` is set or `hang_seconds` pass, as a stuck call would).
    """

    kind: str
    release: Any = None
    hang_seconds: float = 60.0


__all__ = [
    "Advance",
    "Call",
    "Cancel",
    "FillUpdate",
    "Flush",
    "Halt",
    "Heartbeat",
    "InjectFault",
    "NewExecution",
    "Rewatch",
    "Write",
]
