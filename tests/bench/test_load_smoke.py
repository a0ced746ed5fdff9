"""Smoke runs of `bench.load`, `bench.baseline` and `bench.compare` with tiny workloads, so
the benches cannot rot: each command runs end to end and prints the keys the README's
results table is made of."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bench import compare, load
from bench._common import Workload

ROOT = Path(__file__).resolve().parents[2]
ISSUE_KEYS = {
    "executions",
    "wall_seconds",
    "throughput_per_s",
    "broker_bound_efficiency",
    "terminal_calls_per_execution",
    "submit_latency_ms",
    "end_to_end_ms",
    "cpu_seconds_per_execution",
    "peak_rss_mb",
    "final_statuses",
}
TINY = ["--order-send-ms", "1", "--ipc-ms", "0", "--database", "sqlite"]


def run_module(module: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout.splitlines()[0])
    return parsed


def assert_complete(result: dict[str, Any], executions: int) -> None:
    assert result.keys() >= ISSUE_KEYS
    assert result["executions"] == result["finished"] == executions
    assert result["lost"] == 0
    assert result["final_statuses"] == {"FILLED": executions}
    assert result["order_sends"]["order_sends"] == executions
    assert result["order_sends"]["executions_sent_more_than_once"] == 0
    assert result["order_sends"]["executions_never_sent"] == 0
    assert result["terminal_calls_per_execution"]["by_function"]["order_send"] == 1.0
    for series in ("submit_latency_ms", "end_to_end_ms"):
        assert set(result[series]) == {"p50", "p95", "p99", "max"}
        assert 0 <= result[series]["p50"] <= result[series]["max"]
    # How fast the machine was, so that figures from different runs can be compared.
    assert result["machine_reference_ms"] > 0


def test_load_runs_the_engine_to_the_end_and_prints_json() -> None:
    result = run_module("bench.load", "--executions", "6", "--concurrency", "3", *TINY)

    assert_complete(result, 6)
    assert result["engine"] == "actors"
    assert result["database_not_final"] == 0
    assert result["journal_chain_ok"] is True
    assert result["broker_bound_efficiency"] > 0


def test_load_reports_peak_threads_and_runs_order_actors_on_a_pool() -> None:
    per_actor = run_module(
        "bench.load", "--executions", "20", "--concurrency", "20", "--order-threads", "0", *TINY
    )
    pooled = run_module(
        "bench.load", "--executions", "20", "--concurrency", "20", "--order-threads", "2", *TINY
    )

    assert_complete(pooled, 20)
    assert (per_actor["order_threads"], pooled["order_threads"]) == (0, 2)
    # A thread per execution in flight, or the pool's two: the rest of the engine is the same.
    assert pooled["peak_threads"] < per_actor["peak_threads"]


def test_baseline_prints_the_same_keys() -> None:
    result = run_module(
        "bench.baseline", "--executions", "4", "--concurrency", "4", "--first-poll",
        "immediate", *TINY,
    )  # fmt: skip

    assert_complete(result, 4)
    assert result["engine"] == "seeds-baseline"
    # validate (3) + tick and send + one poll (2): the seeds' calls per execution
    assert result["terminal_calls_per_execution"]["total"] == 7.0


def test_compare_prints_both_results_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    compare.main(["--executions", "4", "--concurrency", "4", "--first-poll", "immediate", *TINY])

    result = json.loads(capsys.readouterr().out)
    assert_complete(result["engine"], 4)
    assert_complete(result["baseline"], 4)
    assert result["ratio"]["throughput_per_s"] > 0
    assert set(result["ratio"]) >= {
        "throughput_per_s",
        "end_to_end_ms_p50",
        "cpu_seconds_per_execution",
    }


def test_scaling_prints_cpu_per_execution_against_concurrency_10() -> None:
    result = load.scaling(Workload(executions=4, order_send_ms=0.0, ipc_ms=0.0, database="sqlite"))

    assert [row["concurrency"] for row in result["rows"]] == [1, 10, 100, 1000]
    assert next(r for r in result["rows"] if r["concurrency"] == 10)["vs_concurrency_10"] == 1.0
    assert "| concurrency |" in load.scaling_table(result)


@pytest.mark.postgres
def test_load_on_postgresql(postgres_admin_engine: Engine) -> None:
    admin = postgres_admin_engine.url.render_as_string(hide_password=False)
    result = run_module(
        "bench.load", "--executions", "5", "--concurrency", "5", "--order-send-ms", "1",
        "--ipc-ms", "0", "--database", "postgres", "--postgres-admin-url", admin,
    )  # fmt: skip

    assert_complete(result, 5)
    assert result["journal_chain_ok"] is True


def test_load_spreads_over_accounts_each_on_its_own_terminal() -> None:
    result = run_module(
        "bench.load", "--executions", "12", "--concurrency", "6", "--accounts", "3", *TINY
    )

    assert_complete(result, 12)
    assert result["accounts"] == 3


def test_account_scaling_rows_divide_by_one_account() -> None:
    from bench._accounts import scaling_rows, scaling_table

    def result(throughput: float) -> dict[str, Any]:
        return {
            "throughput_per_s": throughput,
            "end_to_end_ms": {"p50": 1.0},
            "final_statuses": {"FILLED": 1},
            "order_sends": {"executions_sent_more_than_once": 0},
        }

    rows = scaling_rows({1: result(50.0), 4: result(190.0)})

    assert [(r["accounts"], r["vs_one_account"]) for r in rows] == [(1, 1.0), (4, 3.8)]
    assert "| 4 | 190.0 | 3.80x |" in scaling_table(rows)
