"""The README's reference parts against the code: every setting and every route is there."""

from __future__ import annotations

import re

from pydantic import AliasChoices

from api.app import AUTHENTICATED_ROUTERS, OPEN_ROUTERS
from core.settings import Settings
from tests.api._server import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.DOTALL | re.MULTILINE)
    assert found, f"README has no section {title!r}"
    return found.group(1)


def test_every_setting_is_in_the_settings_table() -> None:
    table = _section("Settings")
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variables = alias.choices if isinstance(alias, AliasChoices) else [alias or name]
        for variable in variables:
            assert f"`{variable}`" in table, f"{variable} is missing from the README's settings"


def test_every_route_is_in_the_http_api_table() -> None:
    table = _section("HTTP API")
    for router in (*AUTHENTICATED_ROUTERS, *OPEN_ROUTERS):
        for route in router.routes:
            path = getattr(route, "path", "")
            for method in sorted(getattr(route, "methods", ())):
                assert f"`{method} {path}" in table, f"{method} {path} is not in the README"
