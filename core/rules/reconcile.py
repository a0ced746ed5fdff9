"""When an ambiguous send may be declared absent (NOT_SENT): evidence, not a stopwatch.

An order_send that got no definite answer may still execute. "Not found for N seconds"
proves nothing while the terminal itself is stalled or the send has not even left the
engine's line, so absence is concluded only on evidence that the terminal processed past
the send, and the window is measured from when order_send actually started:

- NOT_STARTED: the BrokerActor answered it without calling order_send (skipped past its
  deadline, dropped when the actor stopped, refused before the call). Nothing reached the
  terminal: absent at once.
- QUEUED / STARTED: still in the line, or order_send is running now. Never absent.
- ANSWERED: order_send returned through the whole chain (a result, or None with the
  terminal's last_error): the terminal handled the request, and only the trade server's
  answer may still land in history. Absent once the window since the send started has
  passed and a lookup after it finds nothing.
- CUT (the call raised: link lost, or a client-side timeout such as rpyc's, after which the
  bridge's server thread may still be inside order_send) and UNKNOWN (the BrokerActor that
  took it was replaced): absent only when, in addition, a LATER send through the same
  BrokerActor came back with a definite answer from the terminal (the "send fence"). The
  BrokerActor starts one order_send at a time, and MT5 executes the trade requests of one
  terminal connection in order, so a definite answer to a later request means the terminal
  got past the earlier one; the window covers the bridge, whose threaded server can run a
  cut call beside the next one (as the simulator does), and history that lags the answer.

Without that evidence the execution stays UNKNOWN, its margin held, and is looked up again
with back-off until it is found or proven absent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.records import SendTrace

AbsenceBase = tuple[int, int, float]
"""(BrokerActor incarnation, its last send number, monotonic time) at the first lookup that
met a send that BrokerActor never saw."""


class SendFate(StrEnum):
    """Where one client id's order_send stands in the BrokerActor that took it."""

    UNKNOWN = "unknown"
    """This BrokerActor never took it (it was replaced, or the engine restarted)."""
    QUEUED = "queued"
    STARTED = "started"
    """order_send is running now: the terminal has not answered."""
    ANSWERED = "answered"
    """order_send returned (a result, or None with its last_error)."""
    CUT = "cut"
    """The call raised (link lost, client-side timeout): the terminal may still act on it."""
    NOT_STARTED = "not_started"
    """Answered without an order_send (skipped, dropped, refused first): nothing was sent."""


def absence_proven(fate: SendFate, *, waited: float, window: float, fenced: bool) -> bool:
    """True when an order the lookup did not find is provably absent (see the module).

    waited: seconds since order_send actually started (for UNKNOWN: since the lookup first
    met it). fenced: a later send came back with a definite answer from the terminal.
    """
    if fate is SendFate.NOT_STARTED:
        return True
    if fate in (SendFate.QUEUED, SendFate.STARTED):
        return False
    if waited < window:
        return False
    return fate is SendFate.ANSWERED or fenced


def measure_absence(
    trace: SendTrace, now: float, base: AbsenceBase | None, *, sender_gone: bool = False
) -> tuple[float, bool, AbsenceBase | None]:
    """(seconds waited, fenced, the base to keep for the next lookup) of an order not found.

    Measured from when order_send actually started. A send the BrokerActor never saw
    (UNKNOWN: it was replaced, or the engine restarted) is measured from the first lookup
    that met it (`base`), and fenced by a send that started after that lookup.
    `sender_gone`: the process that sent it has died, so nothing of it is still on its way
    from this engine.
    """
    if trace.fate is SendFate.UNKNOWN:
        if base is None or base[0] != trace.broker:
            base = (trace.broker, trace.seq, now)
        return now - base[2], sender_gone or trace.fence > base[1], base
    started = trace.started_mono if trace.started_mono is not None else now
    return now - started, trace.fence > trace.seq, base


def reconcile_backoff(attempt: int, base: float, cap: float) -> float:
    """Pause before lookup number `attempt` (1-based) of an execution still UNKNOWN."""
    return float(min(cap, base * 2.0 ** min(max(attempt - 1, 0), 16)))
