"""terminals.constants holds the real MetaTrader5 5.0.6231 constants, and only those."""

from __future__ import annotations

import pytest

from terminals import constants as c

# Counted in MetaTrader5/__init__.py of metatrader5-5.0.6231-cp311-cp311-win_amd64.whl.
WHEEL_CONSTANT_COUNT = 223


def module_constants() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(c).items()
        if name.isupper() and type(value) is int and name not in c.NOT_EXPORTED
    }


def test_count_matches_the_wheel() -> None:
    assert len(module_constants()) == WHEEL_CONSTANT_COUNT


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDER_FILLING_FOK", 0),
        ("ORDER_FILLING_IOC", 1),
        ("ORDER_FILLING_RETURN", 2),
        ("ORDER_FILLING_BOC", 3),
        ("TRADE_ACTION_DEAL", 1),
        ("TRADE_ACTION_REMOVE", 8),
        ("ORDER_STATE_PLACED", 1),
        ("ORDER_STATE_PARTIAL", 3),
        ("ORDER_STATE_FILLED", 4),
        ("DEAL_ENTRY_INOUT", 2),
        ("SYMBOL_TRADE_EXECUTION_INSTANT", 1),
        ("ACCOUNT_MARGIN_MODE_RETAIL_NETTING", 0),
        ("ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", 2),
        ("TRADE_RETCODE_REQUOTE", 10004),
        ("TRADE_RETCODE_DONE", 10009),
        ("TRADE_RETCODE_TIMEOUT", 10012),
        ("TRADE_RETCODE_INVALID_FILL", 10030),
        ("TRADE_RETCODE_FIFO_CLOSE", 10045),
        ("RES_S_OK", 1),
        ("RES_E_INVALID_PARAMS", -2),
        ("RES_E_NOT_FOUND", -4),
        ("RES_E_INTERNAL_FAIL_CONNECT", -10004),
        ("RES_E_INTERNAL_FAIL_TIMEOUT", -10005),
        ("TIMEFRAME_H1", 0x4000 | 1),
        ("TIMEFRAME_MN1", 0xC000 | 1),
        ("COPY_TICKS_ALL", -1),
    ],
)
def test_known_values(name: str, value: int) -> None:
    assert getattr(c, name) == value


def test_values_the_module_does_not_export_are_kept_apart() -> None:
    assert (c.SYMBOL_FILLING_FOK, c.SYMBOL_FILLING_IOC, c.SYMBOL_FILLING_BOC) == (1, 2, 4)
    assert c.TRADE_RETCODE_HEDGE_PROHIBITED == 10046
    assert sorted(c.NOT_EXPORTED) == [
        "SYMBOL_FILLING_BOC",
        "SYMBOL_FILLING_FOK",
        "SYMBOL_FILLING_IOC",
        "TRADE_RETCODE_HEDGE_PROHIBITED",
    ]
    assert "TRADE_RETCODE_HEDGE_PROHIBITED" not in module_constants()


def test_there_is_no_retcode_10037() -> None:
    assert 10037 not in {v for n, v in module_constants().items() if n.startswith("TRADE_RETCODE_")}
