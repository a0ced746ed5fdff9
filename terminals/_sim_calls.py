"""Call records of the simulated terminal, and detection of concurrent calls.

The real MetaTrader5 module is one process-global IPC connection and is not safe to call
from two threads at once, so two calls whose [start, end] intervals overlap are a
serialization bug in the caller. The recorder takes each call's start time *before* the
terminal's state lock, under a lock of its own: a concurrent call is then seen as
overlapping instead of being serialized away by the simulator's own locking.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished call to the terminal's MT5 API.

    Attributes:
        seq: Order in which the calls started (0, 1, ...).
        name: The MT5 function name, e.g. ``"order_send"``.
        args: Positional arguments; a request dict is copied.
        kwargs: Keyword arguments, copied.
        thread_id: ``threading.get_ident()`` of the caller.
        start: ``time.monotonic()`` when the call was entered.
        end: ``time.monotonic()`` when it returned.
        result: A short summary, e.g. ``"OrderSendResult(retcode=10009)"`` or
            ``"None (-2, 'Invalid \"comment\" argument')"``.
        concurrent: Another call was in flight when this one started.
    """

    seq: int
    name: str
    args: tuple[object, ...]
    kwargs: dict[str, object] = field(hash=False)
    thread_id: int
    start: float
    end: float
    result: str
    concurrent: bool

    @property
    def duration(self) -> float:
        return self.end - self.start

    def overlaps(self, other: CallRecord) -> bool:
        """True when the two calls were in flight at the same moment."""
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, object]:
        """Plain values only, for logs and for crossing the rpyc bridge."""
        return {
            "seq": self.seq,
            "name": self.name,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "thread_id": self.thread_id,
            "start": self.start,
            "end": self.end,
            "result": self.result,
            "concurrent": self.concurrent,
        }


@dataclass(frozen=True, slots=True)
class CallTicket:
    """What ``CallRecorder.begin`` hands back to ``CallRecorder.end``."""

    seq: int
    start: float
    concurrent: bool


class CallRecorder:
    """Thread-safe log of calls and of the requests that reached ``order_send``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._seq = 0
        self._records: list[CallRecord] = []
        self._requests: list[dict[str, Any]] = []

    def begin(self) -> CallTicket:
        with self._lock:
            ticket = CallTicket(self._seq, time.monotonic(), self._in_flight > 0)
            self._seq += 1
            self._in_flight += 1
            return ticket

    def end(
        self,
        ticket: CallTicket,
        name: str,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        result: str,
    ) -> None:
        with self._lock:
            self._in_flight -= 1
            self._records.append(
                CallRecord(
                    seq=ticket.seq,
                    name=name,
                    args=args,
                    kwargs=kwargs,
                    thread_id=threading.get_ident(),
                    start=ticket.start,
                    end=time.monotonic(),
                    result=result,
                    concurrent=ticket.concurrent,
                )
            )

    def add_request(self, request: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(dict(request))

    def records(self) -> tuple[CallRecord, ...]:
        with self._lock:
            return tuple(sorted(self._records, key=lambda r: r.seq))

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def overlapping(self) -> list[tuple[CallRecord, CallRecord]]:
        """Every pair of finished calls whose intervals overlap, earlier start first."""
        ordered = sorted(self.records(), key=lambda r: (r.start, r.seq))
        pairs: list[tuple[CallRecord, CallRecord]] = []
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                # Sorted by start: once one starts after `first` ended, all later ones do.
                if second.start >= first.end:
                    break
                pairs.append((first, second))
        return pairs

    def reset(self) -> None:
        """Forget finished calls and sent requests; calls in flight still count as such."""
        with self._lock:
            self._records.clear()
            self._requests.clear()
