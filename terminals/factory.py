"""Builds the terminal the settings name: simulated (default), the Windows module, or the bridge."""

from __future__ import annotations

from typing import Any

from core.errors import ConfigurationError
from core.settings import Settings


def terminal_from_settings(settings: Settings) -> Any:
    """The terminal object for `EE_TERMINAL`; every kind has the MetaTrader5 module's API."""
    if settings.terminal == "simulated":
        from terminals.simulated import SimulatedTerminal

        return SimulatedTerminal(
            seed=settings.sim_seed,
            order_send_latency=settings.sim_order_send_ms / 1000.0,
            order_check_latency=settings.sim_order_send_ms / 1000.0,
            ipc_latency=settings.sim_ipc_ms / 1000.0,
        )
    if settings.terminal == "metatrader5":
        from terminals.loader import load_metatrader5

        return load_metatrader5()
    if settings.terminal == "rpyc":
        from terminals.bridge import RpycTerminal

        return RpycTerminal(
            host=settings.rpyc_host,
            port=settings.rpyc_port,
            timeout=settings.rpyc_timeout_seconds,
        )
    raise ConfigurationError(f"EE_TERMINAL={settings.terminal!r} is not a known terminal kind")
