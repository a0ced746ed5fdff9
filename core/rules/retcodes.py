"""What an order_send outcome means: success, safe to retry, ambiguous, or final.

Values are the MetaTrader5 module's, meanings the MQL5 docs' (mt5-api.md §1, §2). The
classes decide whether the engine may send again; getting AMBIGUOUS wrong is how a
timeout becomes a doubled position.
"""

from __future__ import annotations

from typing import Final

from core.enums import RetcodeClass

TRADE_RETCODE_REQUOTE: Final = 10004
TRADE_RETCODE_REJECT: Final = 10006
TRADE_RETCODE_CANCEL: Final = 10007
TRADE_RETCODE_PLACED: Final = 10008
TRADE_RETCODE_DONE: Final = 10009
TRADE_RETCODE_DONE_PARTIAL: Final = 10010
TRADE_RETCODE_ERROR: Final = 10011
TRADE_RETCODE_TIMEOUT: Final = 10012
TRADE_RETCODE_INVALID: Final = 10013
TRADE_RETCODE_INVALID_VOLUME: Final = 10014
TRADE_RETCODE_INVALID_PRICE: Final = 10015
TRADE_RETCODE_INVALID_STOPS: Final = 10016
TRADE_RETCODE_TRADE_DISABLED: Final = 10017
TRADE_RETCODE_MARKET_CLOSED: Final = 10018
TRADE_RETCODE_NO_MONEY: Final = 10019
TRADE_RETCODE_PRICE_CHANGED: Final = 10020
TRADE_RETCODE_PRICE_OFF: Final = 10021
TRADE_RETCODE_INVALID_EXPIRATION: Final = 10022
TRADE_RETCODE_ORDER_CHANGED: Final = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS: Final = 10024
TRADE_RETCODE_NO_CHANGES: Final = 10025
TRADE_RETCODE_SERVER_DISABLES_AT: Final = 10026
TRADE_RETCODE_CLIENT_DISABLES_AT: Final = 10027
TRADE_RETCODE_LOCKED: Final = 10028
TRADE_RETCODE_FROZEN: Final = 10029
TRADE_RETCODE_INVALID_FILL: Final = 10030
TRADE_RETCODE_CONNECTION: Final = 10031
TRADE_RETCODE_ONLY_REAL: Final = 10032
TRADE_RETCODE_LIMIT_ORDERS: Final = 10033
TRADE_RETCODE_LIMIT_VOLUME: Final = 10034
TRADE_RETCODE_INVALID_ORDER: Final = 10035
TRADE_RETCODE_POSITION_CLOSED: Final = 10036
TRADE_RETCODE_INVALID_CLOSE_VOLUME: Final = 10038
TRADE_RETCODE_CLOSE_ORDER_EXIST: Final = 10039
TRADE_RETCODE_LIMIT_POSITIONS: Final = 10040
TRADE_RETCODE_REJECT_CANCEL: Final = 10041
TRADE_RETCODE_LONG_ONLY: Final = 10042
TRADE_RETCODE_SHORT_ONLY: Final = 10043
TRADE_RETCODE_CLOSE_ONLY: Final = 10044
TRADE_RETCODE_FIFO_CLOSE: Final = 10045
TRADE_RETCODE_HEDGE_PROHIBITED: Final = 10046  # MQL5 docs; absent from MetaTrader5 5.0.6231

# Built from the constants above, so the names cannot drift from the values.
RETCODE_NAMES: Final[dict[int, str]] = {
    value: name.removeprefix("TRADE_RETCODE_")
    for name, value in dict(globals()).items()
    if name.startswith("TRADE_RETCODE_")
}

_SUCCESS: Final = frozenset({TRADE_RETCODE_DONE, TRADE_RETCODE_PLACED, TRADE_RETCODE_DONE_PARTIAL})
# Clean rejections: the server executed nothing, so sending again (with a fresh price, after a
# back-off, or with the next filling mode for INVALID_FILL) cannot duplicate the trade.
_RETRY: Final = frozenset(
    {
        TRADE_RETCODE_REQUOTE,
        TRADE_RETCODE_PRICE_CHANGED,
        TRADE_RETCODE_PRICE_OFF,
        TRADE_RETCODE_TOO_MANY_REQUESTS,
        TRADE_RETCODE_INVALID_FILL,
    }
)
# The request may have executed: reconcile, never resend. LOCKED ("locked for processing")
# and ORDER_CHANGED are a judgment call (so marked in the reference): neither says that
# nothing happened.
_AMBIGUOUS: Final = frozenset(
    {
        TRADE_RETCODE_TIMEOUT,
        TRADE_RETCODE_CONNECTION,
        TRADE_RETCODE_ERROR,
        TRADE_RETCODE_LOCKED,
        TRADE_RETCODE_ORDER_CHANGED,
    }
)


def retcode_name(retcode: int | None) -> str:
    """`DONE` for 10009, `NONE` for no result, `UNKNOWN_<n>` for a code this version lacks."""
    if retcode is None:
        return "NONE"
    return RETCODE_NAMES.get(retcode, f"UNKNOWN_{retcode}")


def classify_retcode(retcode: int | None) -> RetcodeClass:
    """The class of an order_send retcode (DESIGN.md stage 4).

    None (no result at all) is AMBIGUOUS; with `last_error()` at hand, `classify_last_error`
    can prove some Nones harmless. Codes this version does not know (10025 NO_CHANGES and
    10046 HEDGE_PROHIBITED included) are FINAL: the server answered, and not with a success.
    """
    if retcode is None or retcode in _AMBIGUOUS:
        return RetcodeClass.AMBIGUOUS
    if retcode in _SUCCESS:
        return RetcodeClass.SUCCESS
    if retcode in _RETRY:
        return RetcodeClass.RETRY
    return RetcodeClass.FINAL


# last_error() codes, for an order_send that returned None.
RES_S_OK: Final = 1
RES_E_FAIL: Final = -1
RES_E_INVALID_PARAMS: Final = -2
RES_E_NO_MEMORY: Final = -3
RES_E_NOT_FOUND: Final = -4
RES_E_INVALID_VERSION: Final = -5
RES_E_AUTH_FAILED: Final = -6
RES_E_UNSUPPORTED: Final = -7
RES_E_AUTO_TRADING_DISABLED: Final = -8
RES_E_INTERNAL_FAIL: Final = -10000
RES_E_INTERNAL_FAIL_SEND: Final = -10001
RES_E_INTERNAL_FAIL_RECEIVE: Final = -10002
RES_E_INTERNAL_FAIL_INIT: Final = -10003
RES_E_INTERNAL_FAIL_CONNECT: Final = -10004
RES_E_INTERNAL_FAIL_TIMEOUT: Final = -10005

LAST_ERROR_NAMES: Final[dict[int, str]] = {
    value: name for name, value in dict(globals()).items() if name.startswith(("RES_S_", "RES_E_"))
}

# Refused by the module or the terminal before anything left for the trade server (a bad
# argument such as an over-long comment, an unknown symbol, not logged in, Python API trading
# disabled), so nothing can have executed.
_LAST_ERROR_FINAL: Final = frozenset(
    {
        RES_E_INVALID_PARAMS,
        RES_E_NOT_FOUND,
        RES_E_INVALID_VERSION,
        RES_E_AUTH_FAILED,
        RES_E_UNSUPPORTED,
        RES_E_AUTO_TRADING_DISABLED,
    }
)


def classify_last_error(code: int) -> RetcodeClass:
    """The class of an order_send that returned None, from `last_error()[0]`.

    FINAL only where the error proves the request never left. Everything else is AMBIGUOUS,
    never RETRY: -10001/-10002/-10005 (send, receive, timeout) as the reference says, and
    also -10003 and -10004 ('No IPC connection'), which are reported mid-session under
    concurrent calls, where the pipe can break during the call, so "it never left" cannot be
    proven. -1 (call failed), -3 (no memory), -10000 and unknown codes likewise. A reconcile
    that finds nothing costs seconds; a blind resend can double a position.
    """
    if code in _LAST_ERROR_FINAL:
        return RetcodeClass.FINAL
    return RetcodeClass.AMBIGUOUS
