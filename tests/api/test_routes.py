"""The routes in process: results, status codes and error bodies."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pykka
import pytest
from fastapi import FastAPI

from actors.facade import ExecutionFacade
from api.config import ApiConfig
from api.routes.audit import CHUNK_ROWS, CSV_COLUMNS, _json_chunks
from api.routes.metrics import prefers_json
from terminals.simulated import SimulatedTerminal
from tests.api._support import ApiClient, bearer, engine_and_app, rpm_message
from tests.helpers import eventually

TRADER, VIEWER, ADMIN = bearer("trader"), bearer("viewer"), bearer("admin")
A_DAY = {"start_date": "2000-01-01", "end_date": "2100-01-01"}


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


@pytest.fixture
def engine(tmp_path: Path, sim: SimulatedTerminal) -> Iterator[tuple[ExecutionFacade, FastAPI]]:
    with engine_and_app(tmp_path, terminal=sim) as made:
        yield made


@pytest.fixture
def client(engine: tuple[ExecutionFacade, FastAPI]) -> Iterator[ApiClient]:
    with ApiClient(engine[1]) as client:
        yield client


def _execute(client: ApiClient, decision_id: str = "rpm_dec_123", **kwargs: Any) -> Any:
    response = client.post("/execute", headers=TRADER, json=rpm_message(decision_id, **kwargs))
    assert response.status_code == 200, response.text
    return response.json()


# --- POST /execute --------------------------------------------------------------------------


def test_the_seeds_example_fills_and_a_repeat_answers_the_same_execution(
    client: ApiClient,
) -> None:
    first = _execute(client)
    again = _execute(client)
    assert first["status"] == "FILLED"
    assert first["executed_units"] == 95000
    assert again == first


def test_a_conflicting_repeat_is_409(client: ApiClient) -> None:
    first = _execute(client)
    response = client.post("/execute", headers=TRADER, json=rpm_message(units=90000))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "IDEMPOTENCY_CONFLICT"
    assert body["details"] == {"decision_id": "rpm_dec_123", "execution_id": first["execution_id"]}


def test_a_refused_trade_is_a_result_not_an_error(client: ApiClient) -> None:
    rejected = _execute(client, units=95001)
    assert rejected["status"] == "REJECTED"
    assert rejected["rejection_reason"] == "INVALID_VOLUME"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("direction", 2), "body.decision.approved_trade.direction"),
        (("position_units", "lots"), "body.decision.approved_trade.position_units"),
        (("position_units", -5), "body.decision.approved_trade.position_units"),
        (("symbol", ""), "body.decision.approved_trade.symbol"),
    ],
)
def test_an_invalid_rpm_message_is_422_naming_the_field(
    client: ApiClient, change: tuple[str, object], named: str
) -> None:
    message = rpm_message()
    message["decision"]["approved_trade"][change[0]] = change[1]
    response = client.post("/execute", headers=TRADER, json=message)
    assert response.status_code == 422
    assert named in response.json()["message"]


def test_nul_characters_anywhere_in_the_message_are_422(client: ApiClient) -> None:
    message = rpm_message("dec\x00ision")
    message["decision"]["note\x00"] = "x"
    response = client.post("/execute", headers=TRADER, json=message)
    assert response.status_code == 422
    text = response.json()["message"]
    assert "NUL characters are not allowed" in text
    assert "decision.decision_id" in text
    assert "decision.note?" in text


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe{}",
        b"[]",
        b'{"decision": {"status": "MAYBE", "decision_id": "x"}}',
        b"",
    ],
)
def test_malformed_bodies_are_422(client: ApiClient, body: bytes) -> None:
    response = client.post(
        "/execute", headers={**TRADER, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "INVALID_REQUEST"


def test_a_body_over_the_limit_is_413_with_or_without_content_length(client: ApiClient) -> None:
    message = rpm_message()
    message["padding"] = "x" * (64 * 1024)
    declared = client.post("/execute", headers=TRADER, json=message)

    async def chunked() -> AsyncIterator[bytes]:
        yield json.dumps(message).encode()

    streamed = client.post(
        "/execute", headers={**TRADER, "Content-Type": "application/json"}, content=chunked()
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_not_final_within_the_wait_is_202_with_the_execution_id(
    client: ApiClient, sim: SimulatedTerminal
) -> None:
    sim.inject("placed", fill_after_polls=5)
    response = client.post("/execute?wait=0", headers=TRADER, json=rpm_message())
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in {"PENDING", "SUBMITTING", "SUBMITTED"}
    assert response.headers["location"] == f"/executions/{accepted['execution_id']}"

    def final() -> Any:
        record = client.get(response.headers["location"], headers=VIEWER).json()
        return record if record["status"] == "FILLED" else None

    assert eventually(final, timeout=10)["rpm_decision_id"] == "rpm_dec_123"


def test_a_wait_longer_than_allowed_is_422(client: ApiClient) -> None:
    response = client.post("/execute?wait=100000", headers=TRADER, json=rpm_message())
    assert response.status_code == 422
    assert "query.wait" in response.json()["message"]


# --- reads ----------------------------------------------------------------------------------


def test_an_execution_reads_back_in_full_and_an_unknown_one_is_404(client: ApiClient) -> None:
    done = _execute(client)
    record = client.get(f"/executions/{done['execution_id']}", headers=VIEWER).json()
    assert record["status"] == "FILLED"
    assert record["rpm_payload"]["decision"]["decision_id"] == "rpm_dec_123"

    missing = client.get("/executions/exec_nope", headers=VIEWER)
    assert missing.status_code == 404
    assert missing.json()["code"] == "EXECUTION_NOT_FOUND"
    assert client.get("/executions/bad%20id", headers=VIEWER).status_code == 422


def test_history_filters_and_limits(client: ApiClient) -> None:
    _execute(client, "a")
    _execute(client, "b", units=95001)
    _execute(client, "c", symbol="GBPUSD")
    rows = client.get("/history?symbol=EURUSD", headers=VIEWER).json()
    assert [row["rpm_decision_id"] for row in rows] == ["b", "a"]
    rejected = client.get("/history?status=REJECTED", headers=VIEWER).json()
    assert [row["rpm_decision_id"] for row in rejected] == ["b"]
    assert len(client.get("/history?limit=1", headers=VIEWER).json()) == 1


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=ten", "query.limit"),
        ("status=LOST", "query.status"),
        ("symbol=", "query.symbol"),
    ],
)
def test_bad_history_queries_are_422_naming_the_parameter(
    client: ApiClient, query: str, named: str
) -> None:
    response = client.get(f"/history?{query}", headers=VIEWER)
    assert response.status_code == 422
    assert named in response.json()["message"]


def test_unknown_query_parameters_are_422_after_authentication(client: ApiClient) -> None:
    typo = client.get("/history?symbl=EURUSD", headers=VIEWER)
    assert typo.status_code == 422
    assert typo.json()["message"] == "invalid request: query.symbl: unknown parameter"
    assert client.get("/health?verbose=1").status_code == 422
    twice = client.get("/history?limit=5&limit=500", headers=VIEWER)
    assert twice.json()["details"]["errors"] == ["query.limit: given more than once"]
    assert client.get("/history?symbl=EURUSD").status_code == 401


# --- audit trail ----------------------------------------------------------------------------


def test_the_audit_trail_streams_json_and_csv(client: ApiClient) -> None:
    _execute(client, "a")
    _execute(client, "b", units=95001)
    as_json = client.get("/audit_trail", headers=VIEWER, params=A_DAY)
    as_csv = client.get("/audit_trail", headers=VIEWER, params={**A_DAY, "format": "csv"})

    assert as_json.status_code == 200
    assert "content-length" not in as_json.headers  # streamed, not built in memory
    assert [row["rpm_decision_id"] for row in as_json.json()] == ["a", "b"]
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["rpm_decision_id"], r["status"]) for r in rows] == [
        ("a", "FILLED"),
        ("b", "REJECTED"),
    ]
    assert json.loads(rows[0]["rpm_payload"])["decision"]["decision_id"] == "a"


def test_the_audit_trail_range_is_half_open_and_empty_ranges_are_empty(client: ApiClient) -> None:
    _execute(client)
    edges = {"start_date": "0001-01-01T00:00:00+14:00", "end_date": "9999-12-31T23:00:00-05:00"}
    assert len(client.get("/audit_trail", headers=VIEWER, params=edges).json()) == 1
    empty = {"start_date": "2000-01-01", "end_date": "2000-01-01"}
    assert client.get("/audit_trail", headers=VIEWER, params=empty).json() == []
    csv_text = client.get("/audit_trail", headers=VIEWER, params={**empty, "format": "csv"}).text
    assert csv_text.splitlines() == [",".join(CSV_COLUMNS)]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"start_date": "yesterday", "end_date": "2100-01-01"}, "query.start_date"),
        ({"start_date": "2024-02-30", "end_date": "2100-01-01"}, "query.start_date"),
        ({"start_date": "2024-01-02", "end_date": "2024-01-01"}, "end_date"),
        ({"end_date": "2100-01-01"}, "query.start_date"),
        ({**A_DAY, "format": "xml"}, "query.format"),
    ],
)
def test_bad_audit_queries_are_422_naming_the_problem(
    client: ApiClient, params: dict[str, str], named: str
) -> None:
    response = client.get("/audit_trail", headers=VIEWER, params=params)
    assert response.status_code == 422, response.text
    assert named in response.json()["message"]


def test_the_json_encoder_emits_chunks_as_it_reads(engine: tuple[ExecutionFacade, FastAPI]) -> None:
    facade, _ = engine
    facade.execute(rpm_message())
    record = facade.get_execution_history()[0]
    endless = itertools.repeat(record)  # a stream that would never fit in memory
    chunks = _json_chunks(endless)
    assert next(chunks) == b"["
    assert next(chunks).count(b'"execution_id"') == CHUNK_ROWS


# --- metrics --------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_or_the_json_summary(client: ApiClient) -> None:
    _execute(client)
    client.get("/executions/exec_nope", headers=VIEWER)
    text = client.get("/metrics", headers=VIEWER)
    summary = client.get("/metrics", headers={**VIEWER, "Accept": "application/json"})

    assert text.headers["content-type"].startswith("text/plain")
    for name in (
        'ee_executions_total{reason="",status="FILLED"} 1.0',
        "ee_slippage_pips_count 1.0",
        'ee_terminal_calls_total{function="order_send",outcome="ok"} 1.0',
        "ee_submit_to_send_seconds_count 1.0",
        "ee_fill_seconds_count",
        "ee_db_write_seconds_count",
        "ee_db_query_seconds_count",
        "ee_database_up 1.0",
        'ee_api_request_seconds_count{method="POST",route="/execute"} 1.0',
        'ee_api_request_seconds_count{method="GET",route="/executions/{execution_id}"} 1.0',
        "ee_trading_halted 0.0",
        "ee_executions_in_flight 0.0",
    ):
        assert name in text.text, name
    body = summary.json()
    assert body["success_rate"] == 1.0
    assert body["slippage_pips"]["p95"] is not None
    assert body["latency_ms"]["api"]["count"] >= 2
    assert body["database_up"] is True
    for key in ("partial_fill_rate", "timeout_rate", "network_error_rate", "system_error_rate"):
        assert key in body


def test_unmatched_paths_share_one_metrics_label(
    client: ApiClient, engine: tuple[ExecutionFacade, FastAPI]
) -> None:
    for n in range(3):
        assert client.get(f"/no-such-route-{n}").status_code == 404
    text = client.get("/metrics", headers=VIEWER).text
    assert 'ee_api_request_seconds_count{method="GET",route="unmatched"} 3.0' in text


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", True),
        ("text/plain;q=0.5, application/json", True),
        ("application/json;q=0.1, text/plain", False),
        ("application/json;q=0", False),
        ("application/json, */*", True),
    ],
)
def test_accept_negotiation(accept: str | None, json_wanted: bool) -> None:
    assert prefers_json(accept) is json_wanted


# --- health, kill switch, drills -------------------------------------------------------------


def test_health_is_200_with_each_part_and_details_only_for_a_token_holder(
    client: ApiClient,
) -> None:
    up = client.get("/health")
    assert up.status_code == 200
    body = up.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True}
    assert body["trading_state"] == "ACTIVE"
    assert set(body["actors"].values()) == {"alive"}
    assert {"broker", "persistence"} <= set(body["actors"])
    assert "detail" not in body
    assert "restarts" in client.get("/health", headers=VIEWER).json()["detail"]
    assert "detail" not in client.get("/health", headers={"Authorization": "Bearer x"}).json()


def test_health_is_503_while_the_terminal_is_disconnected(
    client: ApiClient, sim: SimulatedTerminal
) -> None:
    sim.set_connected(False)

    def degraded() -> httpx.Response | None:
        response = client.get("/health")
        return response if response.status_code == 503 else None

    down = eventually(degraded, timeout=10)
    assert down is not None
    assert down.json()["status"] == "degraded"
    assert down.json()["broker"]["connected"] is False
    sim.set_connected(True)
    eventually(lambda: client.get("/health").status_code == 200, timeout=10)


def test_halted_trading_rejects_executions_until_resumed(client: ApiClient) -> None:
    halted = client.post("/halt", headers=TRADER, json={"reason": "risk limit"})
    assert halted.json()["state"] == "HALTED"
    assert client.get("/health").json()["trading_state"] == "HALTED"
    refused = _execute(client, "during-halt")
    assert refused["rejection_reason"] == "TRADING_HALTED"

    client.post("/resume", headers=ADMIN, json={"reason": "limit reviewed"})
    assert client.get("/trading-state", headers=VIEWER).json()["state"] == "ACTIVE"
    assert _execute(client, "after-resume")["status"] == "FILLED"


def test_reduce_only_by_a_trader_shown_everywhere_and_only_an_admin_resumes(
    client: ApiClient,
) -> None:
    assert client.post("/reduce-only", headers=VIEWER, json={"reason": "x"}).status_code == 403
    reducing = client.post("/reduce-only", headers=TRADER, json={"reason": "drawdown"})
    assert reducing.status_code == 200, reducing.text
    assert (reducing.json()["state"], reducing.json()["reason"]) == ("REDUCING", "drawdown")
    assert client.get("/trading-state", headers=VIEWER).json()["state"] == "REDUCING"
    assert client.get("/health").json()["trading_state"] == "REDUCING"
    metrics = client.get("/metrics", headers=VIEWER).text
    assert 'ee_trading_state{state="REDUCING"} 1.0' in metrics
    assert _execute(client, "opening-while-reducing")["status"] == "REJECTED"

    assert client.post("/resume", headers=TRADER, json={"reason": "x"}).status_code == 403
    halted = client.post("/halt", headers=TRADER, json={"reason": "news"})
    assert halted.json()["state"] == "HALTED"
    refused = client.post("/reduce-only", headers=TRADER, json={"reason": "x"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "TRADING_HALTED"
    resumed = client.post("/resume", headers=ADMIN, json={"reason": "news passed"})
    assert resumed.json()["state"] == "ACTIVE"
    assert _execute(client, "after-resume")["status"] == "FILLED"


def test_flatten_by_a_trader_closes_the_book_and_halt_can_flatten(
    client: ApiClient, sim: SimulatedTerminal
) -> None:
    _execute(client, "buy-eur")
    _execute(client, "sell-jpy", symbol="USDJPY", direction=-1)
    assert client.post("/flatten", headers=VIEWER, json={"reason": "x"}).status_code == 403

    one = client.post("/flatten", headers=TRADER, json={"reason": "news", "symbol": "USDJPY"})
    assert one.status_code == 200, one.text
    assert (one.json()["positions_closed"], one.json()["executions"][0]["symbol"]) == (
        1,
        "USDJPY",
    )
    halted = client.post("/halt", headers=TRADER, json={"reason": "eod", "flatten": True})
    assert halted.status_code == 200, halted.text
    assert halted.json()["state"] == "HALTED"
    assert halted.json()["flatten"]["positions_closed"] == 1
    assert sim.positions_get() == ()
    refused = client.post("/flatten", headers=TRADER, json={"reason": "again"})
    assert refused.status_code == 409


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"reason": "x", "risk_override": True}, "body.risk_override"),
        ({}, "body.reason"),
        ({"reason": ""}, "body.reason"),
        ({"reason": "two\nlines"}, "body.reason: must be one line without control characters"),
        ({"reason": " padded"}, "body.reason"),
        ({"reason": 42}, "body.reason"),
        ({"reason": "x" * 501}, "body.reason"),
    ],
)
def test_bad_control_bodies_are_422_naming_the_field(
    client: ApiClient, body: dict[str, object], named: str
) -> None:
    for path, headers in (("/halt", TRADER), ("/reduce-only", TRADER), ("/resume", ADMIN)):
        response = client.post(path, headers=headers, json=body)
        assert response.status_code == 422, (path, response.text)
        assert named in response.json()["message"]


def test_a_drill_runs_in_a_scratch_engine_and_reports(
    client: ApiClient, engine: tuple[ExecutionFacade, FastAPI]
) -> None:
    response = client.post("/drills/broker-crash?executions=4", headers=ADMIN, timeout=60)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["drill"] == "broker-crash"
    assert report["passed"] is True
    assert engine[0].get_execution_history() == []  # this engine is not touched


def test_unknown_drills_and_bad_counts_are_422(client: ApiClient) -> None:
    unknown = client.post("/drills/meteor-strike", headers=ADMIN)
    assert unknown.status_code == 422
    assert "path.name" in unknown.json()["message"]
    assert client.post("/drills/broker-crash?executions=1", headers=ADMIN).status_code == 422


class _NotTheSimulator:
    """A terminal that is not a SimulatedTerminal (it only forwards to one)."""

    def __init__(self) -> None:
        self._inner = SimulatedTerminal(seed=7)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_drills_are_refused_on_a_terminal_that_is_not_the_simulator(tmp_path: Path) -> None:
    with (
        engine_and_app(tmp_path, terminal=_NotTheSimulator()) as (_, app),
        ApiClient(app) as client,
    ):
        response = client.post("/drills/broker-crash", headers=ADMIN)
    assert response.status_code == 409
    assert response.json()["code"] == "DRILL_NOT_ALLOWED"


def test_wrong_methods_and_unknown_paths_use_the_error_body(client: ApiClient) -> None:
    wrong = client.get("/halt", headers=TRADER)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "METHOD_NOT_ALLOWED"
    assert client.get("/nowhere").json()["code"] == "NOT_FOUND"


def test_a_stopped_engine_answers_503(tmp_path: Path) -> None:
    with engine_and_app(tmp_path, config=ApiConfig()) as (facade, app), ApiClient(app) as client:
        facade.stop()
        response = client.post("/execute", headers=TRADER, json=rpm_message())
        assert response.status_code == 503
        assert response.json()["code"] == "ENGINE_STOPPED"


def test_execute_names_a_terminal_that_does_not_answer_not_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, item 14: with the terminal frozen, POST /execute answered 503
    PERSISTENCE_UNAVAILABLE although the database was fine. The execution is unrecorded
    because its validation waits for the terminal: the error says so."""
    import api.routes.executions as executions

    monkeypatch.setattr(executions, "_RECORD_GRACE_SECONDS", 0.5)
    sim = SimulatedTerminal(seed=7)
    config = ApiConfig(execute_wait_seconds=0.3)
    with engine_and_app(tmp_path, terminal=sim, config=config, terminal_wait_seconds=1.0) as (
        _,
        app,
    ):
        client = ApiClient(app)
        sim.set_latency(ipc=2.0)  # every call takes 2 s: the terminal answers nothing
        try:
            response = client.post("/execute", json=rpm_message("frozen"), headers=bearer("trader"))
        finally:
            sim.set_latency(ipc=0.0)
            client.close()

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "TERMINAL_DISCONNECTED", body
    assert "the simulated terminal has not answered" in body["message"]
    assert "database" not in body["message"]
