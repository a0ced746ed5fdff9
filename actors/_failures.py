"""Whose fault an OrderActor's failure is: the infrastructure's, or its own execution's.

The restart intensity counts infrastructure failures (the broker, the terminal, the
database, an actor that died or did not answer, a drill's injected crash): enough of them
in a short time and trading halts. An exception raised while handling one execution's own
data (a value no rule foresaw, a bug on one path) says nothing about the infrastructure:
it ends that execution and must not let a buggy or hostile RPM halt all trading.
"""

from __future__ import annotations

import pykka

from core.errors import PersistenceError, TerminalError


class InfrastructureFailure(Exception):  # noqa: N818 - a base, named for what it marks
    """Base of the engine's own exceptions that report a collaborator's failure."""


class InjectedCrash(InfrastructureFailure):
    """A crash a drill or a test injected on purpose (it stands for an actor's failure)."""


class TerminalClosedError(InfrastructureFailure):
    """This BrokerActor may not call the terminal any more (it was replaced): nothing that
    meets this reached the terminal."""


class FencedError(TerminalClosedError):
    """This BrokerActor was replaced by a restart: it must not touch the terminal again."""


_INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    InfrastructureFailure,
    PersistenceError,
    TerminalError,
    pykka.ActorDeadError,
    pykka.Timeout,
    OSError,  # a socket or pipe to the terminal or the database
    EOFError,  # the rpyc bridge's connection closed
)


def is_own_failure(exc: BaseException | None) -> bool:
    """True when `exc` came from handling the execution's own data, not from a collaborator."""
    return isinstance(exc, Exception) and not isinstance(exc, _INFRASTRUCTURE)


__all__ = [
    "FencedError",
    "InfrastructureFailure",
    "InjectedCrash",
    "TerminalClosedError",
    "is_own_failure",
]
