"""The send line (`SendLine`): the BrokerActor's queue of told sends, one per turn.

A send is told (`SendRequest`), not asked, and waits in this line; each `_SendTurn` the
actor tells itself starts one and puts the next turn at the back of the inbox, so the rest
of what the actor is asked (a heartbeat, a preflight, the shared poll) is answered between
two sends, not after the whole line. While the terminal is down the line holds, up to
`terminal_wait`, then every send in it is answered NOT_SENT; so is every send not yet
started when the actor stops or is replaced (nothing of them reached `order_send`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors._broker_config import BrokerConfig
from actors._order_send import not_sent
from actors._reply import Settable
from actors._scheduler import Scheduler
from actors._send_ledger import SendLedger
from actors._terminal_link import IPC_ERRORS, TerminalLink
from core.enums import RetcodeClass
from core.models import ExecutionRequest
from core.records import SendOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send told to the BrokerActor (`broker_ref.tell(SendRequest(...))`), answered on
    `reply`.

    request: the order. not_after: the engine's monotonic time after which it must not
    be started (see `OrderSender.place_order`). reply: set to the `SendOutcome`, or failed with
    `pykka.ActorDeadError` when the actor stopped before starting it (nothing was sent).
    """

    request: ExecutionRequest
    not_after: float | None
    reply: Settable[SendOutcome]


class _SendTurn:
    """Start the next queued send (told by the actor to itself, one at a time)."""

    __slots__ = ()


PlaceOrder = Callable[[ExecutionRequest, float | None], SendOutcome]
"""Sends one order now (`BrokerActor.place_order`)."""


class SendLine:
    """The queue of sends and whose turn it is; on the actor's thread, except the
    `answer_unstarted` / `close` drains, which any thread may call."""

    def __init__(
        self,
        link: TerminalLink,
        config: BrokerConfig,
        ledger: SendLedger,
        place_order: PlaceOrder,
        actor: pykka.ActorRef[Any],
        scheduler: Scheduler,
        take_from_inbox: Callable[[], list[SendRequest]],
    ) -> None:
        self._link = link
        self._terminal_wait = config.terminal_wait
        self._ledger = ledger
        self._place_order = place_order
        self._actor = actor
        self._scheduler = scheduler
        self._take_from_inbox = take_from_inbox
        self._lock = threading.Lock()
        """Guards `_sends` and the link's `closed`: other threads answer unstarted sends too."""
        self._sends: deque[SendRequest] = deque()
        self._turn_queued = False

    def __len__(self) -> int:
        return len(self._sends)

    # --- on the actor's thread ------------------------------------------------------------

    def take(self, message: SendRequest) -> None:
        """A send told to the actor: answered NOT_SENT at once, or queued for its turn."""
        refusal = self._refusal()
        if refusal:
            answer(message, not_sent(refusal))
            return
        with self._lock:
            closed = self._link.closed
            if not closed:
                self._ledger.queued(message.request.client_id)
                self._sends.append(message)
        if closed:
            answer(message, not_sent(closed))
        self._queue_turn()

    def turn(self) -> None:
        """This send turn's message came: start one queued send."""
        self._turn_queued = False
        self._send_next()

    def drop_queued(self) -> None:
        """The actor is stopping: the sends it never started are answered as not sent.

        That is the ones in its own line and the ones still in its inbox: Pykka drops the
        tells left in a stopped actor's inbox without a word, and their senders would wait
        out their whole order timeout for an answer that never comes.
        """
        with self._lock:
            unsent = [*self._sends, *self._take_from_inbox()]
            self._sends.clear()
        for queued in unsent:
            self._ledger.not_started(queued.request.client_id)
            error = pykka.ActorDeadError("the broker stopped before this order was sent")
            queued.reply.set_exception(exc_info=(type(error), error, None))

    def _queue_turn(self, delay: float = 0.0) -> None:
        if self._sends and not self._turn_queued:
            self._turn_queued = True
            if delay > 0:
                self._scheduler.tell_later(delay, self._actor, _SendTurn())
            else:
                self._actor.tell(_SendTurn())

    def _refusal(self) -> str:
        """Why a send must be answered NOT_SENT without waiting its turn, or ""."""
        link = self._link
        if link.closed:
            return link.closed
        down = link.watch.down_for()
        if (
            not link.connected
            and down is not None
            and down >= self._terminal_wait
            and not link.watch.may_try()
        ):
            return self._down_reason()
        return ""

    def _down_reason(self) -> str:
        return (
            f"not sent: {self._link.watch.stall_text()}; a send waits at most "
            f"{self._terminal_wait:g} s (EE_TERMINAL_WAIT_SECONDS)"
        )

    def _hold_while_down(self) -> bool:
        """The link is down: keep the line waiting for the terminal (True), up to
        `terminal_wait`, after which the whole line is answered NOT_SENT."""
        link = self._link
        down = link.watch.down_for()
        if link.connected or down is None:
            return False
        if down >= self._terminal_wait:
            self.answer_unstarted(self._down_reason())
            return True
        if link.watch.may_try():
            return False  # try the send: its own reconnect decides
        wait = min(link.watch.retry_in(), self._terminal_wait - down)
        self._queue_turn(max(wait, 0.01))
        return True

    def _send_next(self) -> None:
        """One queued send, then the next one's turn goes to the back of the inbox."""
        if not self._sends or self._hold_while_down():
            return
        with self._lock:
            if not self._sends:
                return
            queued = self._sends.popleft()
        client_id = queued.request.client_id
        try:
            outcome = self._place_order(queued.request, queued.not_after)
        except Exception as exc:
            # As an ask would: the error goes to the caller, and the actor carries on.
            self._ledger.not_started(client_id)  # unless it got as far as order_send
            queued.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            self._queue_turn()
            return
        if _link_down_before_send(outcome) and not self._link.connected:
            # Nothing left this process: wait for the terminal in the line, not in a retry.
            with self._lock:
                self._sends.appendleft(queued)
            if not self._hold_while_down():
                self._queue_turn(0.01)
            return
        if not outcome.sent:
            self._ledger.not_started(client_id)
        answer(queued, outcome)
        self._queue_turn()

    # --- from any thread --------------------------------------------------------------------

    def close(self, reason: str) -> int:
        """The link never calls the terminal again, and every send not started is answered
        now as not sent, for `reason`. Returns how many."""
        with self._lock:
            self._link.closed = reason or "this broker was closed"
        return self.answer_unstarted(self._link.closed)

    def answer_unstarted(self, reason: str) -> int:
        """Answer every send not yet started (in the line and still in the inbox) as not
        sent, for `reason`; the send in progress, if any, is not touched."""
        with self._lock:
            unsent = [*self._sends, *self._take_from_inbox()]
            self._sends.clear()
        for queued in unsent:
            answer(queued, not_sent(reason))
        if unsent:
            log.warning("%d queued send(s) answered NOT_SENT: %s", len(unsent), reason)
        return len(unsent)


def answer(queued: SendRequest, outcome: SendOutcome) -> None:
    try:
        queued.reply.set(outcome)
    except queue.Full:
        return  # answered already (a drain from another thread won the race)


def _link_down_before_send(outcome: SendOutcome) -> bool:
    """A RETRY because the link was down before the send (nothing was sent)."""
    return (
        outcome.klass is RetcodeClass.RETRY
        and not outcome.sent
        and outcome.last_error is not None
        and outcome.last_error[0] in IPC_ERRORS
    )


__all__ = ["PlaceOrder", "SendLine", "SendRequest", "answer", "not_sent"]
