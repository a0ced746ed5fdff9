"""Filters of ``orders_get`` / ``positions_get`` and of the two history functions.

The real module's rules: filters are keyword-only (a positional one gives
``(-2, 'Unnamed arguments not allowed')``) except the history functions' ``date_from,
date_to``. For history, ``ticket=`` wins over ``position=``, which wins over a date
range; on deals ``ticket=`` is the ORDER ticket (DEAL_ORDER). Date ranges are broker
server time, inclusive at both ends, at the second resolution MT5 keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from terminals._sim_ledger import SimOrder
from terminals._sim_requests import check_optional, group_matches, invalid, to_epoch
from terminals.types import TradeDeal


def check_filters(
    args: tuple[object, ...], symbol: object, ticket: object, group: object
) -> Callable[[str, int], bool]:
    """Check ``orders_get`` / ``positions_get`` filters; return ``match(symbol, ticket)``."""
    if args:
        raise invalid("Unnamed arguments not allowed")
    check_optional("symbol", symbol, str)
    check_optional("ticket", ticket, int)
    check_optional("group", group, str)

    def match(name: str, number: int) -> bool:
        if ticket is not None and number != ticket:
            return False
        if symbol is not None and name != symbol:
            return False
        return group is None or (isinstance(group, str) and group_matches(name, group))

    return match


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """One history query: by ``ticket``, by ``position``, or by [lo, hi] and ``group``."""

    ticket: int | None = None
    position: int | None = None
    lo: float = 0.0
    hi: float = 0.0
    group: str | None = None

    @classmethod
    def parse(
        cls, args: tuple[object, ...], group: object, ticket: object, position: object
    ) -> HistoryFilter:
        if len(args) > 2:
            raise invalid("Unnamed arguments not allowed")
        check_optional("group", group, str)
        check_optional("ticket", ticket, int)
        check_optional("position", position, int)
        if isinstance(ticket, int):
            return cls(ticket=ticket)
        if isinstance(position, int):
            return cls(position=position)
        if len(args) != 2:
            raise invalid("Invalid number of arguments" if args else "Invalid arguments")
        lo, hi = to_epoch(args[0], 0), to_epoch(args[1], 1)
        return cls(lo=lo, hi=hi, group=group if isinstance(group, str) else None)

    def order(self, order: SimOrder) -> bool:
        if self.ticket is not None:
            return order.ticket == self.ticket
        if self.position is not None:
            return order.position_id == self.position
        return self._in_range(order.setup_msc // 1000, order.symbol)

    def deal(self, deal: TradeDeal) -> bool:
        if self.ticket is not None:
            return deal.order == self.ticket
        if self.position is not None:
            return deal.position_id == self.position
        return self._in_range(deal.time, deal.symbol)

    def _in_range(self, seconds: int, symbol: str) -> bool:
        if not self.lo <= seconds <= self.hi:
            return False
        return self.group is None or group_matches(symbol, self.group)
