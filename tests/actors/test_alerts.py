"""Alerts pushed by the engine to EE_ALERT_WEBHOOK_URL, received by a real local HTTP server:
a halt arrives within 5 s with who and why, a failing webhook is retried, a hanging one
slows no execution, and no token or webhook secret ever leaves in a payload or a log line."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from actors.alerts import QUEUE_SIZE, AlertConfig, Alerts
from actors.metrics import EngineMetrics
from api.auth import token_identity
from core.clock import SystemClock
from core.enums import ExecutionStatus
from core.errors import PersistenceUnavailableError
from drills._harness import DatabaseOutage
from terminals.simulated import SimulatedTerminal
from tests.actors._webhook import Receiver, receiving
from tests.actors.conftest import EngineFactory, rpm
from tests.actors.test_recovery import seed
from tests.api._support import TOKEN_OF, TOKENS, ApiClient, bearer, engine_and_app
from tests.helpers import eventually

WEBHOOK_SECRET = "T0AAA/B0BBB/xoxb-webhook-path-secret"
TOKENS_SETTING = ",".join(f"{role}:{token}" for token, role in TOKENS.items())


def of_kind(hook: Receiver, kind: str) -> dict[str, Any] | None:
    return next((m for m in hook.messages if m.get("kind") == kind), None)


def outcome(metrics: EngineMetrics, name: str) -> float:
    return metrics.registry.get_sample_value("ee_alerts_total", {"outcome": name}) or 0.0


def test_a_halt_reaches_the_webhook_within_5_seconds_with_who_and_why_and_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        receiving() as hook,
        engine_and_app(
            tmp_path,
            alert_webhook_url=f"{hook.url}/services/{WEBHOOK_SECRET}",
            api_tokens=TOKENS_SETTING,
        ) as (_facade, app),
        ApiClient(app) as client,
    ):
        reason = f"NFP release (pasted {TOKEN_OF['admin']} by mistake)"
        started = time.monotonic()
        answer = client.post("/halt", headers=bearer("trader"), json={"reason": reason})
        assert answer.status_code == 200, answer.text

        message = eventually(lambda: of_kind(hook, "halt"), timeout=5.0, what="halt alert")
        assert time.monotonic() - started < 5.0

    who = token_identity("trader", TOKEN_OF["trader"])
    assert "NFP release" in message["text"]
    assert who in message["text"]
    assert message["fields"]["by"] == who
    assert message["fields"]["state"] == "HALTED"
    assert message["severity"] == "critical"
    sent = b"".join(hook.raw).decode()
    for token in TOKENS:
        assert token not in sent
    assert "[redacted]" in message["fields"]["reason"]
    assert "webhook-path-secret" not in caplog.text


def test_a_failing_webhook_is_retried_until_it_answers() -> None:
    metrics = EngineMetrics()
    with receiving(fail_first=2) as hook:
        alerts = Alerts(
            AlertConfig(urls=(f"{hook.url}/hook",), backoff=0.02),
            SystemClock(),
            on_outcome=metrics.alert_outcome,
        )
        alerts.start()
        try:
            alerts.alert("flatten", "flatten by trader:abc: end of day", by="trader:abc")
            eventually(lambda: hook.messages, timeout=5.0, what="delivered after 2 failures")
        finally:
            alerts.stop()

    assert hook.attempts == 3
    assert len(set(hook.raw)) == 1  # the same message each time
    assert hook.messages[0]["kind"] == "flatten"
    assert hook.messages[0]["fields"] == {"by": "trader:abc"}
    assert (outcome(metrics, "retried"), outcome(metrics, "sent")) == (2.0, 1.0)


def test_a_hanging_webhook_slows_no_execution_and_drops_its_oldest_alerts(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving() as hook:
        engine = make_engine(
            alert_webhook_url=f"{hook.url}/{WEBHOOK_SECRET}/hang,{hook.url}/ok",
            alert_timeout_seconds=1.0,
        )
        alerts = engine.supervisor.alerts
        alerts.alert("test", "first")
        assert hook.hanging.wait(5.0)

        started = time.monotonic()
        for i in range(2 * QUEUE_SIZE):
            alerts.alert("test", f"more {i}")
        queued = time.monotonic() - started

        durations = []
        for i in range(20):
            began = time.monotonic()
            result = engine.execute(rpm(decision_id=f"while-hanging-{i}"))
            durations.append(time.monotonic() - began)
            assert result.status is ExecutionStatus.FILLED
        assert hook.hanging.is_set()  # still held: every execution ran during the hang
        # The other URL is not held up by the hanging one.
        eventually(lambda: len(hook.messages) > QUEUE_SIZE, what="the other URL delivered")

    assert queued < 0.5, f"{2 * QUEUE_SIZE} alerts took {queued:.3f} s to queue"
    assert max(durations) < 1.0, durations
    assert outcome(engine.metrics, "dropped") >= QUEUE_SIZE + 1
    assert "webhook-path-secret" not in caplog.text


def test_a_long_disconnect_and_a_journal_failure_are_pushed(
    make_engine: EngineFactory, sim: SimulatedTerminal, tmp_path: Path
) -> None:
    with receiving() as hook:
        engine = make_engine(alert_webhook_url=f"{hook.url}/hook", disconnect_halt_seconds=0.2)
        sim.set_connected(False)
        found = eventually(lambda: of_kind(hook, "terminal_disconnected"), what="disconnect")
        assert "limit 0.2 s" in found["text"]
        halt = eventually(lambda: of_kind(hook, "halt"), what="the halt it caused")
        assert halt["fields"]["by"] == "supervisor"
        value = engine.metrics.registry.get_sample_value("ee_terminal_disconnected_seconds")
        assert value is not None
        assert value > 0
        sim.set_connected(True)
        engine.resume(by="ops")
        eventually(lambda: of_kind(hook, "resume"), what="resume alert")

        outage = DatabaseOutage(f"sqlite:///{tmp_path / 'engine.db'}", engine.supervisor.db)
        sim.set_latency(order_send=0.3)
        future = engine.submit(rpm(decision_id="during-outage"))
        eventually(
            lambda: any(
                r.status is ExecutionStatus.SUBMITTING for r in engine.get_execution_history()
            ),
            what="write-ahead committed",
        )
        outage.start()
        try:
            failure = eventually(
                lambda: of_kind(hook, "journal_write_failure"), what="journal failure alert"
            )
            with pytest.raises(PersistenceUnavailableError):
                future.get(timeout=10)
        finally:
            outage.stop()
    assert failure["severity"] == "critical"
    failures = engine.metrics.registry.get_sample_value("ee_journal_write_failures_total")
    assert failures is not None
    assert failures >= 1


def test_a_failed_reconciliation_at_start_is_pushed_and_counted(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    # A SUBMITTED execution whose broker-acknowledged order the terminal does not know.
    seed(
        f"sqlite:///{tmp_path / 'engine.db'}",
        "e-lost",
        [ExecutionStatus.SUBMITTING, ExecutionStatus.SUBMITTED],
        order_id=987_654,
    )
    with receiving() as hook:
        engine = make_engine(alert_webhook_url=f"{hook.url}/hook")
        found = eventually(lambda: of_kind(hook, "reconciliation_failed"), what="the alert")
        halt = eventually(lambda: of_kind(hook, "halt"), what="the halt")
    assert "reconciliation failed at start: e-lost" in found["text"]
    assert found["fields"] == {"executions": 1}
    assert "reconciliation failed at start" in halt["fields"]["reason"]
    failed = engine.metrics.registry.get_sample_value("ee_reconcile_failures_total")
    assert failed is not None
    assert failed >= 1  # once per execution per pass: the background passes retry it
    assert len([m for m in hook.messages if m["kind"] == "reconciliation_failed"]) == 1


def test_secrets_are_masked_and_repeating_conditions_are_not_a_flood() -> None:
    metrics = EngineMetrics()
    with receiving() as hook:
        alerts = Alerts(
            AlertConfig(urls=(f"{hook.url}/hook",)),
            SystemClock(),
            secrets=["s3cr3t-password"],
            on_outcome=metrics.alert_outcome,
        )
        alerts.start()
        try:
            alerts.alert(
                "reconciliation_failed", "db s3cr3t-password", where={"pw": "s3cr3t-password"}
            )
            alerts.alert("reconciliation_failed", "again")  # within the repeat window
            alerts.alert("halt", "Bearer abcdefgh12345 leaked", by="x")
            eventually(lambda: len(hook.messages) == 2, what="two messages")
        finally:
            alerts.stop()
    sent = b"".join(hook.raw).decode()
    assert "s3cr3t-password" not in sent
    assert "abcdefgh12345" not in sent
    assert outcome(metrics, "suppressed") == 1.0
