"""The OrderActor's requests: how each effect that needs an answer is told, and how the
answer (or its absence) becomes the event the execution core is fed.

Every request is a tell with a `ToActor` reply, so the answer comes back as a message:
sends and commits through the `SendRequest` and `Write` messages, the other broker asks as
one generic `Call`. The failures keep the meaning they had as blocking asks: an
`ActorDeadError` means the BrokerActor never started the request (it is being replaced),
a timeout is a `pykka.Timeout` (the request's answer did not come in time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka

from actors._reply import Call, ToActor
from actors.broker import SendRequest
from actors.messages import Write
from core.enums import RetcodeClass
from core.errors import PersistenceError, PersistenceUnavailableError, ReconciliationError
from core.execution import Trading
from core.execution import effects as fx
from core.execution import events as ev
from core.records import OrderFinding, SendOutcome
from storage.ops import WriteOp

Request = (
    fx.Commit
    | fx.AskPreflight
    | fx.ReadPositions
    | fx.SendLeg
    | fx.Watch
    | fx.RemoveOrder
    | fx.CheckRemoval
    | fx.TraceSend
    | fx.QueryOrder
    | fx.FindOrder
)
REQUESTS = Request.__args__

_LOOKUP_ERRORS = (pykka.ActorDeadError, pykka.Timeout, ReconciliationError)


def write_ops(commit: fx.Commit) -> tuple[WriteOp, ...]:
    return tuple(
        WriteOp(
            execution_id=entry.execution_id,
            event_type=entry.event_type,
            payload=entry.payload,
            engine_time_us=entry.engine_time_us,
            broker_time_msc=entry.broker_time_msc,
            projection=entry.projection,
            creates=entry.creates,
        )
        for entry in commit.entries
    )


def tell(
    effect: Request,
    reply: ToActor[Any],
    *,
    broker: Callable[[], Any],
    persistence: Callable[[], pykka.ActorRef[Any]],
    me: pykka.ActorRef[Any],
) -> None:
    """Tell the request; an `ActorDeadError` (the target is not running) propagates."""
    if isinstance(effect, fx.Commit):
        persistence().tell(Write(write_ops(effect), reply))
        return
    if isinstance(effect, fx.SendLeg):
        broker().actor_ref.tell(SendRequest(effect.request, effect.deadline, reply))
        return
    method, args, kwargs = _call(effect, me)
    broker().actor_ref.tell(Call(method, args, kwargs, reply))


def _call(effect: Request, me: pykka.ActorRef[Any]) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    if isinstance(effect, fx.AskPreflight):
        return "preflight", (effect.symbol,), {}
    if isinstance(effect, fx.ReadPositions):
        return "open_positions", (effect.symbol,), {}
    if isinstance(effect, fx.Watch):
        return "watch", (effect.ticket, effect.lots, me), {}
    if isinstance(effect, fx.RemoveOrder):
        return "remove_order", (effect.ticket,), {}
    if isinstance(effect, fx.CheckRemoval):
        return "query_order", (effect.ticket, effect.lots), {}
    if isinstance(effect, fx.TraceSend):
        return "send_trace", (effect.client_id,), {}
    if isinstance(effect, fx.QueryOrder):
        return "query_order", (effect.ticket, effect.lots), {}
    assert isinstance(effect, fx.FindOrder)
    kwargs = {
        "client_id": effect.client_id,
        "symbol": effect.symbol,
        "direction": effect.direction,
        "lots": effect.lots,
        "since": effect.since,
    }
    return "find_order", (), kwargs


def answer(
    effect: Request,
    value: Any,
    error: BaseException | None,
    *,
    trading: Trading,
    held_margin: float,
) -> ev.Event | None:
    """The event for `effect`'s answer; raises where a blocking ask used to raise (the
    actor then fails, and recovery settles the execution from its last commit)."""
    if isinstance(effect, fx.Commit):
        raise AssertionError("commits are answered by the actor")  # see OrderActor._settle
    if isinstance(effect, fx.SendLeg):
        if error is None:
            return ev.SendCompleted(value, trading)
        if isinstance(error, pykka.ActorDeadError):
            outcome = SendOutcome(klass=RetcodeClass.RETRY, retcode=None, comment=str(error))
        else:
            outcome = SendOutcome(
                klass=RetcodeClass.AMBIGUOUS,
                retcode=None,
                comment=f"broker failed during the send: {type(error).__name__}: {error}",
                request={"unknown": True},
            )
        return ev.SendCompleted(outcome, trading)
    if isinstance(effect, fx.RemoveOrder):
        if error is not None:
            return ev.Removed(None, str(error))
        return ev.Removed(value) if isinstance(value, SendOutcome) else ev.Removed(None, str(value))
    if isinstance(effect, fx.CheckRemoval):
        found = value if error is None and isinstance(value, OrderFinding) else None
        return ev.RemovalChecked(found)
    if isinstance(effect, fx.TraceSend | fx.QueryOrder | fx.FindOrder):
        if isinstance(error, _LOOKUP_ERRORS):
            return ev.LookFailed(str(error))
        if error is not None:
            raise error
        return ev.Traced(value) if isinstance(effect, fx.TraceSend) else ev.LookedUp(value)
    if isinstance(effect, fx.AskPreflight):
        if isinstance(error, pykka.ActorDeadError):
            return ev.PreflightFailed(str(error), broker_gone=True)
        if isinstance(error, pykka.Timeout):
            return ev.PreflightFailed(str(error), broker_gone=False)
        if error is not None:
            raise error
        return ev.Preflighted(value, held_margin)
    if isinstance(effect, fx.ReadPositions):
        if isinstance(error, pykka.ActorDeadError | pykka.Timeout):
            return ev.PositionsRead(None)
        if error is not None:
            raise error
        return ev.PositionsRead(value)
    assert isinstance(effect, fx.Watch)
    if isinstance(error, pykka.ActorDeadError):
        return ev.WatchFailed()
    if error is not None:
        raise error
    return None


def commit_error(error: BaseException, timeout: float) -> PersistenceError:
    """A failed commit as the execution answers it (as `write_and_wait` raised it)."""
    if isinstance(error, PersistenceError):
        return error
    if isinstance(error, pykka.ActorDeadError):
        return PersistenceUnavailableError("the persistence actor is not running")
    if isinstance(error, pykka.Timeout):
        return PersistenceUnavailableError(f"no commit within {timeout} s")
    return PersistenceUnavailableError(f"the commit failed: {type(error).__name__}: {error}")


def timeout_of(effect: Request, ask_timeout: float) -> float:
    """How long the answer may take: a send waits for its deadline too (a send still in
    the BrokerActor's line is never taken for a lost one)."""
    if isinstance(effect, fx.SendLeg):
        return effect.wait + ask_timeout
    return ask_timeout


__all__ = ["REQUESTS", "Request", "answer", "commit_error", "tell", "timeout_of", "write_ops"]
