"""The simulated account on disk (`simulator serve --state FILE`): a terminal crash drilled
honestly.

A real terminal that crashes and restarts gets its account's history back from the trade
server: orders, deals and positions are the server's, and tickets go on from where they
were. A simulator that forgot them would hand out order 50000001 again to a different order.
With a state file the simulator keeps what the server would: the account (balance and the
rest), orders, deals, positions, the ticket and request-id counters and the late fills still
due. Quotes are not kept: the market is a seeded walk, as a real one moves on meanwhile.

The file is written atomically (a temporary file, flushed and fsynced, then renamed over
the old one) whenever the state changed, under the terminal's state lock and before the
call that changed it returns: whatever a caller was told, a SIGKILL cannot take back.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from terminals._sim_ledger import Ledger, SimOrder, SimPosition
from terminals.types import TradeDeal

FORMAT = 1


def snapshot(ledger: Ledger, request_id: int, late: dict[int, tuple[int, int]]) -> str:
    """The persistent state as canonical JSON text (equal states, equal texts)."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "account": ledger.account,
        "orders": [asdict(order) for order in ledger.orders.values()],
        "deals": [deal._asdict() for deal in ledger.deals],
        "positions": [asdict(position) for position in ledger.positions.values()],
        "next_order": ledger.next_order,
        "next_deal": ledger.next_deal,
        "hedge_prohibited": ledger.hedge_prohibited,
        "request_id": request_id,
        "late": [[ticket, fill_after, polls] for ticket, (fill_after, polls) in late.items()],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def restore(ledger: Ledger, text: str) -> tuple[int, dict[int, tuple[int, int]]]:
    """Put the saved state into `ledger`; returns the request-id counter and late fills."""
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown simulator state format {data.get('format')!r}")
    ledger.account.update(data["account"])
    ledger.orders = {o["ticket"]: SimOrder(**o) for o in data["orders"]}
    ledger.deals = [TradeDeal(**d) for d in data["deals"]]
    ledger.positions = {p["identifier"]: SimPosition(**p) for p in data["positions"]}
    ledger.next_order = int(data["next_order"])
    ledger.next_deal = int(data["next_deal"])
    # Absent in files written before the rule existed: hedging was allowed then.
    ledger.hedge_prohibited = bool(data.get("hedge_prohibited", False))
    late = {int(t): (int(after), int(polls)) for t, after, polls in data["late"]}
    return int(data["request_id"]), late


class StateFile:
    """Writes the state text to `path` when it changed, atomically and durably."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._written: str | None = None

    def read(self) -> str | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        self._written = text
        return text

    def write(self, text: str) -> None:
        if text == self._written:
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        with contextlib.suppress(OSError):  # the rename itself, durable where it can be
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self._written = text


__all__ = ["StateFile", "restore", "snapshot"]
