"""Properties of `core.execution.step` over arbitrary event sequences (hypothesis).

The world answers every effect (with a drawn answer), in any order, and an adversary mixes
in stages, fills, halts, lookups and duplicated or stale messages. The world is honest in
one respect only, as the shell is: an `IntentCommitted` ack is delivered only for a commit
that carried it and succeeded. Then, whatever the order: no `SendLeg` without that
acknowledged write-ahead of its leg and attempt, no leg attempt sent twice, nothing sent
again for a leg once its send came back ambiguous, and nothing sent after a halt was
handled.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.enums import RejectionReason, RetcodeClass
from core.execution import Phase, Stage, Trading, step
from core.execution import effects as fx
from core.execution import events as ev
from core.records import SendTrace
from core.rules import Denied
from core.rules.legs import plan_trade
from core.rules.reconcile import SendFate
from tests.core._execution_driver import PREFLIGHT, QUOTE, Driver, done, finding, outcome, placed

K = RetcodeClass

_OUTCOMES = st.sampled_from(
    [
        done(),
        done(volume=0.5),
        placed(),
        outcome(K.RETRY, 10004),
        outcome(K.RETRY, 10004, request={}),
        outcome(K.AMBIGUOUS, None),
        outcome(K.FINAL, 10006),
        outcome(K.FINAL, 10036),
        outcome(K.FINAL, None, halted=True, request={}),
        outcome(K.RETRY, None, not_sent=True),
    ]
)
_FINDINGS = st.sampled_from(
    [
        None,
        finding(0.95),
        finding(0.5),
        finding(0.5, open_=True),
        finding(0.0, open_=True),
        finding(0.0, state=6),
        finding(0.0, state=2),
        replace(finding(0.0), found=False),
    ]
)
_PREFLIGHTS = st.sampled_from(
    [
        PREFLIGHT,
        PREFLIGHT,
        replace(PREFLIGHT, ready=False),
        replace(PREFLIGHT, quote=replace(QUOTE, age_seconds=99.0)),
    ]
)
_TRADING = st.sampled_from([Trading(), Trading(), Trading(halted=True), Trading(reducing=True)])
_TRACES = st.builds(
    SendTrace,
    st.sampled_from(list(SendFate)),
    st.just(1),
    st.integers(0, 9),
    st.integers(0, 9),
    st.just(0.0),
)
_NOISE = st.one_of(
    st.builds(ev.StageDue, st.sampled_from(list(Stage)), _TRADING),
    st.builds(ev.SendCompleted, _OUTCOMES, _TRADING),
    st.builds(ev.FillFound, _FINDINGS.filter(lambda f: f is not None)),
    st.builds(ev.Halted, st.just("halt")),
    st.just(ev.WatchFailed()),
    st.just(ev.WatchLost()),
    st.builds(ev.Traced, _TRACES),
    st.builds(ev.LookedUp, _FINDINGS),
    st.just(ev.LookFailed("down")),
    st.just(ev.MarginHeld(Denied(RejectionReason.MARGIN_INSUFFICIENT, "m"))),
    st.just(ev.OwnFailure("bug")),
)
_ACTIONS = st.sampled_from(["answer"] * 5 + ["resolve"] * 2 + ["noise", "duplicate", "clock"])


def _answer(d: Driver, effect: fx.Effect, data: st.DataObject) -> ev.Event | None:
    """The world's answer to `effect` (drawn), or None when it has none."""
    if isinstance(effect, fx.Next | fx.Schedule):
        return ev.StageDue(effect.stage, data.draw(_TRADING))
    if isinstance(effect, fx.ArmTimeout):
        return ev.StageDue(Stage.TIMEOUT, Trading())
    if isinstance(effect, fx.AskPreflight):
        return ev.Preflighted(data.draw(_PREFLIGHTS), 0.0)
    if isinstance(effect, fx.ReadPositions):
        return ev.PositionsRead(None)
    if isinstance(effect, fx.ClaimLegs):
        plan = plan_trade(
            effect.pre,
            effect.trade,
            effect.lots,
            magic=effect.magic,
            scope=effect.scope,
            policy=effect.policy,
        )
        return ev.Planned(plan, data.draw(_TRADING))
    if isinstance(effect, fx.HoldMargin):
        return ev.MarginHeld(None)
    if isinstance(effect, fx.SendLeg):
        return ev.SendCompleted(data.draw(_OUTCOMES), data.draw(_TRADING))
    if isinstance(effect, fx.RemoveOrder):
        return ev.Removed(outcome(K.SUCCESS, 10009))
    if isinstance(effect, fx.CheckRemoval):
        return ev.RemovalChecked(data.draw(_FINDINGS))
    if isinstance(effect, fx.TraceSend):
        return ev.Traced(data.draw(_TRACES))
    if isinstance(effect, fx.QueryOrder | fx.FindOrder):
        return ev.LookedUp(data.draw(_FINDINGS))
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_send_without_an_acknowledged_write_ahead_and_never_twice(
    data: st.DataObject,
) -> None:
    d = Driver()
    answers: list[ev.Event] = [ev.StageDue(Stage.CREATE)]
    pending: list[fx.Commit] = []
    acked: list[ev.IntentCommitted] = []
    sent: set[tuple[int, int]] = set()
    unclear_legs: set[int] = set()
    halted = False
    for _ in range(data.draw(st.integers(10, 80))):
        if d.state.done:
            break
        action = data.draw(_ACTIONS)
        event: ev.Event
        if action == "answer" and answers:
            # Answers arrive in any order, as told replies from several actors may.
            event = answers.pop(data.draw(st.integers(0, len(answers) - 1)))
        elif action == "resolve" and pending:
            commit = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
            if data.draw(st.booleans()) or not commit.answer_failure:
                if commit.ack is None:
                    continue
                acked.append(commit.ack)
                event = commit.ack
            else:
                event = ev.CommitFailed(RuntimeError("db"))
        elif action == "duplicate" and acked:
            event = data.draw(st.sampled_from(acked))
        elif action == "clock":
            d.mono += data.draw(st.sampled_from([1.0, 40.0]))
            continue
        else:
            event = data.draw(_NOISE)
        was_sending = d.state.phase is Phase.AWAITING_SEND
        leg = d.state.leg
        d.state, effects = step(d.state, event, d.now, d.cfg)
        if isinstance(event, ev.Halted) and d.state.halt_reason is not None:
            halted = True
        unclear = isinstance(event, ev.SendCompleted) and (
            event.outcome.klass is K.AMBIGUOUS or event.outcome.retcode == 10036
        )
        if unclear and was_sending:
            unclear_legs.add(leg)
        for effect in effects:
            if isinstance(effect, fx.SendLeg):
                key = (effect.leg, effect.attempt)
                assert ev.IntentCommitted(*key) in acked, f"sent {key} without its write-ahead"
                assert key not in sent, f"sent {key} twice"
                assert effect.leg not in unclear_legs, f"resent leg {effect.leg} after ambiguity"
                assert not halted, "sent after a halt was handled"
                sent.add(key)
            if isinstance(effect, fx.Commit):
                pending.append(effect)
            else:
                answer = _answer(d, effect, data)
                if answer is not None:
                    answers.append(answer)
