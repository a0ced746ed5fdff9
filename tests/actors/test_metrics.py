"""EngineMetrics: the seeds' monitoring figures, from real executions."""

from __future__ import annotations

from prometheus_client import generate_latest

from core.enums import ExecutionStatus
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm


def test_metrics_follow_fills_rejections_and_terminal_calls(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    filled = engine.execute(rpm(decision_id="a"))
    rejected = engine.execute(rpm(decision_id="b", units=95001))
    sim.inject("requote")
    engine.execute(rpm(decision_id="c"))

    summary = engine.metrics.summary()
    text = generate_latest(engine.metrics.registry).decode()

    assert filled.status is ExecutionStatus.FILLED
    assert rejected.status is ExecutionStatus.REJECTED
    assert summary["executions"] == 3
    assert summary["success_rate"] == 2 / 3
    assert summary["slippage_pips"]["average"] is not None
    assert summary["latency_ms"]["submit_to_send"]["count"] == 2
    assert summary["latency_ms"]["db_write"]["count"] > 0
    assert summary["trading_halted"] is False
    assert 'ee_terminal_calls_total{function="order_send",outcome="ok"} 3.0' in text
    assert 'ee_send_retries_total{retcode="10004"} 1.0' in text
    assert 'ee_executions_total{reason="INVALID_VOLUME",status="REJECTED"} 1.0' in text


def test_ipc_failures_count_as_network_errors(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("none_not_executed")
    engine.execute(rpm())
    assert engine.metrics.summary()["network_error_rate"] > 0
