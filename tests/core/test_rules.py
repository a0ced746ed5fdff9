"""Unit tests of core.rules: every rule, its edges, and float noise."""

from __future__ import annotations

import math
import re
import string

import pytest

from core.enums import Direction, RejectionReason, RetcodeClass
from core.records import SendTrace
from core.rules import (
    CLIENT_ID_MAX_LENGTH,
    CLIENT_ID_RE,
    LAST_ERROR_NAMES,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    RETCODE_NAMES,
    SYMBOL_FILLING_BOC,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_TRADE_EXECUTION_EXCHANGE,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_MARKET,
    SYMBOL_TRADE_EXECUTION_REQUEST,
    Denied,
    SendFate,
    absence_proven,
    backoff_seconds,
    choose_filling,
    classify_last_error,
    classify_retcode,
    deviation_points,
    filling_modes,
    lots_to_units,
    make_client_id,
    margin_check,
    measure_absence,
    pip_size,
    reconcile_backoff,
    required_margin,
    retcode_name,
    slippage_pips,
    spread_pips,
    units_to_lots,
    vwap,
)

NAN = float("nan")
INF = float("inf")

FX = {"contract_size": 100_000.0, "volume_min": 0.01, "volume_max": 100.0, "volume_step": 0.01}
INDEX = {"contract_size": 1.0, "volume_min": 0.1, "volume_max": 50.0, "volume_step": 0.1}
GOLD = {"contract_size": 100.0, "volume_min": 0.01, "volume_max": 50.0, "volume_step": 0.01}
CRYPTO = {"contract_size": 1.0, "volume_min": 0.001, "volume_max": 10.0, "volume_step": 0.001}
WHOLE_LOTS = {"contract_size": 10.0, "volume_min": 1.0, "volume_max": 1000.0, "volume_step": 1.0}
QUARTER = {"contract_size": 100_000.0, "volume_min": 0.25, "volume_max": 10.0, "volume_step": 0.25}


def _denied(result: float | Denied, reason: RejectionReason) -> Denied:
    assert isinstance(result, Denied), result
    assert result.reason is reason
    return result


# --------------------------------------------------------------------------- Denied


def test_denied_is_an_immutable_value() -> None:
    denied = Denied(RejectionReason.INVALID_VOLUME, "why")
    assert denied == Denied(RejectionReason.INVALID_VOLUME, "why")
    assert hash(denied) == hash(Denied(RejectionReason.INVALID_VOLUME, "why"))
    with pytest.raises(AttributeError):
        denied.detail = "other"  # type: ignore[misc]
    assert not hasattr(denied, "__dict__")  # slots


# --------------------------------------------------------------------------- units_to_lots


@pytest.mark.parametrize(
    ("units", "spec", "lots"),
    [
        (95_000, FX, 0.95),
        (7_000, FX, 0.07),  # 0.07 / 0.01 = 7.000000000000001
        (29_000, FX, 0.29),  # 0.29 / 0.01 = 28.999999999999996
        (1_000, FX, 0.01),  # exactly volume_min
        (10_000_000, FX, 100.0),  # exactly volume_max
        (57_000, FX, 0.57),
        (100_000 * (0.1 + 0.2), FX, 0.3),  # 30000.000000000004 units
        (0.3, INDEX, 0.3),  # 0.3 / 0.1 = 2.9999999999999996
        (0.7, INDEX, 0.7),
        (0.1, INDEX, 0.1),
        (50, INDEX, 50.0),
        (1, GOLD, 0.01),
        (123, GOLD, 1.23),
        (0.003, CRYPTO, 0.003),
        (1.234, CRYPTO, 1.234),
        (30, WHOLE_LOTS, 3.0),
        (75_000, QUARTER, 0.75),
    ],
)
def test_units_to_lots_exact(units: float, spec: dict[str, float], lots: float) -> None:
    result = units_to_lots(units, **spec)
    assert result == lots
    assert repr(result) == repr(lots)  # no float noise left behind


@pytest.mark.parametrize(
    ("units", "spec"),
    [
        (95_001, FX),
        (1_500, FX),  # 0.015 lots
        (99_999.9, FX),
        (0.35, INDEX),
        (1.2345, CRYPTO),
        (35, WHOLE_LOTS),
        (60_000, QUARTER),  # 0.6 lots, not a multiple of 0.25
        (100_000 * 0.0700001, FX),
    ],
)
def test_units_to_lots_refuses_to_resize(units: float, spec: dict[str, float]) -> None:
    denied = _denied(units_to_lots(units, **spec), RejectionReason.INVALID_VOLUME)
    assert "multiple of volume_step" in denied.detail
    assert f"units={units:.12g}" in denied.detail
    assert f"volume_step={spec['volume_step']:.12g}" in denied.detail


def test_units_to_lots_detail_names_units_lots_and_step() -> None:
    denied = _denied(units_to_lots(95_001, **FX), RejectionReason.INVALID_VOLUME)
    assert denied.detail == (
        "units=95001 is 0.95001 lots (contract_size=100000), "
        "not a whole multiple of volume_step=0.01"
    )


@pytest.mark.parametrize(
    ("units", "spec", "word"),
    [
        (1_000, {**FX, "volume_min": 0.02}, "below volume_min"),
        (10_001_000, FX, "above volume_max"),
        (20_000_000, FX, "above volume_max"),
        (0.1, {**INDEX, "volume_min": 0.2}, "below volume_min"),
        (1e-20, FX, "below volume_min"),  # rounds to zero steps
    ],
)
def test_units_to_lots_outside_min_max(units: float, spec: dict[str, float], word: str) -> None:
    assert word in _denied(units_to_lots(units, **spec), RejectionReason.INVALID_VOLUME).detail


@pytest.mark.parametrize("units", [0, -1_000, -0.0, NAN, INF, -INF])
def test_units_to_lots_non_positive_or_not_finite(units: float) -> None:
    denied = _denied(units_to_lots(units, **FX), RejectionReason.INVALID_VOLUME)
    assert "not a positive number" in denied.detail


@pytest.mark.parametrize(
    "spec",
    [
        {**FX, "contract_size": 0.0},
        {**FX, "contract_size": NAN},
        {**FX, "volume_step": 0.0},
        {**FX, "volume_step": -0.01},
        {**FX, "volume_min": 0.0},
        {**FX, "volume_max": INF},
        {**FX, "volume_min": 10.0, "volume_max": 1.0},
    ],
)
def test_units_to_lots_broken_symbol_spec(spec: dict[str, float]) -> None:
    _denied(units_to_lots(1_000, **spec), RejectionReason.SYMBOL_NOT_TRADABLE)


def test_units_to_lots_tolerates_only_noise_at_the_edges() -> None:
    # volume_max + noise is still volume_max; one step beyond is refused.
    assert units_to_lots(10_000_000 * (1 + 1e-15), **FX) == 100.0
    assert isinstance(units_to_lots(10_000_000 + 1_000, **FX), Denied)
    assert units_to_lots(1_000 * (1 - 1e-15), **FX) == 0.01


def test_units_to_lots_all_fx_step_multiples_round_trip() -> None:
    # Every size from 0.01 to 5.00 lots: whatever the float noise, the exact lots come back.
    for cents in range(1, 501):
        expected = cents / 100
        assert units_to_lots(cents * 1_000.0, **FX) == expected
        assert units_to_lots(expected * 100_000, **FX) == expected


@pytest.mark.parametrize(
    ("lots", "contract_size", "units"),
    [
        (0.07, 100_000.0, 7_000.0),  # 7000.000000000001 before cleaning
        (0.95, 100_000.0, 95_000.0),
        (0.3, 1.0, 0.3),
        (1.23, 100.0, 123.0),
        (0.0, 100_000.0, 0.0),
        (0.001, 1.0, 0.001),
    ],
)
def test_lots_to_units(lots: float, contract_size: float, units: float) -> None:
    assert lots_to_units(lots, contract_size) == units


@pytest.mark.parametrize(("lots", "contract_size"), [(-0.01, 1e5), (NAN, 1e5), (1, 0), (1, INF)])
def test_lots_to_units_rejects_nonsense(lots: float, contract_size: float) -> None:
    with pytest.raises(ValueError, match="lots="):
        lots_to_units(lots, contract_size)


@pytest.mark.parametrize("cents", [1, 7, 29, 57, 95, 100, 12_345])
def test_lots_units_round_trip(cents: int) -> None:
    lots = cents / 100
    assert units_to_lots(lots_to_units(lots, 100_000), **{**FX, "volume_max": 1000.0}) == lots


# --------------------------------------------------------------------------- pip size


@pytest.mark.parametrize(
    ("digits", "point", "pip"),
    [
        (5, 0.00001, 0.0001),  # EURUSD
        (3, 0.001, 0.01),  # USDJPY
        (4, 0.0001, 0.0001),  # 4-digit EURUSD
        (2, 0.01, 0.01),  # 2-digit JPY / XAUUSD: pip = point
        (1, 0.1, 0.1),
        (0, 1.0, 1.0),  # index points
        (6, 0.000001, 0.000001),
    ],
)
def test_pip_size(digits: int, point: float, pip: float) -> None:
    assert pip_size(digits, point) == pip


@pytest.mark.parametrize(("digits", "point"), [(2, 0.01), (5, 0.00001), (3, 0.001)])
def test_pip_size_override_wins(digits: int, point: float) -> None:
    assert pip_size(digits, point, override=0.1) == 0.1


@pytest.mark.parametrize("override", [0.0, -0.1, NAN, INF])
def test_pip_size_bad_override(override: float) -> None:
    with pytest.raises(ValueError, match="override"):
        pip_size(5, 0.00001, override=override)


@pytest.mark.parametrize(("digits", "point"), [(5, 0.0), (5, -0.00001), (5, NAN), (-1, 0.1)])
def test_pip_size_bad_spec(digits: int, point: float) -> None:
    with pytest.raises(ValueError, match="point="):
        pip_size(digits, point)


# --------------------------------------------------------------------------- slippage, spread


@pytest.mark.parametrize(
    ("direction", "intended", "fill", "pip", "signed"),
    [
        (Direction.BUY, 1.10000, 1.10012, 0.0001, 1.2),  # buy above: adverse
        (Direction.BUY, 1.10012, 1.10000, 0.0001, -1.2),  # buy below: favourable
        (Direction.SELL, 1.10012, 1.10000, 0.0001, 1.2),  # sell below: adverse
        (Direction.SELL, 1.10000, 1.10012, 0.0001, -1.2),  # sell above: favourable
        (Direction.BUY, 150.123, 150.133, 0.01, 1.0),  # JPY 3-digit
        (Direction.SELL, 2350.25, 2350.05, 0.1, 2.0),  # XAU 2-digit with a 0.1 override
        (Direction.BUY, 2350.25, 2350.26, 0.01, 1.0),  # XAU 2-digit, pip = point
        (Direction.BUY, 1.1000, 1.1003, 0.0001, 3.0),  # 4-digit quote
        (1, 1.1, 1.1, 0.0001, 0.0),
        (-1, 1.1, 1.1, 0.0001, 0.0),
    ],
)
def test_slippage_pips(
    direction: int, intended: float, fill: float, pip: float, signed: float
) -> None:
    assert slippage_pips(direction, intended, fill, pip) == (signed, abs(signed))


def test_slippage_removes_noise_and_negative_zero() -> None:
    signed, absolute = slippage_pips(1, 0.1 + 0.2, 0.3, 0.0001)
    assert (signed, absolute) == (0.0, 0.0)
    assert math.copysign(1.0, signed) == 1.0
    assert slippage_pips(1, 1.1, 1.1 + 0.00001, 0.0001) == (0.1, 0.1)


@pytest.mark.parametrize(
    ("direction", "intended", "fill", "pip"),
    [
        (0, 1.1, 1.1, 0.0001),
        (2, 1.1, 1.1, 0.0001),
        (1, NAN, 1.1, 0.0001),
        (1, 1.1, INF, 0.0001),
        (1, 1.1, 1.1, 0.0),
        (-1, 1.1, 1.1, NAN),
    ],
)
def test_slippage_rejects_nonsense(
    direction: int, intended: float, fill: float, pip: float
) -> None:
    with pytest.raises(ValueError, match=r"direction|prices|pip"):
        slippage_pips(direction, intended, fill, pip)


@pytest.mark.parametrize(
    ("bid", "ask", "pip", "spread"),
    [
        (1.10000, 1.10012, 0.0001, 1.2),
        (150.100, 150.115, 0.01, 1.5),
        (2350.10, 2350.45, 0.1, 3.5),
        (2350.10, 2350.45, 0.01, 35.0),
        (1.1, 1.1, 0.0001, 0.0),
        (1.1002, 1.1000, 0.0001, -2.0),  # crossed
        (0.1 + 0.2, 0.3, 0.0001, 0.0),
    ],
)
def test_spread_pips(bid: float, ask: float, pip: float, spread: float) -> None:
    assert spread_pips(bid, ask, pip) == spread


@pytest.mark.parametrize(("bid", "ask", "pip"), [(NAN, 1.1, 0.0001), (1.1, 1.1, 0.0), (1, INF, 1)])
def test_spread_rejects_nonsense(bid: float, ask: float, pip: float) -> None:
    with pytest.raises(ValueError, match=r"prices|pip"):
        spread_pips(bid, ask, pip)


# --------------------------------------------------------------------------- deviation


@pytest.mark.parametrize(
    ("pips", "pip", "point", "points"),
    [
        (10, 0.0001, 0.00001, 100),  # 5-digit
        (10, 0.01, 0.001, 100),  # 3-digit (0.1/0.001 = 99.99999999999999)
        (10, 0.0001, 0.0001, 10),  # 4-digit
        (10, 0.01, 0.01, 10),  # 2-digit
        (3, 0.1, 0.01, 30),  # gold with a 0.1 pip override
        (0.25, 0.0001, 0.00001, 2),  # 2.5 points: never more than configured
        (0.29, 0.0001, 0.00001, 2),
        (0.3, 0.0001, 0.00001, 3),  # 2.9999999999999996 points before cleaning
        (0, 0.0001, 0.00001, 0),
        (1.5, 1.0, 1.0, 1),
    ],
)
def test_deviation_points(pips: float, pip: float, point: float, points: int) -> None:
    result = deviation_points(pips, pip, point)
    assert result == points
    assert type(result) is int


@pytest.mark.parametrize(
    ("pips", "pip", "point"),
    [(-1, 0.0001, 0.00001), (NAN, 1, 1), (1, 0, 1), (1, 1, 0), (INF, 1, 1)],
)
def test_deviation_rejects_nonsense(pips: float, pip: float, point: float) -> None:
    with pytest.raises(ValueError, match=r"max_slippage_pips|pip|point"):
        deviation_points(pips, pip, point)


# --------------------------------------------------------------------------- margin


@pytest.mark.parametrize(
    ("margin", "cushion", "required"), [(100.0, 1.5, 150.0), (100.0, 1.0, 100.0), (0.0, 2.0, 0.0)]
)
def test_required_margin(margin: float, cushion: float, required: float) -> None:
    assert required_margin(margin, cushion) == required


@pytest.mark.parametrize("cushion", [0.99, 0.0, -1.0, NAN, INF])
def test_required_margin_rejects_cushion_below_one(cushion: float) -> None:
    with pytest.raises(ValueError, match="cushion"):
        required_margin(100.0, cushion)


@pytest.mark.parametrize(
    ("required", "free", "reserved", "cushion"),
    [
        (100.0, 150.0, 0.0, 1.5),  # exactly enough
        (100.0, 1_000.0, 849.0, 1.5),  # 151 available
        (0.0, 0.0, 0.0, 1.5),  # a hedge that needs no margin
        (109.91, 10_000.0, 0.0, 1.5),
    ],
)
def test_margin_check_passes(required: float, free: float, reserved: float, cushion: float) -> None:
    assert (
        margin_check(
            margin_required=required, free_margin=free, reserved_margin=reserved, cushion=cushion
        )
        is None
    )


@pytest.mark.parametrize(
    ("required", "free", "reserved", "cushion"),
    [
        (100.0, 149.99, 0.0, 1.5),
        (100.0, 1_000.0, 851.0, 1.5),  # reserved by in-flight executions
        (100.0, -50.0, 0.0, 1.0),  # negative free margin (margin call)
        (10.0, 0.0, 0.0, 1.0),
    ],
)
def test_margin_check_denies(required: float, free: float, reserved: float, cushion: float) -> None:
    denied = margin_check(
        margin_required=required, free_margin=free, reserved_margin=reserved, cushion=cushion
    )
    assert denied is not None
    assert denied.reason is RejectionReason.MARGIN_INSUFFICIENT
    for number in (required, cushion, free, reserved):
        assert f"{number:.12g}" in denied.detail


def test_margin_check_detail() -> None:
    denied = margin_check(
        margin_required=100.0, free_margin=1_000.0, reserved_margin=900.0, cushion=1.5
    )
    assert denied == Denied(
        RejectionReason.MARGIN_INSUFFICIENT,
        "margin 100 x cushion 1.5 = 150 exceeds free margin 1000 - reserved 900 = 100",
    )


@pytest.mark.parametrize(("required", "free"), [(NAN, 1e6), (-1.0, 1e6), (INF, 1e6), (1.0, NAN)])
def test_margin_check_fails_closed_on_unusable_figures(required: float, free: float) -> None:
    denied = margin_check(
        margin_required=required, free_margin=free, reserved_margin=0.0, cushion=1.5
    )
    assert denied is not None
    assert denied.reason is RejectionReason.MARGIN_INSUFFICIENT
    assert "unusable" in denied.detail


@pytest.mark.parametrize(("reserved", "cushion"), [(-1.0, 1.5), (NAN, 1.5), (0.0, 0.5)])
def test_margin_check_rejects_bad_engine_inputs(reserved: float, cushion: float) -> None:
    with pytest.raises(ValueError, match=r"reserved_margin|cushion"):
        margin_check(
            margin_required=1.0, free_margin=100.0, reserved_margin=reserved, cushion=cushion
        )


# --------------------------------------------------------------------------- filling

FOK, IOC, RETURN = ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN
REQUEST, INSTANT = SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT
MARKET, EXCHANGE = SYMBOL_TRADE_EXECUTION_MARKET, SYMBOL_TRADE_EXECUTION_EXCHANGE


def test_filling_constants_are_the_metaquotes_values() -> None:
    assert (SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC, SYMBOL_FILLING_BOC) == (1, 2, 4)
    assert (FOK, IOC, RETURN) == (0, 1, 2)
    assert (REQUEST, INSTANT, MARKET, EXCHANGE) == (0, 1, 2, 3)


_EXPECTED_FILLING: dict[tuple[int, int], tuple[int, ...]] = {}
for _bits in range(8):  # every combination of the FOK, IOC and BOC bits
    _fok = (FOK,) if _bits & 1 else ()
    _ioc = (IOC,) if _bits & 2 else ()
    _EXPECTED_FILLING[(_bits, REQUEST)] = (FOK,)
    _EXPECTED_FILLING[(_bits, INSTANT)] = (FOK,)
    _EXPECTED_FILLING[(_bits, MARKET)] = _fok + _ioc
    _EXPECTED_FILLING[(_bits, EXCHANGE)] = (*_fok, *_ioc, RETURN)


@pytest.mark.parametrize(("key", "expected"), sorted(_EXPECTED_FILLING.items()))
def test_filling_modes_every_combination(key: tuple[int, int], expected: tuple[int, ...]) -> None:
    assert filling_modes(*key) == expected


@pytest.mark.parametrize(
    ("bits", "exemode", "expected"),
    [
        (1, INSTANT, (FOK,)),  # EURJPY on MetaQuotes-Demo
        (2, MARKET, (IOC,)),  # USTEC: IOC only
        (3, MARKET, (FOK, IOC)),
        (0, MARKET, ()),
        (4, MARKET, ()),  # BOC is for pending limit orders, never a market order
        (0, EXCHANGE, (RETURN,)),
        (3, EXCHANGE, (FOK, IOC, RETURN)),
        (3, 4, ()),  # an execution mode this version does not know
        (3, -1, ()),
    ],
)
def test_filling_modes_examples(bits: int, exemode: int, expected: tuple[int, ...]) -> None:
    assert filling_modes(bits, exemode) == expected


@pytest.mark.parametrize(
    ("bits", "exemode", "exclude", "chosen"),
    [
        (3, MARKET, (), FOK),
        (3, MARKET, (FOK,), IOC),  # retry after 10030 with the next allowed mode
        (3, MARKET, {FOK, IOC}, None),
        (2, MARKET, (), IOC),
        (2, MARKET, [IOC], None),
        (0, MARKET, (), None),
        (1, INSTANT, (), FOK),
        (1, REQUEST, (FOK,), None),
        (3, EXCHANGE, (FOK, IOC), RETURN),
        (0, EXCHANGE, frozenset({RETURN}), None),
        (3, MARKET, (RETURN,), FOK),  # excluding a mode not on offer changes nothing
    ],
)
def test_choose_filling(
    bits: int, exemode: int, exclude: tuple[int, ...], chosen: int | None
) -> None:
    assert choose_filling(bits, exemode, exclude) == chosen


# --------------------------------------------------------------------------- retcodes


@pytest.mark.parametrize(
    ("retcode", "klass"),
    [
        (10009, RetcodeClass.SUCCESS),
        (10008, RetcodeClass.SUCCESS),
        (10010, RetcodeClass.SUCCESS),
        (10004, RetcodeClass.RETRY),
        (10020, RetcodeClass.RETRY),
        (10021, RetcodeClass.RETRY),
        (10024, RetcodeClass.RETRY),
        (10030, RetcodeClass.RETRY),
        (10012, RetcodeClass.AMBIGUOUS),
        (10031, RetcodeClass.AMBIGUOUS),
        (10011, RetcodeClass.AMBIGUOUS),
        (10028, RetcodeClass.AMBIGUOUS),
        (10023, RetcodeClass.AMBIGUOUS),
        (None, RetcodeClass.AMBIGUOUS),
        (10006, RetcodeClass.FINAL),
        (10014, RetcodeClass.FINAL),
        (10018, RetcodeClass.FINAL),
        (10019, RetcodeClass.FINAL),
        (10025, RetcodeClass.FINAL),  # NO_CHANGES: success only for SLTP/MODIFY
        (10027, RetcodeClass.FINAL),
        (10046, RetcodeClass.FINAL),
        # unknown codes are final rejects, never retried and never "success"
        (10037, RetcodeClass.FINAL),
        (10047, RetcodeClass.FINAL),
        (99999, RetcodeClass.FINAL),
        (0, RetcodeClass.FINAL),  # order_check's success, never an order_send success
        (1, RetcodeClass.FINAL),
        (-1, RetcodeClass.FINAL),
    ],
)
def test_classify_retcode(retcode: int | None, klass: RetcodeClass) -> None:
    assert classify_retcode(retcode) is klass


def test_every_named_final_retcode_is_final() -> None:
    special = {
        10004,
        10008,
        10009,
        10010,
        10011,
        10012,
        10020,
        10021,
        10023,
        10024,
        10028,
        10030,
        10031,
    }
    for code in set(RETCODE_NAMES) - special:
        assert classify_retcode(code) is RetcodeClass.FINAL, RETCODE_NAMES[code]


def test_retcode_names() -> None:
    assert RETCODE_NAMES[10009] == "DONE"
    assert RETCODE_NAMES[10030] == "INVALID_FILL"
    assert RETCODE_NAMES[10046] == "HEDGE_PROHIBITED"
    assert 10037 not in RETCODE_NAMES  # does not exist
    assert len(RETCODE_NAMES) == 41
    assert all(re.fullmatch(r"[A-Z_]+", name) for name in RETCODE_NAMES.values())


@pytest.mark.parametrize(
    ("retcode", "name"), [(10009, "DONE"), (None, "NONE"), (12345, "UNKNOWN_12345")]
)
def test_retcode_name(retcode: int | None, name: str) -> None:
    assert retcode_name(retcode) == name


@pytest.mark.parametrize(
    ("code", "klass"),
    [
        (-10001, RetcodeClass.AMBIGUOUS),  # IPC send failed
        (-10002, RetcodeClass.AMBIGUOUS),  # IPC recv failed
        (-10005, RetcodeClass.AMBIGUOUS),  # IPC timeout
        (-10003, RetcodeClass.AMBIGUOUS),  # IPC initialize failed: not provably unsent
        (-10004, RetcodeClass.AMBIGUOUS),  # 'No IPC connection': not provably unsent
        (-10000, RetcodeClass.AMBIGUOUS),
        (-1, RetcodeClass.AMBIGUOUS),  # 'Terminal: Call failed'
        (-3, RetcodeClass.AMBIGUOUS),
        (1, RetcodeClass.AMBIGUOUS),  # RES_S_OK with a None result makes no sense
        (-99999, RetcodeClass.AMBIGUOUS),
        (-2, RetcodeClass.FINAL),  # invalid argument, e.g. an over-long comment
        (-4, RetcodeClass.FINAL),
        (-5, RetcodeClass.FINAL),
        (-6, RetcodeClass.FINAL),
        (-7, RetcodeClass.FINAL),
        (-8, RetcodeClass.FINAL),
    ],
)
def test_classify_last_error(code: int, klass: RetcodeClass) -> None:
    assert classify_last_error(code) is klass


def test_last_error_is_never_retry() -> None:
    for code in [*LAST_ERROR_NAMES, *range(-10010, 10)]:
        assert classify_last_error(code) is not RetcodeClass.RETRY


def test_last_error_names() -> None:
    assert LAST_ERROR_NAMES[-2] == "RES_E_INVALID_PARAMS"
    assert LAST_ERROR_NAMES[-10004] == "RES_E_INTERNAL_FAIL_CONNECT"
    assert LAST_ERROR_NAMES[1] == "RES_S_OK"


# --------------------------------------------------------------------------- client ids

ODD_IDS = [
    "exec_" + "0" * 32,
    "x",
    "exec_ä🚀 spaces/and:colons",
    "a" * 10_000,
    "line\nbreak",
    " ",
    "DROP TABLE executions;--",
]


@pytest.mark.parametrize("execution_id", ODD_IDS)
@pytest.mark.parametrize("prefix", ["ee", "e", "EE_7", "abcdefgh", "0"])
def test_client_id_shape(execution_id: str, prefix: str) -> None:
    client_id = make_client_id(execution_id, prefix)
    assert len(client_id) == CLIENT_ID_MAX_LENGTH == 25
    assert CLIENT_ID_RE.match(client_id)
    assert client_id.isascii()
    assert client_id.startswith(prefix + "-")
    digest = client_id.removeprefix(prefix + "-")
    assert set(digest) <= set(string.ascii_lowercase + "234567")
    assert len(digest) >= 16


def test_client_id_is_deterministic_and_distinct() -> None:
    ids = [f"exec_{n:032x}" for n in range(5_000)]
    client_ids = [make_client_id(i) for i in ids]
    assert client_ids == [make_client_id(i) for i in ids]
    assert len(set(client_ids)) == len(ids)
    assert make_client_id("a", "ee") != make_client_id("a", "ff")


def test_client_id_is_stable_across_versions() -> None:
    # Recovery recomputes client ids of executions stored by an earlier run (maybe an earlier
    # release): changing the derivation would orphan their orders. These values are frozen.
    assert make_client_id("exec_00000000000000000000000000000001") == "ee-kd2rcxrcucdnrk7vp3bp3y"
    assert make_client_id("x", "EE_7") == "EE_7-fvyrmqvxe2yeialcpsu7"


@pytest.mark.parametrize("prefix", ["", "a-b", "toolongprefix", "é", "a b", "x\n"])
def test_client_id_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        make_client_id("exec_1", prefix)


def test_client_id_empty_execution_id() -> None:
    with pytest.raises(ValueError, match="execution_id"):
        make_client_id("")


@pytest.mark.parametrize(
    ("comment", "ok"),
    [
        ("ee-abc", True),
        ("A" * 25, True),
        ("A" * 26, False),
        ("", False),
        ("with space", False),
        ("ünïcode", False),
        ("trailing\n", False),
        ("[sl 1.0990]", False),
    ],
)
def test_client_id_re(comment: str, ok: bool) -> None:
    assert bool(CLIENT_ID_RE.match(comment)) is ok


# --------------------------------------------------------------------------- back-off


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 2.0), (60, 2.0), (10_000, 2.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert backoff_seconds(attempt, base=0.2, cap=2.0) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("jitter", "rand", "delay"),
    [(0.5, 0.0, 0.8), (0.5, 0.5, 0.6), (1.0, 0.999, 0.0008), (0.25, 0.4, 0.72)],
)
def test_backoff_jitter_only_shortens(jitter: float, rand: float, delay: float) -> None:
    assert backoff_seconds(3, 0.2, 2.0, jitter=jitter, rand=lambda: rand) == pytest.approx(delay)


def test_backoff_default_random_stays_within_bounds() -> None:
    for _ in range(200):
        assert 1.0 <= backoff_seconds(10, 0.2, 2.0, jitter=0.5) <= 2.0


def test_backoff_zero_base() -> None:
    assert backoff_seconds(5, base=0.0, cap=2.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0, "base": 0.2, "cap": 2.0},
        {"attempt": -1, "base": 0.2, "cap": 2.0},
        {"attempt": 1, "base": -0.2, "cap": 2.0},
        {"attempt": 1, "base": 0.2, "cap": NAN},
        {"attempt": 1, "base": INF, "cap": 2.0},
        {"attempt": 1, "base": 0.2, "cap": 2.0, "jitter": 1.5},
        {"attempt": 1, "base": 0.2, "cap": 2.0, "jitter": -0.1},
    ],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"attempt|base|jitter"):
        backoff_seconds(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- vwap


@pytest.mark.parametrize(
    ("fills", "price"),
    [
        ([(1.0, 1.1)], 1.1),
        ([(0.1, 1.1), (0.2, 1.1)], 1.1),  # identical prices stay exact
        ([(1.0, 1.1), (3.0, 1.2)], 1.175),
        ([(0.01, 150.123), (0.01, 150.125)], 150.124),
    ],
)
def test_vwap(fills: list[tuple[float, float]], price: float) -> None:
    assert vwap(fills) == price


def test_vwap_takes_any_iterable() -> None:
    assert vwap((v, p) for v, p in [(2.0, 2350.1), (2.0, 2350.3)]) == 2350.2


@pytest.mark.parametrize(
    "fills", [[], [(0.0, 1.1)], [(-1.0, 1.1)], [(1.0, NAN)], [(NAN, 1.1)], [(1.0, 0.0)]]
)
def test_vwap_rejects_nonsense(fills: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError, match="fills"):
        vwap(fills)


# --- reconcile: absence only on evidence (issue 11, item 1) --------------------------------


@pytest.mark.parametrize(
    ("fate", "waited", "fenced", "proven"),
    [
        (SendFate.NOT_STARTED, 0.0, False, True),  # nothing reached order_send
        (SendFate.QUEUED, 99.0, True, False),  # still in the broker's line
        (SendFate.STARTED, 99.0, True, False),  # order_send is running now
        (SendFate.ANSWERED, 0.9, True, False),  # the window runs from order_send's start
        (SendFate.ANSWERED, 1.0, False, True),  # the terminal answered the call itself
        (SendFate.CUT, 99.0, False, False),  # the call raised: the terminal may go on
        (SendFate.CUT, 1.0, True, True),  # ...until a later send came back definite
        (SendFate.UNKNOWN, 99.0, False, False),  # another broker took it
        (SendFate.UNKNOWN, 1.0, True, True),
    ],
)
def test_absence_is_proven_only_on_evidence(
    fate: SendFate, waited: float, fenced: bool, proven: bool
) -> None:
    assert absence_proven(fate, waited=waited, window=1.0, fenced=fenced) is proven


def test_absence_is_measured_from_the_send_or_from_the_first_lookup() -> None:
    started = SendTrace(SendFate.CUT, broker=1, fence=4, seq=3, started_mono=10.0)
    assert measure_absence(started, 12.5, None) == (2.5, True, None)

    # A send this BrokerActor never saw: from the first lookup, fenced by a later send.
    unseen = SendTrace(SendFate.UNKNOWN, broker=2, fence=7, seq=7)
    waited, fenced, base = measure_absence(unseen, 20.0, None)
    assert (waited, fenced, base) == (0.0, False, (2, 7, 20.0))
    later = SendTrace(SendFate.UNKNOWN, broker=2, fence=8, seq=8)
    assert measure_absence(later, 23.0, base) == (3.0, True, base)
    # A replaced BrokerActor's numbers start again: so does the measure.
    replaced = SendTrace(SendFate.UNKNOWN, broker=3, fence=0, seq=0)
    assert measure_absence(replaced, 30.0, base) == (0.0, False, (3, 0, 30.0))
    assert measure_absence(unseen, 20.0, None, sender_gone=True)[1] is True


def test_reconcile_backoff_grows_to_its_cap() -> None:
    assert [reconcile_backoff(n, 0.25, 2.0) for n in (1, 2, 3, 4, 5, 50)] == [
        0.25,
        0.5,
        1.0,
        2.0,
        2.0,
        2.0,
    ]
