"""Smoke run of `bench.restart`: one round, a small load, so the bench cannot rot. It kills a
real `execution-engine serve` under load, restarts it, and must print its keys and find
no decision executed twice on the terminal."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.bench.test_load_smoke import run_module

ROUND_KEYS = {
    "cold_start_health_s",
    "answers_before_kill",
    "in_flight_at_kill",
    "health_s",
    "first_fill_s",
    "all_settled_s",
    "unanswered_at_kill",
    "never_recorded",
    "unfinished_at_kill",
    "unfinished_final_statuses",
    "duplicates",
}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_restart_kills_under_load_and_measures_the_restart(postgres_admin_engine: Engine) -> None:
    admin = postgres_admin_engine.url.render_as_string(hide_password=False)
    result = run_module(
        "bench.restart", "--rounds", "1", "--threads", "3", "--kill-after", "4",
        "--order-send-ms", "5", "--postgres-admin-url", admin,
        # A short window keeps the smoke run short whatever start-up waits for.
        "--engine-env", "EE_RECONCILE_WINDOW_SECONDS=1",
    )  # fmt: skip

    assert result["benchmark"] == "restart"
    assert result["engine_settings"]["EE_RECONCILE_WINDOW_SECONDS"] == "1"
    (only,) = result["rounds"]
    assert only.keys() >= ROUND_KEYS
    assert only["answers_before_kill"] >= 4
    assert only["probe_status"] == "FILLED"
    assert only["health_s"] > 0
    assert only["first_fill_s"] > 0
    assert only["all_settled_s"] is not None
    assert set(result["median_s"]) == {"health", "first_fill", "all_settled", "cold_start_health"}
    assert result["median_s"]["first_fill"] == only["first_fill_s"]
    # Nothing duplicated, nothing on the terminal that the engine does not know.
    assert only["duplicates"]["decisions_with_two_orders"] == 0
    assert only["duplicates"]["decisions_with_two_executions"] == 0
    assert only["duplicates"]["orders_without_execution"] == 0
    assert only["duplicates"]["filled_without_order"] == 0
    assert result["decisions_with_two_orders"] == 0
    assert result["machine_reference_ms"] > 0
