"""`execution-engine serve` as a subprocess on PostgreSQL, driven over real HTTP."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api._server import Server, running
from tests.api._support import TOKEN_OF, TOKENS, rpm_message

pytestmark = pytest.mark.postgres

FAST = {
    "EE_POLL_INTERVAL_SECONDS": "0.01",
    "EE_RETRY_BACKOFF_SECONDS": "0.005",
    "EE_RETRY_BACKOFF_CAP_SECONDS": "0.02",
    "EE_CACHE_TICK_SECONDS": "0",
    "EE_LOG_FORMAT": "json",
}


@pytest.fixture
def server(postgres_url: str, tmp_path: Path) -> Iterator[Server]:
    env = {"EE_API_TOKENS": ",".join(f"{r}:{t}" for t, r in TOKENS.items()), **FAST}
    args = ["execution-engine", "serve", "--port", "0", "--database-url", postgres_url]
    with running(args, tmp_path, env) as server:
        yield server


def _client(server: Server, role: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN_OF[role]}"}, timeout=30
    )


def test_the_seeds_example_over_http_on_postgresql(server: Server, tmp_path: Path) -> None:
    with (
        _client(server, "trader") as trader,
        _client(server, "viewer") as viewer,
        _client(server, "admin") as admin,
    ):
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["status"] == "ok"
        assert health["database"] == {"ok": True}

        filled = trader.post("/execute", json=rpm_message()).json()
        assert (filled["status"], filled["symbol"], filled["executed_units"]) == (
            "FILLED",
            "EURUSD",
            95000,
        )
        record = viewer.get(f"/executions/{filled['execution_id']}").json()
        assert record["fill_price"] == filled["fill_price"]

        history = viewer.get("/history", params={"symbol": "EURUSD", "limit": 50}).json()
        assert [row["execution_id"] for row in history] == [filled["execution_id"]]

        window = {"start_date": "2000-01-01", "end_date": "2100-01-01"}
        as_json = viewer.get("/audit_trail", params=window).json()
        as_csv = viewer.get("/audit_trail", params={**window, "format": "csv"}).text
        assert [row["execution_id"] for row in as_json] == [filled["execution_id"]]
        rows = list(csv.DictReader(io.StringIO(as_csv)))
        assert [(r["execution_id"], r["status"]) for r in rows] == [
            (filled["execution_id"], "FILLED")
        ]

        text = viewer.get("/metrics").text
        assert 'ee_executions_total{reason="",status="FILLED"} 1.0' in text
        assert 'ee_api_request_seconds_count{method="POST",route="/execute"} 1.0' in text
        summary = viewer.get("/metrics", headers={"Accept": "application/json"}).json()
        assert summary["success_rate"] == 1.0

        halted = trader.post("/halt", json={"reason": "e2e halt"}).json()
        assert halted["state"] == "HALTED"
        refused = trader.post("/execute", json=rpm_message("during-halt")).json()
        assert refused["rejection_reason"] == "TRADING_HALTED"
        assert trader.post("/resume", json={"reason": "e2e"}).status_code == 403
        resumed = admin.post("/resume", json={"reason": "e2e resume"}).json()
        assert resumed["state"] == "ACTIVE"
        assert viewer.get("/trading-state").json()["changed_by"].startswith("admin:")
        assert trader.post("/execute", json=rpm_message("after")).json()["status"] == "FILLED"

        httpx.get(f"{server.url}/history", headers={"Authorization": "Bearer wrong-token-x"})

    logged = (tmp_path / "server.stderr").read_text().splitlines()
    entries = [json.loads(line) for line in logged if line.startswith("{")]
    assert any(entry["logger"] == "uvicorn.access" for entry in entries)
    text = "\n".join(logged)
    for token in [*TOKENS, "wrong-token-x"]:
        assert token not in text
