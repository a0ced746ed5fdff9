"""A synchronous world around `core.execution.step`, for table tests: no threads, no
database, no terminal. Asks are answered from a `World` script; timers only record what
was scheduled, and a test fires them (`Driver.fire`) at a time it chooses."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.enums import RetcodeClass
from core.execution import Execution, Job, Now, OrderConfig, Stage, Trading, start, step
from core.execution import effects as fx
from core.execution import events as ev
from core.models import ExecutionConfirmation, RPMOutput
from core.records import Deal, OrderFinding, Preflight, Quote, SendOutcome, SendTrace, SymbolSpec
from core.rules import margin_check
from core.rules.legs import plan_trade
from core.rules.reconcile import SendFate

EURUSD = SymbolSpec(
    name="EURUSD",
    digits=5,
    point=0.00001,
    trade_contract_size=100_000.0,
    volume_min=0.01,
    volume_max=100.0,
    volume_step=0.01,
    trade_mode=4,
    trade_exemode=2,
    filling_mode=3,
    visible=True,
)
QUOTE = Quote(bid=1.10000, ask=1.10010, time_msc=1_700_000_000_000, age_seconds=0.1)
PREFLIGHT = Preflight(
    ready=True, spec=EURUSD, quote=QUOTE, margin_per_lot=1_000.0, margin_free=100_000.0
)
CFG = OrderConfig(engine_version="test", order_timeout=60.0, max_retries=3)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def rpm(**trade: Any) -> RPMOutput:
    status = trade.pop("status", "APPROVED")
    halted = trade.pop("halted", False)
    approved: dict[str, Any] = {
        "symbol": "EURUSD",
        "direction": 1,
        "position_units": 95_000,
        "confidence_score": 0.78,
        "atr": 0.0015,
        **trade,
    }
    return RPMOutput.model_validate(
        {
            "decision": {"status": status, "decision_id": "d1", "approved_trade": approved},
            "portfolio_state": {"trading_halted": halted, "open_positions": 0},
            "rpm_version": "1.0.0",
            "model_version": "2.3.1",
            "timestamp": "2025-12-23T14:30:00Z",
        }
    )


def done(volume: float = 0.95, price: float = 1.10012) -> SendOutcome:
    return SendOutcome(
        klass=RetcodeClass.SUCCESS,
        retcode=10009,
        order=501,
        deal=601,
        volume=volume,
        price=price,
        request={"volume": volume},
    )


def placed(order: int = 501) -> SendOutcome:
    return SendOutcome(
        klass=RetcodeClass.SUCCESS, retcode=10008, order=order, request={"volume": 0.95}
    )


def outcome(klass: RetcodeClass, retcode: int | None, **kw: Any) -> SendOutcome:
    return SendOutcome(klass=klass, retcode=retcode, request=kw.pop("request", {"x": 1}), **kw)


def finding(
    filled: float, *, open_: bool = False, state: int | None = 4, ticket: int = 501
) -> OrderFinding:
    deals = (
        Deal(ticket=601, order=ticket, volume=filled, price=1.10012, time_msc=1, position_id=9),
    )
    return OrderFinding(
        ticket=ticket,
        found=True,
        open=open_,
        state=state,
        volume_initial=0.95,
        filled_volume=filled,
        vwap=1.10012 if filled else None,
        deals=deals if filled else (),
        time_msc=1_700_000_000_500,
    )


@dataclass
class World:
    """How the world answers; each list is consumed in order (the last answer repeats)."""

    preflight: list[Preflight | str] = field(default_factory=lambda: [PREFLIGHT])
    """A string is a failed preflight: "gone:..." a broker being replaced, else a timeout."""
    outcomes: list[SendOutcome] = field(default_factory=lambda: [done()])
    trading: Trading = field(default_factory=Trading)
    held_margin: float = 0.0
    commit_fails: set[str] = field(default_factory=set)
    """Event types whose commit fails (answered with `CommitFailed`)."""
    trace: SendTrace = field(
        default_factory=lambda: SendTrace(SendFate.ANSWERED, 1, 5, seq=3, started_mono=0.0)
    )
    lookups: list[OrderFinding | str | None] = field(default_factory=lambda: [None])
    after_removal: OrderFinding | None = None


def _take(queue: list[Any]) -> Any:
    return queue.pop(0) if len(queue) > 1 else queue[0]


class Driver:
    def __init__(
        self, world: World | None = None, cfg: OrderConfig = CFG, rpm_: RPMOutput | None = None
    ) -> None:
        self.world = world or World()
        self.cfg = cfg
        self.mono = 0.0
        job = Job("e1", "r1", "EE-c1", rpm_ or rpm(), "fp", {})
        self.state: Execution = start(job, born=0.0)
        self.effects: list[fx.Effect] = []
        self.journal: list[str] = []
        self.scheduled: list[fx.Schedule | fx.ArmTimeout] = []
        self.answer: ExecutionConfirmation | Exception | None = None
        self.inbox: deque[ev.Event] = deque()

    @property
    def now(self) -> Now:
        return Now(T0 + timedelta(seconds=self.mono), self.mono)

    def sends(self) -> list[fx.SendLeg]:
        return [e for e in self.effects if isinstance(e, fx.SendLeg)]

    def run(self) -> Driver:
        """Create the execution and run it until it waits on nothing but timers."""
        return self.tell(ev.StageDue(Stage.CREATE, self.world.trading))

    def fire(self, stage: Stage, after: float = 0.0) -> Driver:
        self.mono += after
        return self.tell(ev.StageDue(stage, self.world.trading))

    def tell(self, event: ev.Event) -> Driver:
        self.inbox.append(event)
        while self.inbox:
            self.state, effects = step(self.state, self.inbox.popleft(), self.now, self.cfg)
            self.effects.extend(effects)
            for effect in effects:
                if not self.perform(effect):
                    break
        return self

    def perform(self, effect: fx.Effect) -> bool:
        """Carry out `effect`; False when it was a failed commit (drop the rest)."""
        w = self.world
        put = self.inbox.append
        if isinstance(effect, fx.Commit):
            types = [entry.event_type for entry in effect.entries]
            if w.commit_fails & set(types):
                if effect.answer_failure:
                    put(ev.CommitFailed(RuntimeError("database down")))
                return False
            self.journal.extend(types)
            if effect.ack is not None:
                put(effect.ack)
        elif isinstance(effect, fx.Next):
            put(ev.StageDue(effect.stage, w.trading))
        elif isinstance(effect, fx.Schedule | fx.ArmTimeout):
            self.scheduled.append(effect)
        elif isinstance(effect, fx.AskPreflight):
            pre = _take(w.preflight)
            if isinstance(pre, str):
                put(ev.PreflightFailed(pre, broker_gone=pre.startswith("gone")))
            else:
                put(ev.Preflighted(pre, w.held_margin))
        elif isinstance(effect, fx.ReadPositions):
            put(ev.PositionsRead((self.mono, ())))
        elif isinstance(effect, fx.ClaimLegs):
            plan = plan_trade(
                effect.pre,
                effect.trade,
                effect.lots,
                magic=effect.magic,
                scope=effect.scope,
                policy=effect.policy,
            )
            put(ev.Planned(plan, w.trading))
        elif isinstance(effect, fx.HoldMargin):
            refusal = margin_check(
                margin_required=effect.amount,
                free_margin=effect.free,
                reserved_margin=w.held_margin,
                cushion=effect.cushion,
            )
            put(ev.MarginHeld(refusal))
        elif isinstance(effect, fx.SendLeg):
            put(ev.SendCompleted(_take(w.outcomes), w.trading))
        elif isinstance(effect, fx.TraceSend):
            put(ev.Traced(w.trace))
        elif isinstance(effect, fx.QueryOrder | fx.FindOrder):
            found = _take(w.lookups)
            put(ev.LookFailed(found) if isinstance(found, str) else ev.LookedUp(found))
        elif isinstance(effect, fx.RemoveOrder):
            put(ev.Removed(outcome(RetcodeClass.SUCCESS, 10009)))
        elif isinstance(effect, fx.CheckRemoval):
            put(ev.RemovalChecked(w.after_removal))
        elif isinstance(effect, fx.Finish):
            self.answer = effect.log.to_confirmation()
        elif isinstance(effect, fx.Refuse):
            self.answer = effect.confirmation
        elif isinstance(effect, fx.Fail):
            self.answer = effect.error
        return True
