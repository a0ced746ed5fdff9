"""Tests of storage.single_instance: a second engine on one SQLite file is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from storage.single_instance import LOCK_SUFFIX, InstanceLock, sqlite_instance_lock
from tests.helpers import eventually

HOLDER = """
import sys
from storage.single_instance import sqlite_instance_lock
lock = sqlite_instance_lock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()  # held until the test closes our stdin
"""


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'engine.db'}"


def test_a_second_opener_is_refused_in_one_line_until_the_first_lets_go(tmp_path: Path) -> None:
    first = sqlite_instance_lock(_url(tmp_path))
    assert first is not None
    assert first.path == tmp_path / f"engine.db{LOCK_SUFFIX}"

    with pytest.raises(ConfigurationError) as caught:
        sqlite_instance_lock(_url(tmp_path))

    message = str(caught.value)
    assert "\n" not in message
    assert f"already uses the SQLite store {tmp_path / 'engine.db'}" in message
    assert "SQLite is single-instance" in message
    first.release()
    again = sqlite_instance_lock(_url(tmp_path))
    assert again is not None
    again.release()


def test_another_process_holding_the_store_is_named_and_its_exit_frees_it(
    tmp_path: Path,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, _url(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"

        with pytest.raises(ConfigurationError, match=rf"instance \(pid {holder.pid}\) already"):
            sqlite_instance_lock(_url(tmp_path))
        holder.stdin.close()

    lock = eventually(lambda: _try(_url(tmp_path)), what="the lock is free once it exits")
    assert lock is not None
    lock.release()


def _try(url: str) -> InstanceLock | None:
    try:
        return sqlite_instance_lock(url)
    except ConfigurationError:
        return None


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, _url(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        holder.kill()

    lock = sqlite_instance_lock(_url(tmp_path))

    assert lock is not None
    lock.release()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql+psycopg2://u@localhost/db"]
)
def test_nothing_to_lock_for_memory_or_postgresql(url: str) -> None:
    assert sqlite_instance_lock(url) is None
