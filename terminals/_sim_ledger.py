"""The simulated account: balance, orders, deals and positions, hedging or netting.

Tickets come from separate counters for orders and deals, in different ranges, so a
caller that confuses a deal ticket with an order ticket finds nothing instead of the
wrong thing. Times are broker-server milliseconds, as the terminal stamps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from terminals import constants as c
from terminals._sim_market import Market, SymbolState
from terminals.types import AccountInfo, TradeDeal, TradeOrder, TradePosition

FIRST_ORDER_TICKET = 50_000_001
FIRST_DEAL_TICKET = 30_000_001
OPEN_STATES = frozenset({c.ORDER_STATE_STARTED, c.ORDER_STATE_PLACED, c.ORDER_STATE_REQUEST_ADD})

# Account fields the terminal computes from positions; set_account refuses them.
DERIVED_ACCOUNT_FIELDS = frozenset({"profit", "equity", "margin", "margin_free", "margin_level"})


def _vol(x: float) -> float:
    # Lots are decimal quantities; keep float noise out of sums and differences.
    return round(x, 8)


@dataclass(slots=True)
class SimOrder:
    ticket: int
    symbol: str
    type: int
    type_filling: int
    type_time: int
    state: int
    magic: int
    volume_initial: float
    price_open: float
    sl: float
    tp: float
    comment: str
    setup_msc: int
    request_position: int = 0
    position_id: int = 0
    volume_current: float = 0.0
    price_current: float = 0.0
    done_msc: int = 0

    def as_tuple(self) -> TradeOrder:
        return TradeOrder(
            ticket=self.ticket,
            time_setup=self.setup_msc // 1000,
            time_setup_msc=self.setup_msc,
            time_done=self.done_msc // 1000,
            time_done_msc=self.done_msc,
            time_expiration=0,
            type=self.type,
            type_time=self.type_time,
            type_filling=self.type_filling,
            state=self.state,
            magic=self.magic,
            position_id=self.position_id,
            position_by_id=0,
            reason=c.ORDER_REASON_EXPERT,
            volume_initial=self.volume_initial,
            volume_current=self.volume_current,
            price_open=self.price_open,
            sl=self.sl,
            tp=self.tp,
            price_current=self.price_current,
            price_stoplimit=0.0,
            symbol=self.symbol,
            comment=self.comment,
            external_id="",
        )


@dataclass(slots=True)
class SimPosition:
    ticket: int
    identifier: int
    symbol: str
    type: int
    volume: float
    price_open: float
    time_msc: int
    update_msc: int
    magic: int
    comment: str
    sl: float = 0.0
    tp: float = 0.0


@dataclass(frozen=True, slots=True)
class NetEffect:
    """What a fill does to the position it meets (``None`` fields: no position after)."""

    entry: int
    closed_volume: float
    new_type: int | None
    new_volume: float
    new_price: float


def net_effect(pos: SimPosition | None, order_type: int, volume: float, price: float) -> NetEffect:
    """Open, add to, reduce, close or reverse ``pos`` with a fill of ``volume`` at ``price``."""
    if pos is None:
        return NetEffect(c.DEAL_ENTRY_IN, 0.0, order_type, volume, price)
    if pos.type == order_type:
        total = _vol(pos.volume + volume)
        # Netting averages the open price of an increased position.
        vwap = (pos.price_open * pos.volume + price * volume) / total
        return NetEffect(c.DEAL_ENTRY_IN, 0.0, pos.type, total, vwap)
    if volume < pos.volume:
        return NetEffect(
            c.DEAL_ENTRY_OUT, volume, pos.type, _vol(pos.volume - volume), pos.price_open
        )
    if volume == pos.volume:
        return NetEffect(c.DEAL_ENTRY_OUT, volume, None, 0.0, 0.0)
    return NetEffect(c.DEAL_ENTRY_INOUT, pos.volume, order_type, _vol(volume - pos.volume), price)


@dataclass
class Ledger:
    """Account state. Not thread-safe by itself: the terminal's state lock guards it."""

    market: Market
    account: dict[str, object]
    orders: dict[int, SimOrder] = field(default_factory=dict)
    deals: list[TradeDeal] = field(default_factory=list)
    positions: dict[int, SimPosition] = field(default_factory=dict)
    next_order: int = FIRST_ORDER_TICKET
    next_deal: int = FIRST_DEAL_TICKET
    hedge_prohibited: bool = False
    """A server rule with no AccountInfo field: no position opposite to an open one (10046)."""

    # -- account ------------------------------------------------------------------------

    @property
    def leverage(self) -> int:
        value = self.account["leverage"]
        assert isinstance(value, int)
        return value

    @property
    def netting(self) -> bool:
        return self.account["margin_mode"] == c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING

    @property
    def balance(self) -> float:
        value = self.account["balance"]
        assert isinstance(value, int | float)
        return float(value)

    def position_margin(self, pos: SimPosition) -> float:
        sym = self._symbol(pos.symbol)
        return self.market.margin(sym, pos.volume, pos.price_open, self.leverage)

    def total_margin(self) -> float:
        return round(sum((self.position_margin(p) for p in self.positions.values()), 0.0), 2)

    def floating_profit(self) -> float:
        return round(sum((self.position_profit(p) for p in self.positions.values()), 0.0), 2)

    def position_profit(self, pos: SimPosition) -> float:
        sym = self._symbol(pos.symbol)
        close = self.market.close_price(sym, pos.type)
        return self.market.profit(sym, pos.type, pos.volume, pos.price_open, close)

    def equity(self) -> float:
        credit = self.account["credit"]
        assert isinstance(credit, int | float)
        return round(self.balance + float(credit) + self.floating_profit(), 2)

    def account_info(self) -> AccountInfo:
        margin = self.total_margin()
        equity = self.equity()
        values = {
            **self.account,
            "profit": self.floating_profit(),
            "equity": equity,
            "margin": margin,
            "margin_free": round(equity - margin, 2),
            "margin_level": round(equity / margin * 100, 2) if margin else 0.0,
        }
        return AccountInfo(**values)  # type: ignore[arg-type]

    # -- positions ----------------------------------------------------------------------

    def position_for(self, symbol: str, request_position: int) -> SimPosition | None:
        """The position an order meets: the named one, or in netting the symbol's one."""
        if request_position:
            # Hedging tickets equal identifiers; after a netting reversal only the ticket moved.
            for pos in self.positions.values():
                if request_position in (pos.identifier, pos.ticket):
                    return pos
            return None
        if self.netting:
            for pos in self.positions.values():
                if pos.symbol == symbol:
                    return pos
        return None

    def margin_after(self, pos: SimPosition | None, effect: NetEffect, sym: SymbolState) -> float:
        """Total account margin once a fill with ``effect`` has been applied."""
        total = self.total_margin()
        if pos is not None:
            total -= self.position_margin(pos)
        if effect.new_type is not None:
            total += self.market.margin(sym, effect.new_volume, effect.new_price, self.leverage)
        return round(total, 2)

    # -- orders and fills ---------------------------------------------------------------

    def new_order(self, **fields: object) -> SimOrder:
        order = SimOrder(ticket=self.next_order, **fields)  # type: ignore[arg-type]
        self.next_order += 1
        self.orders[order.ticket] = order
        return order

    def fill(self, order: SimOrder, volume: float, price: float, now_msc: int) -> TradeDeal:
        """Execute ``volume`` of ``order`` at ``price``: one deal, and the position changes."""
        sym = self._symbol(order.symbol)
        pos = self.position_for(order.symbol, order.request_position)
        effect = net_effect(pos, order.type, volume, price)
        profit = 0.0
        if pos is not None and effect.closed_volume:
            profit = self.market.profit(sym, pos.type, effect.closed_volume, pos.price_open, price)
            self.account["balance"] = round(self.balance + profit, 2)
        identifier = self._apply(pos, effect, order, now_msc)
        deal = TradeDeal(
            ticket=self.next_deal,
            order=order.ticket,
            time=now_msc // 1000,
            time_msc=now_msc,
            type=c.DEAL_TYPE_BUY if order.type == c.ORDER_TYPE_BUY else c.DEAL_TYPE_SELL,
            entry=effect.entry,
            magic=order.magic,
            position_id=identifier,
            reason=c.DEAL_REASON_EXPERT,
            volume=volume,
            price=price,
            commission=0.0,
            swap=0.0,
            profit=profit,
            fee=0.0,
            symbol=order.symbol,
            comment=order.comment,
            external_id="",
        )
        self.next_deal += 1
        self.deals.append(deal)
        filled = _vol(order.volume_initial - order.volume_current + volume)
        order.volume_current = _vol(order.volume_initial - filled)
        order.position_id = identifier
        order.price_current = price
        order.done_msc = now_msc
        order.state = c.ORDER_STATE_FILLED if not order.volume_current else c.ORDER_STATE_PARTIAL
        return deal

    def _apply(
        self, pos: SimPosition | None, effect: NetEffect, order: SimOrder, now_msc: int
    ) -> int:
        """Change the positions; return the position identifier the deal belongs to."""
        if pos is None:
            assert effect.new_type is not None
            self.positions[order.ticket] = SimPosition(
                ticket=order.ticket,
                identifier=order.ticket,
                symbol=order.symbol,
                type=effect.new_type,
                volume=effect.new_volume,
                price_open=effect.new_price,
                time_msc=now_msc,
                update_msc=now_msc,
                magic=order.magic,
                comment=order.comment,
                sl=order.sl,
                tp=order.tp,
            )
            return order.ticket
        if effect.new_type is None:
            del self.positions[pos.identifier]
            return pos.identifier
        if effect.entry == c.DEAL_ENTRY_INOUT:
            # A netting reversal keeps the identifier; the ticket becomes the new order's.
            pos.ticket = order.ticket
        if effect.entry == c.DEAL_ENTRY_INOUT:
            # The reversed position is the new order's: its stops, or none.
            pos.sl, pos.tp = order.sl, order.tp
        elif effect.entry == c.DEAL_ENTRY_IN and (order.sl or order.tp):
            # Netting: a deal that adds to the position with stops moves the position's stops.
            pos.sl, pos.tp = order.sl, order.tp
        pos.type = effect.new_type
        pos.volume = effect.new_volume
        pos.price_open = effect.new_price
        pos.update_msc = now_msc
        return pos.identifier

    def _symbol(self, name: str) -> SymbolState:
        sym = self.market.get(name)
        assert sym is not None, name
        return sym

    # -- views --------------------------------------------------------------------------

    def open_orders(self) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.state in OPEN_STATES]

    def position_tuple(self, pos: SimPosition) -> TradePosition:
        sym = self._symbol(pos.symbol)
        return TradePosition(
            ticket=pos.ticket,
            time=pos.time_msc // 1000,
            time_msc=pos.time_msc,
            time_update=pos.update_msc // 1000,
            time_update_msc=pos.update_msc,
            type=pos.type,
            magic=pos.magic,
            identifier=pos.identifier,
            reason=c.POSITION_REASON_EXPERT,
            volume=pos.volume,
            price_open=pos.price_open,
            sl=pos.sl,
            tp=pos.tp,
            price_current=self.market.close_price(sym, pos.type),
            swap=0.0,
            profit=self.position_profit(pos),
            symbol=pos.symbol,
            comment=pos.comment,
            external_id="",
        )
