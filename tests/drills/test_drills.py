"""Failover drills: each passes (no duplicate, no lost execution, no order without an
intent, the audit chain verifies), from Python and from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from api.cli import main
from core.errors import ConfigurationError
from drills import DRILL_NAMES, PROCESS_DRILLS, run_drill, run_drill_beside
from drills.engine_kill import run_engine_kill, simulator_server
from drills.standby import run_failover, run_firm_halt, run_partition
from terminals.simulated import SimulatedTerminal

IN_PROCESS = [name for name in DRILL_NAMES if name not in PROCESS_DRILLS]


def assert_passed(report: dict[str, Any], executions: int) -> None:
    assert report["passed"], json.dumps(report, default=str)
    assert report["duplicates"] == 0
    assert report["lost"] == 0
    assert report["orders_without_intent"] == 0
    assert report["audit_verified"] is True
    assert sum(report["final_statuses"].values()) == executions
    assert report["recovery_seconds"] >= 0


@pytest.mark.parametrize("name", IN_PROCESS)
def test_drill_passes(name: str) -> None:
    report = run_drill(name, executions=30, seed=1)

    assert report["drill"] == name
    assert_passed(report, 30)


@pytest.mark.postgres
def test_database_outage_on_postgresql_is_a_real_outage(postgres_admin_engine: Engine) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_drill("database-outage", executions=20, seed=2, database_url=url)

    assert_passed(report, 20)
    assert report["details"]["checks"]["halted_by_supervisor"]


@pytest.fixture(scope="module")
def sim_port() -> Iterator[int]:
    """One `execution-engine simulator serve` process for every kill point."""
    with simulator_server(seed=0) as port:
        yield port


@pytest.mark.postgres
@pytest.mark.parametrize("kill_after", [1, 3, 6, 9, 11])
def test_engine_kill_at_five_kill_points(
    kill_after: int, sim_port: int, postgres_admin_engine: Engine
) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_engine_kill(
        12, seed=kill_after, database_url=url, progress=lambda _: None,
        server_port=sim_port, magic=880_000 + kill_after, kill_after=kill_after,
    )  # fmt: skip

    assert_passed(report, 12)
    assert report["details"]["killed_after_answers"] == kill_after


def test_engine_kill_needs_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        run_drill("engine-kill", executions=10)


def test_unknown_drill_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown drill"):
        run_drill("meteor-strike")


def test_drills_run_beside_an_engine_only_where_its_terminal_is_simulated() -> None:
    terminal = SimulatedTerminal(seed=7)
    assert run_drill_beside(terminal, "ambiguous-submits", executions=10)["passed"]

    with pytest.raises(ConfigurationError, match="simulated"):
        run_drill_beside(object(), "broker-crash", executions=10)


# --- the command line ----------------------------------------------------------------------


def test_cli_help_lists_every_drill(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["drill", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DRILL_NAMES)


def test_cli_prints_one_json_report_and_progress_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["drill", "order-actor-crash", "--executions", "12", "--seed", "3"])

    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0
    assert report["drill"] == "order-actor-crash"
    assert report["passed"] is True
    assert "[drill]" in captured.err


def test_cli_refuses_a_real_terminal_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EE_TERMINAL", "metatrader5")

    code = main(["drill", "broker-crash"])

    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "simulated terminal" in err
    assert "\n" not in err


def test_flatten_under_faults_leaves_no_position_and_closes_none_twice() -> None:
    report = run_drill("flatten-under-faults", executions=12, seed=3)

    assert_passed(report, 12)
    assert report["positions_left"] == 0
    details = report["details"]
    assert details["closed_twice"] == []
    assert details["checks"]["broker_killed_and_restarted"]
    assert len(details["symbols"]) == 3


@pytest.mark.postgres
def test_failover_the_standby_takes_over_a_killed_owner(
    sim_port: int, postgres_admin_engine: Engine
) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_failover(
        16, seed=3, database_url=url, progress=lambda _: None, server_port=sim_port,
        magic=890_001, kill_after=5, takeover_seconds=1.0, concurrency=4,
    )  # fmt: skip

    assert_passed(report, 16)
    assert 0 < report["takeover_seconds"] < 5
    assert report["sends_by_instance"]["b"] > 0


@pytest.mark.postgres
def test_partition_the_cut_off_owner_stops_before_the_standby_starts(
    sim_port: int, postgres_admin_engine: Engine
) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_partition(
        16, seed=4, database_url=url, progress=lambda _: None, server_port=sim_port,
        magic=890_002, cut_after=5, takeover_seconds=1.0, concurrency=4,
    )  # fmt: skip

    assert_passed(report, 16)
    assert report["details"]["checks"]["a_stopped_before_b"]
    assert report["details"]["sessions_ended"] > 0


@pytest.mark.postgres
def test_firm_halt_on_the_standby_stops_the_owner_within_a_second(
    sim_port: int, postgres_admin_engine: Engine
) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_firm_halt(
        30, seed=5, database_url=url, progress=lambda _: None, server_port=sim_port,
        magic=890_003, halt_after=5, takeover_seconds=1.0, concurrency=4,
    )  # fmt: skip

    assert_passed(report, 30)
    assert report["sends_after_halt_plus_1s"] == 0
    assert report["sends_by_instance"]["b"] == 0


def test_multi_account_keeps_the_other_accounts_filling(postgres_admin_engine: Engine) -> None:
    url = postgres_admin_engine.url.render_as_string(hide_password=False)

    report = run_drill("multi-account", executions=45, seed=2, database_url=url)

    assert_passed(report, 45)
    accounts = report["details"]["accounts"]
    assert set(accounts) == {"acct-a", "acct-b", "acct-c"}
    assert accounts["acct-a"]["restarts"] >= 1
    assert accounts["acct-a"]["halted_during_run"]
    for name in ("acct-b", "acct-c"):
        assert accounts[name]["statuses"] == {"FILLED": 15}
        assert (accounts[name]["restarts"], accounts[name]["halted_during_run"]) == (0, False)
