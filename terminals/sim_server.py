"""`execution-engine simulator serve`: the simulated terminal in its own process over rpyc.

It speaks the same rpyc classic protocol a MetaTrader5 under Wine speaks through mt5linux,
so the bridge client cannot tell them apart, and crash drills can kill the engine while the
"terminal" lives on. The simulator is installed as the `MetaTrader5` module of this process,
which is exactly what `import MetaTrader5 as mt5` finds on a real Wine server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from rpyc.core.service import ClassicService
from rpyc.utils.server import ThreadedServer

from terminals.simulated import SimulatedTerminal

LOOPBACK = frozenset({"127.0.0.1", "localhost"})


def build_server(
    host: str = "127.0.0.1",
    port: int = 18812,
    seed: int = 0,
    order_send_ms: float = 0.0,
    ipc_ms: float = 0.0,
    state_file: str | None = None,
) -> tuple[ThreadedServer, SimulatedTerminal]:
    if host not in LOOPBACK:
        # The classic protocol executes arbitrary code: never listen beyond this machine.
        raise ValueError(f"the simulator listens on loopback only, not {host!r}")
    sim = SimulatedTerminal(
        seed=seed,
        order_send_latency=order_send_ms / 1000.0,
        order_check_latency=order_send_ms / 1000.0,
        ipc_latency=ipc_ms / 1000.0,
        state_file=state_file,
    )
    sys.modules["MetaTrader5"] = sim  # type: ignore[assignment]
    server = ThreadedServer(
        ClassicService,
        hostname=host,
        port=port,
        reuse_addr=True,
        protocol_config={"allow_public_attrs": True, "sync_request_timeout": 300},
    )
    return server, sim


def serve(
    host: str = "127.0.0.1",
    port: int = 18812,
    seed: int = 0,
    order_send_ms: float = 0.0,
    ipc_ms: float = 0.0,
    ready: Callable[[int], None] | None = None,
    state_file: str | None = None,
) -> None:
    """Serve until interrupted; `ready(port)` is called once the socket listens. With
    `state_file`, the account's state survives a restart (see `terminals._sim_state`)."""
    server, _ = build_server(host, port, seed, order_send_ms, ipc_ms, state_file)
    # rpyc only listens in start(); listen now, so a client that connects as soon as it
    # reads the ready line is queued, not refused (start() listening again is harmless).
    server.listener.listen(server.backlog)
    if ready is not None:
        ready(server.port)
    try:
        server.start()
    finally:
        server.close()
