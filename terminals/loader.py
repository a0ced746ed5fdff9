"""Load the real ``MetaTrader5`` module (Windows only) as a ``Terminal``."""

from __future__ import annotations

import importlib
from typing import cast

from terminals.base import Terminal

_UNAVAILABLE = (
    "MetaTrader5 is only available on Windows; use the simulated terminal or the rpyc bridge"
)


def load_metatrader5() -> Terminal:
    """Import ``MetaTrader5``; raise ``ImportError`` with a usable message where it is absent."""
    try:
        module = importlib.import_module("MetaTrader5")
    except ImportError as exc:
        raise ImportError(_UNAVAILABLE) from exc
    # The module has the Protocol's functions and constants; it is not typed.
    return cast(Terminal, module)
