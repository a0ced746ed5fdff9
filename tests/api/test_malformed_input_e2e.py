"""Malformed RPM messages against `execution-engine serve` over real HTTP, and through the
`execute` CLI: each is a 422 naming the field (a clear one-line refusal from the CLI), never
a 500, and no number of them halts trading (issue 11, items 2-4)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api._server import Server, running
from tests.api._support import TOKEN_OF, TOKENS
from tests.api.test_cli_basics import assert_one_clean_error_line, console_script

TRADE = '"symbol": "EURUSD", "direction": 1, "position_units": 95000'


def _message(decision_id: str, trade: str = TRADE, extra: str = "") -> str:
    """The raw body, written as text: JSON the test client would not emit (NaN, 1e400)."""
    return (
        '{"decision": {"status": "APPROVED", "decision_id": "' + decision_id + '", '
        '"approved_trade": {' + trade + "}}" + extra + "}"
    )


ZEROS_400 = "1" + "0" * 400
"""`"atr": 1` followed by 400 zeros."""

DEEP_300 = "[" * 300 + "1" + "]" * 300

# (raw body, the field or limit the 422 must name)
MALFORMED: list[tuple[str, str]] = [
    *[
        (_message(f"atr-{i}", TRADE + ', "atr": ' + ZEROS_400), "approved_trade.atr")
        for i in range(7)
    ],
    (
        _message("pu", '"symbol": "EURUSD", "direction": 1, "position_units": 1e400'),
        "position_units",
    ),
    (_message("ip", TRADE + ', "intended_price": 1e400'), "intended_price"),
    (_message("inf", TRADE + ', "atr": Infinity'), "approved_trade.atr"),
    (_message("big", TRADE + ', "atr": 1e309'), "approved_trade.atr"),
    (_message("nan", TRADE + ', "atr": NaN'), "approved_trade.atr"),
    (_message("extra-nan", extra=', "context": {"score": NaN}'), "context.score"),
    (_message("extra-inf", extra=', "context": [-Infinity]'), "context.0"),
    (_message("deep", extra=', "context": ' + DEEP_300), "nested deeper than 32 levels"),
    (_message("caf\u00e9"), "decision.decision_id"),
    (_message("cafe\u0301"), "decision.decision_id"),
    (_message("\uff41bc"), "decision.decision_id"),
    (_message("a\u200bbc"), "decision.decision_id"),
    (_message("a\u200fbc"), "decision.decision_id"),
    (_message("a\\u001bbc"), "decision.decision_id"),  # ESC, as JSON escapes it
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "EE_API_TOKENS": ",".join(f"{r}:{t}" for t, r in TOKENS.items()),
        "EE_POLL_INTERVAL_SECONDS": "0.01",
        "EE_CACHE_TICK_SECONDS": "0",
        "EE_RESTART_INTENSITY": "5",
        "EE_RESTART_PERIOD_SECONDS": "10",
    }
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    args = ["execution-engine", "serve", "--port", "0", "--database-url", url]
    with running(args, tmp_path, env) as server:
        yield server


def test_malformed_messages_are_422_and_trading_stays_active(server: Server) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN_OF['trader']}",
        "Content-Type": "application/json",
    }
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as trader:
        for body, named in MALFORMED:
            response = trader.post("/execute", content=body.encode())
            assert response.status_code == 422, (body[:80], response.text)
            assert response.json()["code"] == "INVALID_REQUEST"
            assert named in response.json()["message"], response.text

        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["trading_state"] == "ACTIVE"
        assert health["status"] == "ok"
        good = trader.post("/execute", content=_message("good-after").encode())
        assert good.status_code == 200, good.text
        assert good.json()["status"] == "FILLED"
        history = trader.get("/history").json()
        assert [row["rpm_decision_id"] for row in history] == ["good-after"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_message("cli-atr", TRADE + ', "atr": ' + ZEROS_400), "decision.approved_trade.atr"),
        (_message("caf\u00e9"), "decision.decision_id"),
        ("[" * 5000 + "]" * 5000, "not valid JSON"),
    ],
)
def test_the_execute_cli_refuses_them_in_one_line(body: str, named: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script(), "execute", "-", "--database-url", f"sqlite:///{tmp_path / 'e.db'}"],
        input=body,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = assert_one_clean_error_line(result)
    assert named in line
    assert not (tmp_path / "e.db").exists()  # refused before an engine was started
