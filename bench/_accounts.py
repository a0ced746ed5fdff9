"""`bench.load --accounts N`: the load spread over N simulated terminals, one per account.

Each account's terminal runs one `order_send` at a time, as a real one does, so one engine
trading N accounts can reach N times the single-account ceiling; how close it gets is the
scaling figure (`--account-scaling` runs N = 1, 2, 4, 8 and divides by N = 1).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench._common import Workload, make_terminal
from terminals.simulated import SimulatedTerminal

ACCOUNT_SCALING = (1, 2, 4, 8)


def account_names(count: int) -> tuple[str, ...]:
    return tuple(f"acct-{i + 1}" for i in range(count))


def make_terminals(
    workload: Workload, count: int
) -> tuple[dict[str, SimulatedTerminal], dict[str, float]]:
    """One simulated terminal per account (seeds apart), and each symbol's smallest order."""
    terminals: dict[str, SimulatedTerminal] = {}
    units: dict[str, float] = {}
    for i, name in enumerate(account_names(count)):
        terminal, units = make_terminal(replace(workload, seed=workload.seed + i))
        terminals[name] = terminal
    return terminals, units


@contextlib.contextmanager
def accounts_file(names: Sequence[str], magic: int) -> Iterator[str]:
    """A temporary accounts file naming `names`, simulated terminals, magics from `magic`."""
    with tempfile.TemporaryDirectory(prefix="ee-bench-accounts-") as tmp:
        path = Path(tmp) / "accounts.toml"
        path.write_text(
            "".join(
                f'[accounts.{name}]\nmagic = {magic + i}\nterminal = {{ kind = "simulated" }}\n\n'
                for i, name in enumerate(names)
            )
        )
        yield str(path)


def spread(messages: list[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The messages, each on the next account in turn."""
    return [{**m, "account": names[i % len(names)]} for i, m in enumerate(messages)]


def merged_calls(terminals: Sequence[SimulatedTerminal]) -> Any:
    """The terminals' call records as one sequence (for the per-execution call counts)."""
    return [record for terminal in terminals for record in terminal.calls]


class CallsView:
    """What `terminal_calls` and `send_starts` read of a terminal, over several terminals."""

    def __init__(self, terminals: Sequence[SimulatedTerminal]) -> None:
        self.calls = merged_calls(terminals)


def scaling_rows(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    base = results[min(results)]["throughput_per_s"] or 1.0
    return [
        {
            "accounts": n,
            "throughput_per_s": result["throughput_per_s"],
            "vs_one_account": round(result["throughput_per_s"] / base, 2),
            "end_to_end_ms_p50": result["end_to_end_ms"]["p50"],
            "final_statuses": result["final_statuses"],
            "sends_twice": result["order_sends"]["executions_sent_more_than_once"],
        }
        for n, result in sorted(results.items())
    ]


def scaling_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| accounts | throughput / s | vs 1 account | p50 end to end ms |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['accounts']} | {row['throughput_per_s']:.1f} | "
            f"{row['vs_one_account']:.2f}x | {row['end_to_end_ms_p50']} |"
        )
    return "\n".join(lines)


def statuses(confirmations: dict[str, Any]) -> Counter[str]:
    return Counter(c.status.value for c in confirmations.values())


__all__ = [
    "ACCOUNT_SCALING",
    "CallsView",
    "account_names",
    "accounts_file",
    "make_terminals",
    "scaling_rows",
    "scaling_table",
    "spread",
]
