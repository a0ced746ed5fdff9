"""Smoke test of the latency bench: it runs a few executions and reports its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import latency

KEYS = {
    "benchmark",
    "database",
    "executions",
    "warmup",
    "median_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "min_ms",
    "max_ms",
}
ROOT = Path(__file__).resolve().parents[2]


def test_main_returns_and_prints_the_latency_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = latency.main(["--database", "sqlite", "--executions", "3", "--warmup", "1"])

    assert set(result) == KEYS
    assert result["database"] == "sqlite"
    assert result["executions"] == 3
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["p99_ms"] <= result["max_ms"]
    assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"]
    assert json.loads(capsys.readouterr().out) == result


def test_module_runs_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.latency", "--database", "sqlite", "--executions", "1",
         "--warmup", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == KEYS


def test_percentile_interpolates_between_ranks() -> None:
    assert latency.percentile([1.0], 0.99) == 1.0
    assert latency.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert latency.percentile([0.0, 10.0], 0.9) == pytest.approx(9.0)
