"""Argument checking of the simulated terminal, with the real module's error strings.

Every failure here is a ``CallError``: the terminal turns it into the real module's
behaviour, ``None`` (or ``False``) from the call plus ``(code, description)`` from
``last_error()``.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import datetime
from typing import Any

from terminals import constants as c
from terminals.types import TradeRequest


class CallError(Exception):
    """A call that fails the way the MetaTrader5 module fails: no result, a last_error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def invalid(message: str) -> CallError:
    return CallError(c.RES_E_INVALID_PARAMS, message)


NO_IPC = (c.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
NOT_FOUND = (c.RES_E_NOT_FOUND, "Terminal: Not found")
CALL_FAILED = (c.RES_E_FAIL, "Terminal: Call failed")

_INT_FIELDS = frozenset({"action", "type", "type_filling", "type_time"})
# Tickets, magic, deviation and expiration are unsigned in the terminal's structure.
_UNSIGNED_FIELDS = frozenset(
    {"magic", "order", "deviation", "expiration", "position", "position_by"}
)
_FLOAT_FIELDS = frozenset({"volume", "price", "stoplimit", "sl", "tp"})
_STR_FIELDS = frozenset({"symbol", "comment"})


def _is_int(value: object) -> bool:
    # bool is an int to the C API as well, so it is accepted like the real module does.
    return isinstance(value, int)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def parse_request(request: object, comment_limit: int) -> TradeRequest:
    """Check a request dict field by field, in TradeRequest order, and echo it.

    Unset fields take the structure's zero values. ``action`` is required, and a market
    order (TRADE_ACTION_DEAL) also needs ``volume``, and ``symbol`` unless it names the
    ``position`` it closes.
    """
    if not isinstance(request, dict):
        raise invalid("Invalid arguments")
    values: dict[str, Any] = {}
    for name in TradeRequest._fields:
        if name not in request:
            continue
        value = request[name]
        if name in _STR_FIELDS:
            ok = isinstance(value, str)
            if ok and name == "comment":
                ok = len(value) <= comment_limit
        elif name in _FLOAT_FIELDS:
            ok = _is_number(value)
            value = float(value) if ok else value
        elif name in _UNSIGNED_FIELDS:
            ok = _is_int(value) and value >= 0
        else:
            assert name in _INT_FIELDS
            ok = _is_int(value)
        if not ok:
            raise invalid(f'Invalid "{name}" argument')
        values[name] = int(value) if name in _INT_FIELDS | _UNSIGNED_FIELDS else value
    if "action" not in values:
        raise invalid('Invalid "action" argument')
    if values["action"] == c.TRADE_ACTION_DEAL:
        if "symbol" not in values and not values.get("position"):
            raise invalid('Invalid "symbol" argument')
        if "volume" not in values:
            raise invalid('Invalid "volume" argument')
    return TradeRequest(**values)


_ORDINALS = ("1st", "2nd", "3rd")


def to_epoch(value: object, position: int) -> float:
    """A history date argument as epoch seconds; naive datetimes are read as UTC.

    The real module converts datetimes with the machine's local zone; reading naive
    values as UTC keeps the simulator independent of the machine it runs on.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.timegm(value.timetuple()) + value.microsecond / 1e6
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise invalid(f"Invalid {_ORDINALS[position]} unnamed argument")


def check_optional(name: str, value: object, kind: type) -> None:
    """A keyword filter is either absent (None) or of its type."""
    if value is None:
        return
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise invalid(f'Invalid "{name}" argument')
    if kind is str and not isinstance(value, str):
        raise invalid(f'Invalid "{name}" argument')


def group_matches(name: str, group: str) -> bool:
    """MT5 group masks: comma-separated, ``*`` wildcards, ``!`` excludes; applied in order.

    ``"*,!EUR*"`` is everything but names starting with EUR; ``"EUR*"`` only those.
    """
    selected = False
    for raw in group.split(","):
        mask = raw.strip()
        if not mask:
            continue
        exclude = mask.startswith("!")
        pattern = mask[1:] if exclude else mask
        regex = "".join(".*" if ch == "*" else re.escape(ch) for ch in pattern)
        if re.fullmatch(regex, name, flags=re.IGNORECASE):
            selected = not exclude
    return selected
