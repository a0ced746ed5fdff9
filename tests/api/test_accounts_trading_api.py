"""Per-account trading control, health and metrics over HTTP (issue 13, many accounts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from api.app import create_app
from api.config import ApiConfig
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings
from tests.actors.test_accounts_engine import ACCOUNTS
from tests.api._support import TOKENS, ApiClient, bearer, rpm_message

TRADER, ADMIN, VIEWER = bearer("trader"), bearer("admin"), bearer("viewer")


@pytest.fixture
def terminals() -> dict[str, SimulatedTerminal]:
    return {"alpha": SimulatedTerminal(seed=1), "beta": SimulatedTerminal(seed=2)}


@pytest.fixture
def facade(
    tmp_path: Path, database_url: str, terminals: dict[str, SimulatedTerminal]
) -> Iterator[ExecutionFacade]:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS)
    engine = create_execution_engine(
        database_url=database_url,
        settings=fast_settings(accounts_file=str(path)),
        terminals=terminals,
    )
    try:
        yield engine
    finally:
        engine.stop()
        pykka.ActorRegistry.stop_all()


@pytest.fixture
def client(facade: ExecutionFacade) -> Iterator[ApiClient]:
    app = create_app(facade, TOKENS, ApiConfig(execute_wait_seconds=5.0))
    with ApiClient(app) as client:
        yield client


def execute(client: ApiClient, account: str, decision_id: str) -> dict[str, Any]:
    answer = client.post(
        "/execute", headers=TRADER, json={**rpm_message(decision_id), "account": account}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_halting_one_account_over_http_leaves_the_other_trading(
    client: ApiClient, terminals: dict[str, SimulatedTerminal]
) -> None:
    halted = client.post("/halt", headers=TRADER, json={"reason": "desk A", "account": "alpha"})

    assert halted.status_code == 200, halted.text
    assert (halted.json()["state"], halted.json()["account"]) == ("HALTED", "alpha")
    assert execute(client, "alpha", "a1")["rejection_reason"] == "TRADING_HALTED"
    assert terminals["alpha"].sent_requests() == []
    assert execute(client, "beta", "b1")["status"] == "FILLED"
    beta = client.get("/trading-state?account=beta", headers=VIEWER).json()
    assert beta["state"] == "ACTIVE"
    resumed = client.post("/resume", headers=ADMIN, json={"reason": "ok", "account": "alpha"})
    assert resumed.json()["state"] == "ACTIVE"
    assert execute(client, "alpha", "a2")["status"] == "FILLED"


def test_a_firm_halt_and_reduce_only_over_http_cover_every_account(client: ApiClient) -> None:
    client.post("/reduce-only", headers=TRADER, json={"reason": "cut", "account": "beta"})
    assert execute(client, "beta", "b1")["rejection_reason"] == "REDUCE_ONLY"
    assert execute(client, "alpha", "a1")["status"] == "FILLED"

    assert client.post("/halt", headers=TRADER, json={"reason": "firm"}).status_code == 200

    for account in ("alpha", "beta"):
        state = client.get(f"/trading-state?account={account}", headers=VIEWER).json()
        assert (state["state"], state["reason"]) == ("HALTED", "firm")


def test_an_unknown_account_in_a_control_request_is_404_naming_it(
    client: ApiClient, facade: ExecutionFacade
) -> None:
    for path in ("/halt", "/reduce-only", "/flatten", "/resume"):
        answer = client.post(path, headers=ADMIN, json={"reason": "x", "account": "gamma"})
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["code"] == "UNKNOWN_ACCOUNT"
        assert "gamma" in answer.json()["message"]
    assert client.get("/trading-state?account=gamma", headers=VIEWER).status_code == 404
    assert not any(rt.supervisor.switch.halted for rt in facade.runtimes.values())


def test_health_and_metrics_show_each_account(
    client: ApiClient, facade: ExecutionFacade, terminals: dict[str, SimulatedTerminal]
) -> None:
    client.post("/halt", headers=TRADER, json={"reason": "desk A", "account": "alpha"})
    execute(client, "beta", "b1")

    health = client.get("/health").json()

    assert health["accounts"]["alpha"]["trading_state"] == "HALTED"
    assert health["accounts"]["beta"]["trading_state"] == "ACTIVE"
    assert health["accounts"]["beta"]["actors"] == {"broker": "alive"}
    registry = facade.metrics.registry
    state = "ee_account_trading_state"
    assert registry.get_sample_value(state, {"account": "alpha", "state": "HALTED"}) == 1.0
    assert registry.get_sample_value(state, {"account": "beta", "state": "ACTIVE"}) == 1.0
    filled = {"account": "beta", "status": "FILLED", "reason": ""}
    assert registry.get_sample_value("ee_account_executions_total", filled) == 1.0
    text = client.get("/metrics", headers=VIEWER).text
    assert 'ee_account_trading_state{account="alpha",state="HALTED"} 1.0' in text
