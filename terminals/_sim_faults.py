"""Injected faults of the simulated terminal: what they are and the queue that holds them.

A fault models what the trade server or the IPC link does to one ``order_send`` of a
market order (TRADE_ACTION_DEAL). Faults are queued first in, first out; the first one
whose ``symbol`` matches (or that has none) is used, and it stays queued until it has
been used ``times`` times. A request that validation rejects does not use a fault, so a
fault always hits a request that would otherwise have executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminals import constants as c

#: Faults that reject the request: retcode of the result; nothing is executed.
REJECT_RETCODES: dict[str, int] = {
    "requote": c.TRADE_RETCODE_REQUOTE,
    "price_changed": c.TRADE_RETCODE_PRICE_CHANGED,
    "price_off": c.TRADE_RETCODE_PRICE_OFF,
    "reject": c.TRADE_RETCODE_REJECT,
    "too_many_requests": c.TRADE_RETCODE_TOO_MANY_REQUESTS,
    "market_closed": c.TRADE_RETCODE_MARKET_CLOSED,
    "invalid_fill": c.TRADE_RETCODE_INVALID_FILL,
    "no_money": c.TRADE_RETCODE_NO_MONEY,
    "connection": c.TRADE_RETCODE_CONNECTION,
    "timeout_not_executed": c.TRADE_RETCODE_TIMEOUT,
}

#: Rejections that carry fresh bid/ask in the result, as a requote does.
WITH_FRESH_PRICES: frozenset[str] = frozenset({"requote", "price_changed", "price_off"})

#: Every kind ``inject`` accepts.
FAULT_KINDS: frozenset[str] = frozenset(REJECT_RETCODES) | frozenset(
    {
        "timeout_executed",
        "none_executed",
        "none_not_executed",
        "partial",
        "placed",
        "done_no_deal",
    }
)

# Parameters each kind takes, with their defaults.
_PARAM_DEFAULTS: dict[str, dict[str, float]] = {
    "partial": {"ratio": 0.5},
    "placed": {"fill_after_polls": 3},
    "done_no_deal": {"fill_after_polls": 0},
}


@dataclass(slots=True)
class Fault:
    """One queued fault. ``remaining`` counts down to 0, then the fault is dropped."""

    kind: str
    remaining: int
    symbol: str | None
    ratio: float = 0.5
    fill_after_polls: int = 0


def make_fault(kind: str, times: int, symbol: str | None, params: dict[str, object]) -> Fault:
    """Validate ``inject``'s arguments; raise ``ValueError`` naming the bad one."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be an int >= 1, not {times!r}")
    if symbol is not None and not isinstance(symbol, str):
        raise ValueError(f"symbol must be a str or None, not {symbol!r}")
    allowed = _PARAM_DEFAULTS.get(kind, {})
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
    fault = Fault(kind=kind, remaining=times, symbol=symbol)
    if kind == "partial":
        ratio = params.get("ratio", allowed["ratio"])
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
            raise ValueError(f"ratio must be a number in (0, 1), not {ratio!r}")
        fault.ratio = float(ratio)
    elif kind in ("placed", "done_no_deal"):
        polls = params.get("fill_after_polls", int(allowed["fill_after_polls"]))
        if isinstance(polls, bool) or not isinstance(polls, int) or polls < -1:
            raise ValueError(f"fill_after_polls must be an int >= -1, not {polls!r}")
        fault.fill_after_polls = polls
    return fault


class FaultQueue:
    """FIFO of faults; not thread-safe on its own (the terminal's state lock guards it)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, symbol: str) -> Fault | None:
        """Use the first fault for ``symbol`` (or for any symbol) once, if there is one."""
        for fault in self._faults:
            if fault.symbol is None or fault.symbol == symbol:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[dict[str, object]]:
        """The queue as plain values: kind, remaining, symbol and the kind's parameters."""
        out: list[dict[str, object]] = []
        for f in self._faults:
            entry: dict[str, object] = {
                "kind": f.kind,
                "remaining": f.remaining,
                "symbol": f.symbol,
            }
            if f.kind == "partial":
                entry["ratio"] = f.ratio
            if f.kind in ("placed", "done_no_deal"):
                entry["fill_after_polls"] = f.fill_after_polls
            out.append(entry)
        return out
