"""Pure trading rules: volumes, pips, slippage, spread, margin, filling modes, retcodes.

No I/O and no state. A rule that refuses a trade returns a `Denied` value, which the caller
turns into a REJECTED execution; a `ValueError` means the caller passed something no broker
would (a bug or a broken configuration), not that a trade was refused.

Import from here (`from core.rules import units_to_lots`); the submodules group the rules by
subject. The MetaTrader5 module is deliberately not imported: the few MT5 constants the rules
need are defined with their MetaQuotes names, values as in MetaTrader5 5.0.6231.
"""

from core.rules._common import Denied
from core.rules.filling import (
    ORDER_FILLING_BOC,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    SYMBOL_FILLING_BOC,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_TRADE_EXECUTION_EXCHANGE,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_MARKET,
    SYMBOL_TRADE_EXECUTION_REQUEST,
    choose_filling,
    filling_modes,
)
from core.rules.margin import margin_check, required_margin
from core.rules.positions import (
    LegPlan,
    OpenPosition,
    PositionPlan,
    owned_positions,
    plan_position_effect,
)
from core.rules.prices import deviation_points, pip_size, slippage_pips, spread_pips, vwap
from core.rules.reconcile import SendFate, absence_proven, measure_absence, reconcile_backoff
from core.rules.retcodes import (
    LAST_ERROR_NAMES,
    RETCODE_NAMES,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_TOO_MANY_REQUESTS,
    classify_last_error,
    classify_retcode,
    retcode_name,
)
from core.rules.stops import stops_check
from core.rules.submission import (
    CLIENT_ID_MAX_LENGTH,
    CLIENT_ID_PREFIX_RE,
    CLIENT_ID_RE,
    backoff_seconds,
    make_client_id,
)
from core.rules.volume import VOLUME_STEP_TOLERANCE, lots_to_units, units_to_lots

__all__ = [
    "CLIENT_ID_MAX_LENGTH",
    "CLIENT_ID_PREFIX_RE",
    "CLIENT_ID_RE",
    "LAST_ERROR_NAMES",
    "ORDER_FILLING_BOC",
    "ORDER_FILLING_FOK",
    "ORDER_FILLING_IOC",
    "ORDER_FILLING_RETURN",
    "RETCODE_NAMES",
    "SYMBOL_FILLING_BOC",
    "SYMBOL_FILLING_FOK",
    "SYMBOL_FILLING_IOC",
    "SYMBOL_TRADE_EXECUTION_EXCHANGE",
    "SYMBOL_TRADE_EXECUTION_INSTANT",
    "SYMBOL_TRADE_EXECUTION_MARKET",
    "SYMBOL_TRADE_EXECUTION_REQUEST",
    "TRADE_RETCODE_DONE",
    "TRADE_RETCODE_DONE_PARTIAL",
    "TRADE_RETCODE_INVALID_FILL",
    "TRADE_RETCODE_PLACED",
    "TRADE_RETCODE_TOO_MANY_REQUESTS",
    "VOLUME_STEP_TOLERANCE",
    "Denied",
    "LegPlan",
    "OpenPosition",
    "PositionPlan",
    "SendFate",
    "absence_proven",
    "backoff_seconds",
    "choose_filling",
    "classify_last_error",
    "classify_retcode",
    "deviation_points",
    "filling_modes",
    "lots_to_units",
    "make_client_id",
    "margin_check",
    "measure_absence",
    "owned_positions",
    "pip_size",
    "plan_position_effect",
    "reconcile_backoff",
    "required_margin",
    "retcode_name",
    "slippage_pips",
    "spread_pips",
    "stops_check",
    "units_to_lots",
    "vwap",
]
