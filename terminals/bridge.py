"""The rpyc bridge: a MetaTrader5 module running in another process (under Wine on Linux).

The server is an rpyc classic (SlaveService) server whose Python has `MetaTrader5` installed,
as mt5linux starts it; `execution-engine simulator serve` starts one whose `MetaTrader5` is
the simulated terminal. Requests cross as plain dicts written as Python literals and
evaluated remotely (a netref dict would reach the C extension as a proxy, which it refuses);
results are converted to plain values on the server and rebuilt here as the same namedtuple
types the real module returns, so the engine cannot tell the bridge from the module.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rpyc.core.service import ClassicService
from rpyc.core.stream import SocketStream
from rpyc.utils import factory

from terminals import constants, types

# Runs once on the server: converts MT5 result objects (C namedtuples that cannot be pickled,
# or the simulator's namedtuples) to plain tagged dicts before they cross the wire.
_SERVER_HELPERS = """
import datetime
import MetaTrader5 as mt5

def _ee_plain(value):
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if hasattr(value, "_asdict"):
        return {"__type__": type(value).__name__,
                "fields": [[k, _ee_plain(v)] for k, v in value._asdict().items()]}
    if isinstance(value, (list, tuple)):
        return [_ee_plain(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[k, _ee_plain(v)] for k, v in value.items()]}
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    try:
        return value.item()
    except AttributeError:
        return repr(value)

def _ee_call(name, args, kwargs):
    return _ee_plain(getattr(mt5, name)(*args, **kwargs))

def _ee_call_bytes(name, args, kwargs):
    import pickle
    return pickle.dumps(_ee_call(name, args, kwargs), protocol=4)
"""

_TYPES: dict[str, Callable[..., Any]] = {
    name: getattr(types, name)
    for name in (
        "OrderSendResult",
        "TradeRequest",
        "OrderCheckResult",
        "Tick",
        "SymbolInfo",
        "AccountInfo",
        "TerminalInfo",
        "TradeOrder",
        "TradeDeal",
        "TradePosition",
    )
    if hasattr(types, name)
}

_FUNCTIONS = (
    "initialize",
    "login",
    "shutdown",
    "version",
    "last_error",
    "terminal_info",
    "account_info",
    "symbol_info",
    "symbol_info_tick",
    "symbol_select",
    "symbols_total",
    "symbols_get",
    "order_check",
    "order_send",
    "order_calc_margin",
    "order_calc_profit",
    "orders_total",
    "orders_get",
    "positions_total",
    "positions_get",
    "history_orders_total",
    "history_orders_get",
    "history_deals_total",
    "history_deals_get",
)


def _rebuild(value: Any) -> Any:
    """Plain values from the server back into the real module's result types."""
    if isinstance(value, list):
        return tuple(_rebuild(item) for item in value)
    if isinstance(value, dict):
        if "__type__" in value:
            fields = {key: _rebuild(item) for key, item in value["fields"]}
            factory = _TYPES.get(value["__type__"])
            if factory is None:
                return fields
            return factory(**fields)
        if "__dict__" in value:
            return {key: _rebuild(item) for key, item in value["__dict__"]}
        if "__datetime__" in value:
            return datetime.fromisoformat(value["__datetime__"])
    return value


def _literal(value: Any) -> str:
    """A Python literal the server can evaluate: plain values only, never a netref."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return repr(value)
    if isinstance(value, datetime):
        return f"datetime.datetime.fromisoformat({value.isoformat()!r})"
    if isinstance(value, dict):
        items = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        if not isinstance(value, tuple):
            return f"[{inner}]"
        # "(,)" is a syntax error: the empty tuple has no trailing comma.
        return f"({inner},)" if value else "()"
    # numpy scalars and the like: their repr does not evaluate remotely.
    if hasattr(value, "item"):
        return _literal(value.item())
    raise TypeError(f"cannot send {type(value).__name__} over the bridge")


class RpycTerminal:
    """The MetaTrader5 API over rpyc. Thread-safe by a lock, though the engine's BrokerActor
    already serializes every call.

    `timeout` bounds each call whole: the TCP connect, rpyc's handshake and the server
    helpers' installation when the link must be (re)made, and the request itself. rpyc's
    own `classic.connect` would spend up to 3 s x 6 attempts on the TCP connect and its
    default 30 s on the handshake (its config applies only after it), whatever the timeout.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 18812, timeout: float = 300.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._conn: Any = None
        self._lost = False
        """The last call lost the link: `last_error` answers without a round trip."""
        self._lock = threading.Lock()
        for name in dir(constants):
            if name.isupper():
                setattr(self, name, getattr(constants, name))

    def describe(self) -> str:
        """Where the terminal is, for messages: "the terminal at rpyc://host:port"."""
        return f"the terminal at rpyc://{self.host}:{self.port}"

    # --- connection ---------------------------------------------------------------------

    def _connection(self, deadline: float) -> Any:
        if self._conn is None or self._conn.closed:
            # Not SocketStream.connect: its backoff loop leaks the socket of a refused
            # connection; create_connection closes it, and takes the timeout as given.
            sock = socket.create_connection((self.host, self.port), timeout=_left(deadline))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = SocketStream(sock)
            try:
                # The config is the connection's from its first request on: the handshake
                # (`conn.root` in the service's on_connect) waits no longer than the rest.
                conn = factory.connect_stream(
                    stream, ClassicService, config={"sync_request_timeout": _left(deadline)}
                )
            except BaseException:
                stream.close()
                raise
            try:
                conn._config["sync_request_timeout"] = _left(deadline)
                conn.execute(_SERVER_HELPERS)
            except BaseException:
                _drop(conn)
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None

    def _eval(self, expression: str) -> Any:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            conn = None
            try:
                conn = self._connection(deadline)
                # initialize() can take a minute on a real terminal (mt5-api.md §8): the
                # timeout is the operator's, for the whole call.
                conn._config["sync_request_timeout"] = _left(deadline)
                # Bytes cross by value: one round trip, all within the deadline (a result
                # obtained from a netref took a second request, with a timeout of its own).
                result = pickle.loads(conn.eval(expression))  # noqa: S301 - our own server's
                self._lost = False
                return result
            except (EOFError, ConnectionError, OSError):
                # The link is gone or timed out (rpyc's timeout is a TimeoutError, an
                # OSError): the next call reconnects, never reading a late answer meant for
                # this one. The caller sees the failure (an order_send that met it is
                # ambiguous and is never replayed here).
                if conn is not None:
                    _drop(conn)  # release the socket of the dead link
                self._conn = None
                self._lost = True
                raise

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call `mt5.<name>(*args, **kwargs)` on the server with plain-value arguments."""
        expression = f"_ee_call_bytes({name!r}, {_literal(tuple(args))}, {_literal(kwargs)})"
        return _rebuild(self._eval(expression))

    def remote(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call any method of the remote module, e.g. the simulator's fault injection:
        `bridge.remote("inject", "timeout_executed", times=1)`."""
        return self.call(name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _FUNCTIONS:
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(name)

    def initialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.call("initialize", *args, **kwargs)
        except (EOFError, ConnectionError, OSError):
            return False

    def last_error(self) -> tuple[int, str]:
        if self._lost:
            # As the module says after its IPC link failed, and without another timeout
            # on a terminal that just failed to answer.
            return (-10004, "No IPC connection")
        try:
            code, text = self.call("last_error")
        except (EOFError, ConnectionError, OSError):
            return (-10004, "No IPC connection")
        return int(code), str(text)


def _drop(conn: Any) -> None:
    """Close a connection whose peer does not answer. rpyc's close() asks the peer to close
    too and waits a whole request timeout for its answer: here it waits (almost) not at all."""
    with contextlib.suppress(Exception):
        conn._config["sync_request_timeout"] = 0.001
        conn.close()


def _left(deadline: float) -> float:
    """Seconds left until `deadline`; a timeout error once none are (never 0: that would
    make a socket non-blocking, and rpyc's wait return at once without a verdict)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the rpyc timeout passed before the call could be made")
    return left
