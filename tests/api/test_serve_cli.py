"""`execution-engine serve` failing to start: one clear line and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.api._server import BIN, running, server_env


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "execution-engine"), "serve", *args],
        cwd=tmp_path,
        env=server_env(env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_malformed_token_list_is_one_line_that_does_not_echo_it(tmp_path: Path) -> None:
    result = _serve(tmp_path, env={"EE_API_TOKENS": "superuser:hunter2-token"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "EE_API_TOKENS" in lines[0]
    assert "hunter2-token" not in result.stderr + result.stdout


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(tmp_path, "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0]


def test_a_second_instance_on_the_same_sqlite_file_is_one_line(tmp_path: Path) -> None:
    store = {"DATABASE_URL": f"sqlite:///{tmp_path / 'engine.db'}"}
    first = tmp_path / "first"
    first.mkdir()
    with running([str(BIN / "execution-engine"), "serve", "--port", "0"], first, store):
        result = _serve(tmp_path, "--port", "0", env=store)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "single-instance" in lines[0]
