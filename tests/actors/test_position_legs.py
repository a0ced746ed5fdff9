"""Position-aware execution (issue 10, items 1-3 and the close-by-ticket): on a hedging
account an opposite trade closes open positions (FIFO, by ticket) before it opens the
remainder, each leg written ahead and reconciled on its own; de-risking is never blocked
by the margin cushion or a close-only symbol; REDUCING refuses any opening part.

Facade level, on the simulated terminal, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actors.facade import ExecutionFacade
from core.clock import utc_micros
from core.enums import ExecutionStatus, LegAction, RejectionReason
from core.models import ExecutionConfirmation, ExecutionLeg, ExecutionLog
from core.rules import choose_filling, make_client_id
from storage.db import create_db_engine
from storage.journal import replay_projection, verify_chain
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.writer import JournalWriter
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason
MAGIC = 770001
LOT = 100_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'legs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def trade(
    engine: ExecutionFacade, n: int, direction: int, lots: float, **extra: Any
) -> ExecutionConfirmation:
    message = rpm(f"dec_{n}", direction=direction, units=round(lots * LOT))
    message["decision"]["approved_trade"].update(extra)
    return engine.execute(message)


def positions(sim: SimulatedTerminal) -> list[tuple[int, float]]:
    """(type, volume) of every open position, oldest first."""
    return [(p.type, p.volume) for p in sim.positions_snapshot()]


def deal_requests(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    return [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL]


def assert_audit_holds(engine: ExecutionFacade) -> None:
    assert verify_chain(engine.supervisor.db).ok
    replayed = replay_projection(engine.supervisor.db)
    for record in engine.get_execution_history(limit=100):
        assert replayed[record.execution_id] == record.model_dump(mode="json")


# --- hedging: reduce first ---------------------------------------------------------------


def test_hedging_partial_reduce_closes_part_of_the_position(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    assert trade(engine, 1, 1, 1.0).status is S.FILLED
    (ticket,) = [p.ticket for p in sim.positions_snapshot()]

    cut = trade(engine, 2, -1, 0.5)

    assert cut.status is S.FILLED
    assert cut.executed_units == pytest.approx(50_000)
    assert [(leg.action, leg.position_ticket, leg.volume, leg.status) for leg in cut.legs] == [
        (LegAction.CLOSE, ticket, 0.5, "FILLED")
    ]
    assert cut.legs[0].order_id
    assert cut.legs[0].deal_id
    assert positions(sim) == [(0, 0.5)]  # no new short beside the long
    assert deal_requests(sim)[-1]["position"] == ticket
    stored = engine.get_execution(cut.execution_id)
    assert stored.legs == cut.legs
    assert_audit_holds(engine)


def test_hedging_full_reduce_closes_the_position(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)

    cut = trade(engine, 2, -1, 1.0)

    assert cut.status is S.FILLED
    assert [leg.action for leg in cut.legs] == [LegAction.CLOSE]
    assert positions(sim) == []


def test_hedging_reverse_closes_then_opens_the_remainder_exactly(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)

    flip = trade(engine, 2, -1, 1.5)

    assert flip.status is S.FILLED
    assert flip.executed_units == pytest.approx(150_000)
    assert [(leg.action, leg.volume) for leg in flip.legs] == [
        (LegAction.CLOSE, 1.0),
        (LegAction.OPEN, 0.5),
    ]
    assert flip.legs[0].client_id != flip.legs[1].client_id
    vwap = sum(leg.volume * (leg.fill_price or 0) for leg in flip.legs) / 1.5
    assert flip.fill_price == pytest.approx(vwap)
    assert positions(sim) == [(1, 0.5)]
    assert "position" not in deal_requests(sim)[-1]
    assert_audit_holds(engine)


def test_fifo_closes_the_oldest_position_first(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 0.3)
    trade(engine, 2, 1, 0.3)
    older, newer = (p.ticket for p in sim.positions_snapshot())

    cut = trade(engine, 3, -1, 0.5)

    assert cut.status is S.FILLED
    assert [(leg.position_ticket, leg.volume) for leg in cut.legs] == [(older, 0.3), (newer, 0.2)]
    assert [r["position"] for r in deal_requests(sim)[-2:]] == [older, newer]
    assert positions(sim) == [(0, 0.1)]


def test_hedge_policy_keeps_todays_behaviour(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(opposite_positions="hedge")
    trade(engine, 1, 1, 1.0)

    cut = trade(engine, 2, -1, 0.5)

    assert [leg.action for leg in cut.legs] == [LegAction.OPEN]
    assert positions(sim) == [(0, 1.0), (1, 0.5)]


def test_netting_account_sends_one_order_as_today(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    sim.set_account(margin_mode=0)
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)
    before = len(deal_requests(sim))

    cut = trade(engine, 2, -1, 0.5)

    assert cut.status is S.FILLED
    assert [leg.action for leg in cut.legs] == [LegAction.OPEN]
    assert len(deal_requests(sim)) == before + 1
    assert "position" not in deal_requests(sim)[-1]
    assert positions(sim) == [(0, 0.5)]


# --- de-risking is never blocked ---------------------------------------------------------


def squeeze(sim: SimulatedTerminal) -> None:
    """Leave free margin well under what 0.5 lot x the cushion would need."""
    account = sim.account_info()
    sim.set_account(balance=round(account.margin * 1.1 - account.profit, 2))


def test_margin_squeeze_refuses_opening_but_fills_reducing(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)
    squeeze(sim)

    more = trade(engine, 2, 1, 0.5)
    cut = trade(engine, 3, -1, 0.5)

    assert (more.status, more.rejection_reason) == (S.REJECTED, R.MARGIN_INSUFFICIENT)
    assert cut.status is S.FILLED
    assert positions(sim) == [(0, 0.5)]


def test_margin_squeeze_on_netting_fills_the_reduction(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    sim.set_account(margin_mode=0)
    engine = make_engine()
    trade(engine, 1, 1, 1.0)
    squeeze(sim)

    assert trade(engine, 2, 1, 0.5).rejection_reason is R.MARGIN_INSUFFICIENT
    assert trade(engine, 3, -1, 0.5).status is S.FILLED


def test_close_only_symbol_refuses_opening_but_fills_reducing(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    # The engine caches the symbol's static fields: the mode is set before it starts.
    _send(sim, "opened-before-close-only", 1.0, 1)
    sim.set_symbol("EURUSD", trade_mode=3)
    engine = make_engine(db_url)

    more = trade(engine, 2, 1, 0.5)
    flip = trade(engine, 3, -1, 1.5)  # its opening remainder is refused: nothing is sent
    sent = len(deal_requests(sim))
    cut = trade(engine, 4, -1, 0.5)

    assert (more.status, more.rejection_reason) == (S.REJECTED, R.SYMBOL_NOT_TRADABLE)
    assert (flip.status, flip.rejection_reason) == (S.REJECTED, R.SYMBOL_NOT_TRADABLE)
    assert cut.status is S.FILLED
    assert len(deal_requests(sim)) == sent + 1
    assert positions(sim) == [(0, 0.5)]


def test_reducing_state_refuses_any_opening_part_with_nothing_sent(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)
    engine.switch.set(False, "risk off", reducing=True)
    sent = len(deal_requests(sim))

    more = trade(engine, 2, 1, 0.1)
    flip = trade(engine, 3, -1, 1.5)
    cut = trade(engine, 4, -1, 0.4)

    assert (more.status, more.rejection_reason) == (S.REJECTED, R.REDUCE_ONLY)
    assert (flip.status, flip.rejection_reason) == (S.REJECTED, R.REDUCE_ONLY)
    assert cut.status is S.FILLED
    assert len(deal_requests(sim)) == sent + 1
    assert positions(sim) == [(0, 0.6)]


# --- close by ticket ---------------------------------------------------------------------


def test_position_ticket_closes_exactly_that_position(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 0.3)
    trade(engine, 2, 1, 0.3)
    older, newer = (p.ticket for p in sim.positions_snapshot())

    closed = trade(engine, 3, -1, 0.3, position_ticket=newer)

    assert closed.status is S.FILLED
    assert [(leg.action, leg.position_ticket) for leg in closed.legs] == [(LegAction.CLOSE, newer)]
    assert [p.ticket for p in sim.positions_snapshot()] == [older]


def test_position_ticket_refusals_send_nothing(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    trade(engine, 1, 1, 0.3)
    (ticket,) = [p.ticket for p in sim.positions_snapshot()]
    sent = len(deal_requests(sim))

    same_side = trade(engine, 2, 1, 0.3, position_ticket=ticket)
    too_much = trade(engine, 3, -1, 0.5, position_ticket=ticket)
    gone = trade(engine, 4, -1, 0.3, position_ticket=ticket + 999)

    assert same_side.rejection_reason is R.INVALID_INPUT
    assert "opposite" in (same_side.rejection_details or "")
    assert too_much.rejection_reason is R.INVALID_VOLUME
    assert gone.rejection_reason is R.INVALID_INPUT
    assert "not open" in (gone.rejection_details or "")
    assert len(deal_requests(sim)) == sent
    assert positions(sim) == [(0, 0.3)]


# --- an ambiguous closing leg --------------------------------------------------------------


@pytest.mark.parametrize("fault", ["timeout_executed", "none_executed"])
def test_ambiguous_close_that_executed_is_reconciled_not_resent(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal, fault: str
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)
    sim.inject(fault)
    sent = len(deal_requests(sim))

    cut = trade(engine, 2, -1, 0.5)

    assert cut.status is S.FILLED
    assert cut.legs[0].status == "FILLED"
    assert len(deal_requests(sim)) == sent + 1  # 0 duplicates
    assert positions(sim) == [(0, 0.5)]  # and no new position


def test_ambiguous_close_that_did_not_execute_is_not_sent(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url)
    trade(engine, 1, 1, 1.0)
    sim.inject("none_not_executed")
    sent = len(deal_requests(sim))

    cut = trade(engine, 2, -1, 0.5)

    assert (cut.status, cut.rejection_reason) == (S.REJECTED, R.NOT_SENT)
    assert len(deal_requests(sim)) == sent + 1
    assert positions(sim) == [(0, 1.0)]


def test_ambiguous_open_leg_after_a_close_keeps_the_close(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    trade(engine, 1, 1, 1.0)
    sim.inject("done_no_deal")  # the close: executed, its deal found by the poll
    sim.inject("none_not_executed")  # the opening leg: lost on the way, never executed

    flip = trade(engine, 2, -1, 1.5)

    assert flip.status is S.PARTIALLY_FILLED
    assert flip.rejection_reason is R.NOT_SENT
    assert [leg.status for leg in flip.legs] == ["FILLED", "NOT_FILLED"]
    assert flip.executed_units == pytest.approx(100_000)
    assert positions(sim) == []


# --- crash between two legs ------------------------------------------------------------------


def _send(sim: SimulatedTerminal, comment: str, lots: float, direction: int, **extra: Any) -> Any:
    sim.initialize()
    info = sim.symbol_info("EURUSD")
    tick = sim.symbol_info_tick("EURUSD")
    result = sim.order_send(
        {
            "action": sim.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": lots,
            "type": sim.ORDER_TYPE_BUY if direction > 0 else sim.ORDER_TYPE_SELL,
            "price": tick.ask if direction > 0 else tick.bid,
            "deviation": 20,
            "magic": MAGIC,
            "comment": comment,
            "type_time": sim.ORDER_TIME_GTC,
            "type_filling": choose_filling(info.filling_mode, info.trade_exemode),
            **extra,  # a position ticket to close, another magic
        }
    )
    assert result is not None
    assert result.retcode == 10009
    return result


def _seed_flip(url: str, sim: SimulatedTerminal, second: str) -> tuple[ExecutionLog, Any]:
    """A dead engine's flip of a 0.5 long into a 0.3 short: its close leg filled; the open
    leg was `second` (SUBMITTING: written ahead, maybe sent; PLANNED: never reached)."""
    opened = _send(sim, "opened-by-an-earlier-run", 0.5, 1)
    (position,) = sim.positions_snapshot()
    base = make_client_id("flip")
    close_id, open_id = base, make_client_id("flip/leg1")
    closed = _send(sim, close_id, 0.5, -1, position=position.ticket)
    assert opened.order != closed.order
    at = datetime.now(UTC) - timedelta(seconds=60)
    legs = (
        ExecutionLeg(
            index=0,
            action=LegAction.CLOSE,
            volume=0.5,
            client_id=close_id,
            position_ticket=position.ticket,
            status="FILLED",
            filled_volume=0.5,
            fill_price=closed.price,
            order_id=closed.order,
            deal_id=closed.deal,
        ),
        ExecutionLeg(index=1, action=LegAction.OPEN, volume=0.3, client_id=open_id, status=second),
    )
    record = ExecutionLog(
        execution_id="flip",
        request_id="req_flip",
        rpm_decision_id="dec_flip",
        client_id=base,
        symbol="EURUSD",
        direction=-1,
        intended_units=80_000,
        intended_lots=0.8,
        magic=MAGIC,
        engine_version="test",
        rpm_fingerprint="0" * 64,
        rpm_payload={},
        created_at=at,
        updated_at=at,
    )
    path = [
        (record, "EXECUTION_CREATED"),
        (record.evolve(status=S.SUBMITTING, attempts=1, submitted_at=at, legs=legs), "SUBMITTING"),
    ]
    if second == "SUBMITTING":
        path.append((path[-1][0].evolve(status=S.SUBMITTED), "LEG_FILLED"))
        path.append((path[-1][0].evolve(status=S.SUBMITTING, attempts=2), "SUBMITTING"))
    upgrade(url)
    db = create_db_engine(url)
    try:
        JournalWriter(db).write_batch(
            [
                WriteOp(
                    execution_id="flip",
                    event_type=event,
                    payload={"status": rec.status.value},
                    engine_time_us=utc_micros(rec.updated_at),
                    projection=rec,
                    creates=event == "EXECUTION_CREATED",
                )
                for rec, event in path
            ]
        )
    finally:
        db.dispose()
    return path[-1][0], closed


def test_crash_after_the_open_leg_was_sent_settles_each_leg_once(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    _, closed = _seed_flip(db_url, sim, "SUBMITTING")
    opened = _send(sim, make_client_id("flip/leg1"), 0.3, -1)  # it did go out before the crash
    sent = len(deal_requests(sim))

    engine = make_engine(db_url)

    record = eventually(
        lambda: engine.get_execution("flip").is_final and engine.get_execution("flip")
    )
    assert record.status is S.FILLED
    assert record.executed_lots == pytest.approx(0.8)
    assert [leg.status for leg in record.legs] == ["FILLED", "FILLED"]
    assert record.legs[1].order_id == opened.order
    vwap = (0.5 * closed.price + 0.3 * opened.price) / 0.8
    assert record.fill_price == pytest.approx(vwap)
    assert len(deal_requests(sim)) == sent  # nothing resent
    assert positions(sim) == [(1, 0.3)]
    assert_audit_holds(engine)


@pytest.mark.parametrize("second", ["SUBMITTING", "PLANNED"])
def test_crash_before_the_open_leg_went_out_keeps_the_close_and_sends_nothing(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal, second: str
) -> None:
    _seed_flip(db_url, sim, second)
    sent = len(deal_requests(sim))

    engine = make_engine(db_url)

    record = eventually(
        lambda: engine.get_execution("flip").is_final and engine.get_execution("flip")
    )
    assert (record.status, record.rejection_reason) == (S.PARTIALLY_FILLED, R.NOT_SENT)
    assert record.executed_lots == pytest.approx(0.5)
    assert [leg.status for leg in record.legs] == ["FILLED", "NOT_SENT"]
    assert "not sent" in (record.rejection_details or "")
    assert len(deal_requests(sim)) == sent
    assert positions(sim) == []
    assert_audit_holds(engine)


def test_stops_ride_on_the_opening_leg_only(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    trade(engine, 1, 1, 1.0)
    sim.initialize()
    stop = round(sim.symbol_info_tick("EURUSD").bid + 0.0100, 5)

    flip = trade(engine, 2, -1, 1.5, stop_loss=stop)

    assert flip.status is S.FILLED
    close, opening = deal_requests(sim)[-2:]
    assert "sl" not in close
    assert "position" in close
    assert opening["sl"] == stop
    (position,) = sim.positions_snapshot()
    assert position.sl == stop


class _StalePositions:
    """The simulator, but `positions_get` also lists a position that is already gone (the
    broker's stop closed it after the read): a hand-written fake around the real thing."""

    def __init__(self, sim: SimulatedTerminal, phantom: Any) -> None:
        self._sim = sim
        self._phantom = phantom

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)

    def positions_get(self, **kwargs: Any) -> Any:
        return (*(self._sim.positions_get(**kwargs) or ()), self._phantom)


def test_close_of_a_position_already_gone_is_benign_and_opens_nothing(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    _send(sim, "opened-elsewhere", 0.3, 1)
    (position,) = sim.positions_snapshot()
    _send(sim, "closed-by-hand", 0.3, -1, position=position.ticket, magic=0)
    engine = make_engine(terminal=_StalePositions(sim, position))
    sent = len(deal_requests(sim))

    cut = trade(engine, 1, -1, 0.3)

    assert (cut.status, cut.rejection_reason) == (S.REJECTED, R.BROKER_REJECTED)
    assert "already closed (10036)" in (cut.rejection_details or "")
    assert [leg.status for leg in cut.legs] == ["NOT_FILLED"]
    assert len(deal_requests(sim)) == sent + 1  # one close attempt, never resent
    assert positions(sim) == []  # nothing opened


def test_concurrent_reductions_close_different_positions(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(db_url, cache_tick_seconds=5.0)  # both plans read the same positions
    for n in range(3):
        trade(engine, n, 1, 0.3)
    sent = len(deal_requests(sim))

    futures = [engine.submit(rpm(f"cut_{n}", direction=-1, units=30_000)) for n in range(3)]
    cuts = [future.get(timeout=30) for future in futures]

    assert [c.status for c in cuts] == [S.FILLED] * 3
    closed = sorted(c.legs[0].position_ticket or 0 for c in cuts)
    assert len(set(closed)) == 3  # never the same position twice (no 10036)
    assert len(deal_requests(sim)) == sent + 3
    assert positions(sim) == []


def test_us_fifo_account_with_hedging_prohibited_reduces_legally(
    db_url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    sim.set_account(fifo_close=True)
    sim.set_hedge_prohibited(True)
    engine = make_engine(db_url)
    trade(engine, 1, 1, 0.3)
    trade(engine, 2, 1, 0.3)

    cut = trade(engine, 3, -1, 0.5)  # the hedge policy would get 10046 here
    rest = trade(engine, 4, -1, 0.4)  # closes the last 0.1, then opens 0.3 short

    assert cut.status is S.FILLED
    assert rest.status is S.FILLED
    assert [leg.action for leg in rest.legs] == [LegAction.CLOSE, LegAction.OPEN]
    assert positions(sim) == [(1, 0.3)]
