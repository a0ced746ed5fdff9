"""An order that appears after its execution was settled NOT_SENT is corrected, loudly
(issue 11, item 1): a correction event in the journal, the projection fixed, a metric
counted and a CRITICAL log line, never a silent mismatch with the terminal."""

from __future__ import annotations

import logging

import pytest

from core.enums import ExecutionStatus, RejectionReason
from core.rules import make_client_id
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.actors.test_recovery import assert_audit_holds, events, send
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason


def test_an_order_that_appears_after_not_sent_is_corrected_loudly(
    make_engine: EngineFactory, sim: SimulatedTerminal, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine()
    sim.inject("none_not_executed")  # the terminal answers None: nothing executed, for now
    settled = engine.execute(rpm("late-1", units=50_000))
    assert (settled.status, settled.rejection_reason) == (S.REJECTED, R.NOT_SENT)

    # ...and yet an order with its client id turns up at the terminal, filled.
    with caplog.at_level(logging.CRITICAL):
        late = send(sim, make_client_id(settled.execution_id), lots=0.5)
        record = eventually(
            lambda: (
                engine.get_execution(settled.execution_id).status is S.FILLED
                and engine.get_execution(settled.execution_id)
            ),
            timeout=10,
            what="the correction",
        )
        # The projection is committed before the counter and the log line: wait for both.
        eventually(
            lambda: engine.metrics.registry.get_sample_value("ee_reconcile_corrections_total") == 1,
            what="the correction counted",
        )

    assert record.order_id == late.order
    assert record.executed_lots == pytest.approx(0.5)
    assert record.fill_price == pytest.approx(late.price)
    assert record.rejection_reason is None
    assert events(engine, settled.execution_id)[-1] == "RECONCILE_CORRECTION"
    correction = engine.repository.events_for(settled.execution_id)[-1]
    assert correction.payload["previous_reason"] == "NOT_SENT"
    assert engine.metrics.registry.get_sample_value("ee_reconcile_corrections_total") == 1
    assert any(
        r.levelno == logging.CRITICAL and settled.execution_id in r.getMessage()
        for r in caplog.records
    )
    assert_audit_holds(engine)
