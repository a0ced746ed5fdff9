"""The BrokerActor's record of its sends: the evidence reconciliation needs.

An OrderActor that got no definite answer to its send (the terminal raised, timed out, or
the OrderActor stopped waiting for its turn in the line) must not guess. It asks the
BrokerActor what became of its client id: still queued, running now, never started,
answered by the terminal, or cut off (the call raised, so the terminal may still act on
it). The ledger also numbers every order_send as it starts (`seq`) and keeps the highest
number that came back with a definite answer (`fence`): because the BrokerActor starts one
send at a time and the terminal executes one connection's trade requests in order, a
definite answer to a later send means the terminal got past every earlier one.

Owned by one BrokerActor and used on its thread only; a new incarnation starts empty
(`broker` tells them apart).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from core.records import SendTrace
from core.rules.reconcile import AbsenceBase, SendFate, measure_absence

_INCARNATIONS = itertools.count(1)
_KEEP = 50_000
"""Sends remembered; the oldest are forgotten first (an OrderActor asks within minutes)."""


@dataclass(slots=True)
class _Entry:
    fate: SendFate
    seq: int = 0
    started_mono: float | None = None
    ended_mono: float | None = None


class SendLedger:
    def __init__(self) -> None:
        self.broker = next(_INCARNATIONS)
        self._seq = 0
        self._fence = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, client_id: str, fate: SendFate) -> _Entry:
        entry = self._entries.get(client_id)
        if entry is None:
            entry = self._entries[client_id] = _Entry(fate)
            if len(self._entries) > _KEEP:
                self._entries.popitem(last=False)
        entry.fate = fate
        return entry

    def queued(self, client_id: str) -> None:
        entry = self._entries.get(client_id)
        if entry is None or entry.fate is not SendFate.STARTED:
            self._entry(client_id, SendFate.QUEUED)

    def started(self, client_id: str | None, now: float) -> int:
        """order_send is about to be called; returns its sequence number."""
        self._seq += 1
        if client_id:
            entry = self._entry(client_id, SendFate.STARTED)
            entry.seq = self._seq
            entry.started_mono = now
            entry.ended_mono = None
        return self._seq

    def ended(self, client_id: str | None, seq: int, now: float, *, answered: bool,
              definite: bool) -> None:  # fmt: skip
        """order_send returned (`answered`: the terminal said something) or raised."""
        if definite:
            self._fence = max(self._fence, seq)
        if client_id:
            entry = self._entry(client_id, SendFate.ANSWERED if answered else SendFate.CUT)
            entry.ended_mono = now

    def not_started(self, client_id: str) -> None:
        """Answered without an order_send (skipped, dropped, refused before the call)."""
        entry = self._entries.get(client_id)
        if entry is None or entry.fate in (SendFate.QUEUED, SendFate.NOT_STARTED):
            self._entry(client_id, SendFate.NOT_STARTED)

    def withdrawn(self, client_id: str) -> None:
        """`started` was recorded, but the call was refused before reaching the terminal."""
        self._entry(client_id, SendFate.NOT_STARTED)

    def trace(self, client_id: str) -> SendTrace:
        entry = self._entries.get(client_id)
        if entry is None:
            return SendTrace(SendFate.UNKNOWN, self.broker, self._fence, seq=self._seq)
        return SendTrace(
            entry.fate, self.broker, self._fence, entry.seq, entry.started_mono, entry.ended_mono
        )


@dataclass(slots=True)
class AbsenceClock:
    """Per execution under reconciliation: how long its order has had to appear, and
    whether a later send fenced it, from the BrokerActor's `SendTrace`.

    Measured from when order_send actually started. A send this BrokerActor never saw
    (UNKNOWN: it was replaced, or the engine restarted) is measured from the first lookup
    that met it, and fenced by a send that started after that lookup.
    """

    base: AbsenceBase | None = None
    """(BrokerActor incarnation, its last send number, monotonic time) at that first lookup."""

    def measure(
        self, trace: SendTrace, now: float, *, sender_gone: bool = False
    ) -> tuple[float, bool]:
        """(seconds waited, fenced). `sender_gone`: the process that sent it has died, so
        nothing of it is still on its way from this engine."""
        waited, fenced, self.base = measure_absence(trace, now, self.base, sender_gone=sender_gone)
        return waited, fenced
