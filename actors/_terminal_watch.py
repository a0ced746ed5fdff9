"""What the BrokerActor knows about the terminal's answers, readable from any thread.

The BrokerActor may sit for a whole rpyc timeout inside one terminal call (a frozen
terminal answers nothing), and then it answers no ask either. The Supervisor must still
see that the terminal is not answering, and still answer the sends queued behind that
call within `EE_TERMINAL_WAIT_SECONDS`: this object is written by the actor's thread and
read by the Supervisor's without asking the actor. Plain attribute writes of whole tuples
are atomic in CPython, so a reader sees a consistent old or new value without a lock.

It also paces reconnects: after an attempt failed, the next one waits as long as the
failed one took, so that a terminal whose every attempt costs a full timeout takes at
most half of the actor's time, and everything else (health, preflights, the queued sends'
answers) is served in between. An in-process terminal fails in microseconds: no pacing.
"""

from __future__ import annotations

from collections.abc import Callable

UNREACHABLE = "unreachable"


def describe_terminal(terminal: object) -> str:
    """How messages name the terminal: "the terminal at rpyc://127.0.0.1:18812"."""
    describe = getattr(terminal, "describe", None)
    if callable(describe):
        return str(describe())
    if type(terminal).__name__ == "SimulatedTerminal":
        return "the simulated terminal"
    return "the MetaTrader 5 terminal"


class TerminalWatch:
    """The state of one BrokerActor's link to the terminal (see the module docstring)."""

    def __init__(self, where: str, monotonic: Callable[[], float]) -> None:
        self.where = where
        self._monotonic = monotonic
        self._call: tuple[str, float] | None = None
        self._down: tuple[float, str] | None = None
        self._next_try = 0.0
        self._drain: Callable[[str], int] | None = None

    def now(self) -> float:
        """The engine clock's monotonic reading (the link times its calls by it)."""
        return self._monotonic()

    # --- written by the BrokerActor's thread -------------------------------------------

    def call_started(self, name: str) -> None:
        self._call = (name, self._monotonic())

    def call_ended(self) -> None:
        self._call = None

    def link_failed(self, cause: str, attempt_seconds: float = 0.0) -> None:
        """The link failed (a call raised, or an IPC error, or a reconnect failed)."""
        now = self._monotonic()
        if self._down is None:
            self._down = (now, cause)  # the first cause says most: later ones are echoes
        self._next_try = now + max(attempt_seconds, 0.0)

    def link_up(self) -> None:
        self._down = None
        self._next_try = 0.0

    def may_try(self) -> bool:
        """Whether a reconnect may be attempted now (see the pacing above)."""
        return self._monotonic() >= self._next_try

    def retry_in(self) -> float:
        return max(self._next_try - self._monotonic(), 0.0)

    def set_drain(self, drain: Callable[[str], int]) -> None:
        """`drain(reason)` answers every send not yet started as not sent (thread-safe)."""
        self._drain = drain

    # --- read from any thread ----------------------------------------------------------

    def down_for(self) -> float | None:
        down = self._down
        return None if down is None else self._monotonic() - down[0]

    def stall(self) -> tuple[float, str] | None:
        """How long the terminal has not answered, and why: the longer of a call still
        waiting for its answer and a link known to be down. None when it answers."""
        now = self._monotonic()
        found: tuple[float, str] | None = None
        call = self._call
        if call is not None:
            found = (now - call[1], f"no answer to {call[0]}")
        down = self._down
        if down is not None and (found is None or now - down[0] > found[0]):
            found = (now - down[0], f"{UNREACHABLE}: {down[1]}")
        return found

    def stall_text(self) -> str:
        """E.g. "the terminal at rpyc://127.0.0.1:18812 has not answered for 3.1 s
        (unreachable: symbol_info_tick raised TimeoutError: result expired)"."""
        stall = self.stall()
        if stall is None:
            return f"{self.where} answers"
        return f"{self.where} has not answered for {stall[0]:.1f} s ({stall[1]})"

    def unreachable(self) -> bool:
        """The link is known down (not merely a call waiting for its answer)."""
        return self._down is not None

    def drain(self, reason: str) -> int:
        """Answer the sends not yet started as not sent; how many there were."""
        drain = self._drain
        return drain(reason) if drain is not None else 0


__all__ = ["TerminalWatch", "describe_terminal"]
