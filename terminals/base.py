"""The terminal seam: what the engine may call on a MetaTrader 5 terminal.

A terminal is any object with the ``MetaTrader5`` module's functions and constants: the
real module (``loader.load_metatrader5``), ``simulated.SimulatedTerminal``, or the rpyc
bridge. The engine talks only to this Protocol, so the three are interchangeable.

The calling conventions are the real module's, and they are easy to get wrong:

- Failures of the *call* (bad arguments, IPC) return ``None`` (``False`` for the bool
  functions); the reason is in ``last_error()`` as ``(code, description)``.
- ``symbol=``, ``ticket=``, ``position=`` and ``group=`` filters are keyword-only; only
  ``date_from, date_to`` of the history functions are positional.
- ``history_deals_get(ticket=T)`` filters by the ORDER ticket T.
- Times in results are broker-server times, not UTC.
- ``order_check`` succeeds with ``retcode == 0``; ``order_send`` with 10009/10008/10010.

The constants below are the ones the engine reads from the terminal object; their
defaults are the real values so that an explicit subclass (the simulator, the bridge)
inherits them. Constants the module does not export (``SYMBOL_FILLING_*``) are not here:
import them from ``terminals.constants``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from terminals import constants as c
from terminals.types import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)

#: ``date_from`` / ``date_to`` of the history functions: a datetime or epoch seconds.
DateArg = datetime | int | float


class Terminal(Protocol):
    """The MetaTrader5 functions and constants the engine uses."""

    TRADE_ACTION_DEAL: int = c.TRADE_ACTION_DEAL
    TRADE_ACTION_PENDING: int = c.TRADE_ACTION_PENDING
    TRADE_ACTION_SLTP: int = c.TRADE_ACTION_SLTP
    TRADE_ACTION_MODIFY: int = c.TRADE_ACTION_MODIFY
    TRADE_ACTION_REMOVE: int = c.TRADE_ACTION_REMOVE
    TRADE_ACTION_CLOSE_BY: int = c.TRADE_ACTION_CLOSE_BY

    ORDER_TYPE_BUY: int = c.ORDER_TYPE_BUY
    ORDER_TYPE_SELL: int = c.ORDER_TYPE_SELL

    ORDER_FILLING_FOK: int = c.ORDER_FILLING_FOK
    ORDER_FILLING_IOC: int = c.ORDER_FILLING_IOC
    ORDER_FILLING_RETURN: int = c.ORDER_FILLING_RETURN
    ORDER_FILLING_BOC: int = c.ORDER_FILLING_BOC

    ORDER_TIME_GTC: int = c.ORDER_TIME_GTC

    ORDER_STATE_STARTED: int = c.ORDER_STATE_STARTED
    ORDER_STATE_PLACED: int = c.ORDER_STATE_PLACED
    ORDER_STATE_CANCELED: int = c.ORDER_STATE_CANCELED
    ORDER_STATE_PARTIAL: int = c.ORDER_STATE_PARTIAL
    ORDER_STATE_FILLED: int = c.ORDER_STATE_FILLED
    ORDER_STATE_REJECTED: int = c.ORDER_STATE_REJECTED
    ORDER_STATE_EXPIRED: int = c.ORDER_STATE_EXPIRED
    ORDER_STATE_REQUEST_ADD: int = c.ORDER_STATE_REQUEST_ADD
    ORDER_STATE_REQUEST_MODIFY: int = c.ORDER_STATE_REQUEST_MODIFY
    ORDER_STATE_REQUEST_CANCEL: int = c.ORDER_STATE_REQUEST_CANCEL

    DEAL_TYPE_BUY: int = c.DEAL_TYPE_BUY
    DEAL_TYPE_SELL: int = c.DEAL_TYPE_SELL
    DEAL_ENTRY_IN: int = c.DEAL_ENTRY_IN
    DEAL_ENTRY_OUT: int = c.DEAL_ENTRY_OUT
    DEAL_ENTRY_INOUT: int = c.DEAL_ENTRY_INOUT
    DEAL_ENTRY_OUT_BY: int = c.DEAL_ENTRY_OUT_BY

    POSITION_TYPE_BUY: int = c.POSITION_TYPE_BUY
    POSITION_TYPE_SELL: int = c.POSITION_TYPE_SELL

    SYMBOL_TRADE_MODE_DISABLED: int = c.SYMBOL_TRADE_MODE_DISABLED
    SYMBOL_TRADE_MODE_LONGONLY: int = c.SYMBOL_TRADE_MODE_LONGONLY
    SYMBOL_TRADE_MODE_SHORTONLY: int = c.SYMBOL_TRADE_MODE_SHORTONLY
    SYMBOL_TRADE_MODE_CLOSEONLY: int = c.SYMBOL_TRADE_MODE_CLOSEONLY
    SYMBOL_TRADE_MODE_FULL: int = c.SYMBOL_TRADE_MODE_FULL
    SYMBOL_TRADE_EXECUTION_REQUEST: int = c.SYMBOL_TRADE_EXECUTION_REQUEST
    SYMBOL_TRADE_EXECUTION_INSTANT: int = c.SYMBOL_TRADE_EXECUTION_INSTANT
    SYMBOL_TRADE_EXECUTION_MARKET: int = c.SYMBOL_TRADE_EXECUTION_MARKET
    SYMBOL_TRADE_EXECUTION_EXCHANGE: int = c.SYMBOL_TRADE_EXECUTION_EXCHANGE

    ACCOUNT_MARGIN_MODE_RETAIL_NETTING: int = c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    ACCOUNT_MARGIN_MODE_EXCHANGE: int = c.ACCOUNT_MARGIN_MODE_EXCHANGE
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING

    TRADE_RETCODE_REQUOTE: int = c.TRADE_RETCODE_REQUOTE
    TRADE_RETCODE_REJECT: int = c.TRADE_RETCODE_REJECT
    TRADE_RETCODE_CANCEL: int = c.TRADE_RETCODE_CANCEL
    TRADE_RETCODE_PLACED: int = c.TRADE_RETCODE_PLACED
    TRADE_RETCODE_DONE: int = c.TRADE_RETCODE_DONE
    TRADE_RETCODE_DONE_PARTIAL: int = c.TRADE_RETCODE_DONE_PARTIAL
    TRADE_RETCODE_ERROR: int = c.TRADE_RETCODE_ERROR
    TRADE_RETCODE_TIMEOUT: int = c.TRADE_RETCODE_TIMEOUT
    TRADE_RETCODE_INVALID: int = c.TRADE_RETCODE_INVALID
    TRADE_RETCODE_INVALID_VOLUME: int = c.TRADE_RETCODE_INVALID_VOLUME
    TRADE_RETCODE_INVALID_PRICE: int = c.TRADE_RETCODE_INVALID_PRICE
    TRADE_RETCODE_INVALID_STOPS: int = c.TRADE_RETCODE_INVALID_STOPS
    TRADE_RETCODE_TRADE_DISABLED: int = c.TRADE_RETCODE_TRADE_DISABLED
    TRADE_RETCODE_MARKET_CLOSED: int = c.TRADE_RETCODE_MARKET_CLOSED
    TRADE_RETCODE_NO_MONEY: int = c.TRADE_RETCODE_NO_MONEY
    TRADE_RETCODE_PRICE_CHANGED: int = c.TRADE_RETCODE_PRICE_CHANGED
    TRADE_RETCODE_PRICE_OFF: int = c.TRADE_RETCODE_PRICE_OFF
    TRADE_RETCODE_INVALID_EXPIRATION: int = c.TRADE_RETCODE_INVALID_EXPIRATION
    TRADE_RETCODE_ORDER_CHANGED: int = c.TRADE_RETCODE_ORDER_CHANGED
    TRADE_RETCODE_TOO_MANY_REQUESTS: int = c.TRADE_RETCODE_TOO_MANY_REQUESTS
    TRADE_RETCODE_NO_CHANGES: int = c.TRADE_RETCODE_NO_CHANGES
    TRADE_RETCODE_SERVER_DISABLES_AT: int = c.TRADE_RETCODE_SERVER_DISABLES_AT
    TRADE_RETCODE_CLIENT_DISABLES_AT: int = c.TRADE_RETCODE_CLIENT_DISABLES_AT
    TRADE_RETCODE_LOCKED: int = c.TRADE_RETCODE_LOCKED
    TRADE_RETCODE_FROZEN: int = c.TRADE_RETCODE_FROZEN
    TRADE_RETCODE_INVALID_FILL: int = c.TRADE_RETCODE_INVALID_FILL
    TRADE_RETCODE_CONNECTION: int = c.TRADE_RETCODE_CONNECTION
    TRADE_RETCODE_ONLY_REAL: int = c.TRADE_RETCODE_ONLY_REAL
    TRADE_RETCODE_LIMIT_ORDERS: int = c.TRADE_RETCODE_LIMIT_ORDERS
    TRADE_RETCODE_LIMIT_VOLUME: int = c.TRADE_RETCODE_LIMIT_VOLUME
    TRADE_RETCODE_INVALID_ORDER: int = c.TRADE_RETCODE_INVALID_ORDER
    TRADE_RETCODE_POSITION_CLOSED: int = c.TRADE_RETCODE_POSITION_CLOSED
    TRADE_RETCODE_INVALID_CLOSE_VOLUME: int = c.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    TRADE_RETCODE_CLOSE_ORDER_EXIST: int = c.TRADE_RETCODE_CLOSE_ORDER_EXIST
    TRADE_RETCODE_LIMIT_POSITIONS: int = c.TRADE_RETCODE_LIMIT_POSITIONS
    TRADE_RETCODE_REJECT_CANCEL: int = c.TRADE_RETCODE_REJECT_CANCEL
    TRADE_RETCODE_LONG_ONLY: int = c.TRADE_RETCODE_LONG_ONLY
    TRADE_RETCODE_SHORT_ONLY: int = c.TRADE_RETCODE_SHORT_ONLY
    TRADE_RETCODE_CLOSE_ONLY: int = c.TRADE_RETCODE_CLOSE_ONLY
    TRADE_RETCODE_FIFO_CLOSE: int = c.TRADE_RETCODE_FIFO_CLOSE

    RES_S_OK: int = c.RES_S_OK
    RES_E_FAIL: int = c.RES_E_FAIL
    RES_E_INVALID_PARAMS: int = c.RES_E_INVALID_PARAMS
    RES_E_NO_MEMORY: int = c.RES_E_NO_MEMORY
    RES_E_NOT_FOUND: int = c.RES_E_NOT_FOUND
    RES_E_INVALID_VERSION: int = c.RES_E_INVALID_VERSION
    RES_E_AUTH_FAILED: int = c.RES_E_AUTH_FAILED
    RES_E_UNSUPPORTED: int = c.RES_E_UNSUPPORTED
    RES_E_AUTO_TRADING_DISABLED: int = c.RES_E_AUTO_TRADING_DISABLED
    RES_E_INTERNAL_FAIL: int = c.RES_E_INTERNAL_FAIL
    RES_E_INTERNAL_FAIL_SEND: int = c.RES_E_INTERNAL_FAIL_SEND
    RES_E_INTERNAL_FAIL_RECEIVE: int = c.RES_E_INTERNAL_FAIL_RECEIVE
    RES_E_INTERNAL_FAIL_INIT: int = c.RES_E_INTERNAL_FAIL_INIT
    RES_E_INTERNAL_FAIL_CONNECT: int = c.RES_E_INTERNAL_FAIL_CONNECT
    RES_E_INTERNAL_FAIL_TIMEOUT: int = c.RES_E_INTERNAL_FAIL_TIMEOUT

    # -- connection ---------------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        """Attach to the terminal; ``False`` plus ``last_error()`` on failure."""
        ...

    def login(
        self,
        login: int,
        *,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
    ) -> bool:
        """Log the terminal in to ``login``."""
        ...

    def shutdown(self) -> None:
        """Detach from the terminal; every later call fails until ``initialize()``."""
        ...

    def last_error(self) -> tuple[int, str]:
        """``(code, description)`` of the last call; ``(1, 'Success')`` after a good one."""
        ...

    def version(self) -> tuple[int, int, str] | None:
        """``(terminal version, build, build date)``."""
        ...

    def terminal_info(self) -> TerminalInfo | None: ...

    def account_info(self) -> AccountInfo | None: ...

    # -- symbols ------------------------------------------------------------------------

    def symbol_info(self, symbol: str, /) -> SymbolInfo | None: ...

    def symbol_info_tick(self, symbol: str, /) -> Tick | None: ...

    def symbol_select(self, symbol: str, enable: bool = True, /) -> bool: ...

    # -- trading ------------------------------------------------------------------------

    def order_check(self, request: dict[str, Any], /) -> OrderCheckResult | None: ...

    def order_send(self, request: dict[str, Any], /) -> OrderSendResult | None: ...

    def order_calc_margin(
        self, action: int, symbol: str, volume: float, price: float, /
    ) -> float | None:
        """Margin for ``volume`` lots at ``price``, in the account currency."""
        ...

    # -- open orders, positions, history --------------------------------------------------

    def orders_get(
        self, *, symbol: str | None = None, ticket: int | None = None, group: str | None = None
    ) -> tuple[TradeOrder, ...] | None: ...

    def positions_get(
        self, *, symbol: str | None = None, ticket: int | None = None, group: str | None = None
    ) -> tuple[TradePosition, ...] | None: ...

    def history_orders_get(
        self,
        date_from: DateArg | None = None,
        date_to: DateArg | None = None,
        /,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeOrder, ...] | None:
        """By range (``date_to`` inclusive, server time), by ``ticket=`` or ``position=``."""
        ...

    def history_deals_get(
        self,
        date_from: DateArg | None = None,
        date_to: DateArg | None = None,
        /,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        """As ``history_orders_get``, but ``ticket=`` is the ORDER ticket of the deals."""
        ...
