"""The Dockerfile, checked without a Docker engine: its install and start commands are the
ones the README gives, it copies every package the project installs, and its start command
(on a free loopback port) serves /health and prints a generated admin token."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.api._server import ROOT, running
from tests.helpers import eventually

DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _one(keyword: str) -> str:
    values = [rest for kw, rest in _instructions() if kw == keyword]
    assert len(values) == 1, f"expected one {keyword}, found {values}"
    return values[0]


def _start_commands() -> list[str]:
    cmd = json.loads(_one("CMD"))
    assert cmd[:2] == ["sh", "-c"], cmd
    return [part.strip().removeprefix("exec ").strip() for part in cmd[2].split("&&")]


def _readme_commands() -> set[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return {line.strip() for block in blocks for line in block.splitlines()}


def test_the_image_installs_and_starts_the_way_the_readme_says() -> None:
    installs = [rest for kw, rest in _instructions() if kw == "RUN" and "pip install" in rest]
    assert installs == ["python -m pip install ."]
    start = _start_commands()
    assert start[0] == "execution-engine db upgrade"
    assert start[1].startswith("execution-engine serve ")
    readme = _readme_commands()
    for command in [*installs, *start]:
        assert command in readme, f"README does not give {command!r}"


def test_the_image_is_slim_non_root_and_health_checked() -> None:
    assert re.fullmatch(r"python:3\.1[1-9]-slim\S*", _one("FROM"))
    user = _one("USER")
    assert user not in {"root", "0"}
    names = [kw for kw, _ in _instructions()]
    assert names.index("USER") < names.index("CMD")
    port = shlex.split(_start_commands()[1])[-1]
    assert f"127.0.0.1:{port}/health" in _one("HEALTHCHECK")


def test_the_image_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {shlex.split(rest)[0] for kw, rest in _instructions() if kw == "COPY"}
    assert packages <= copied
    assert {"pyproject.toml", "README.md"} <= set(
        " ".join(rest for kw, rest in _instructions() if kw == "COPY").split()
    )


@pytest.mark.slow
def test_the_start_command_serves_health_and_prints_a_token_once(tmp_path: Path) -> None:
    command = json.loads(_one("CMD"))
    script = command[2].replace("--host 0.0.0.0 --port 8000", "--host 127.0.0.1 --port 0")
    assert script != command[2]
    with running([*command[:2], script], tmp_path, {}) as server:
        # The URL line comes first; the token follows on the line after the announcement.
        token = eventually(lambda: _line_after(server.lines, "generated an admin token"))
        assert token is not None
        assert sum(token in line for line in server.lines) == 1  # printed once
        authorized = httpx.get(
            f"{server.url}/trading-state", headers={"Authorization": f"Bearer {token}"}
        )
        assert authorized.status_code == 200
        health_check = json.loads(_one("HEALTHCHECK").split("CMD", 1)[1])
        probe = [sys.executable, *health_check[1:]]
        probe[-1] = probe[-1].replace("http://127.0.0.1:8000", server.url)
        assert subprocess.run(probe, timeout=30, check=False).returncode == 0
    assert (tmp_path / "execution_engine.db").exists()  # the SQLite default, in the cwd


def _line_after(lines: list[str], marker: str) -> str | None:
    for index, line in enumerate(lines[:-1]):
        if marker in line:
            return lines[index + 1].strip()
    return None
