"""`JournalEventType` names every event type the engine writes.

The code is read, not run: every string literal in a place where an event type goes (an
`event_type=` argument, a positional argument of a journal/transition/finish/commit/update/
event helper, a comparison with a row's `event_type`, a module constant named as its value)
must be a member. A type built by an f-string must have a member for each of its values.
`tests/actors/test_journal_event_types.py` checks the same of a journal an engine wrote.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from core.enums import FINAL_STATUSES, JournalEventType

ROOT = Path(__file__).resolve().parents[2]
# Every package that may write or query journal rows (`drills` once it leaves actors/).
PACKAGES = ("actors", "api", "core", "storage", "drills")
_HELPER = re.compile(r"journal|event|transition|finish|commit|update", re.IGNORECASE)
_EVENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
_EVENT_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*_$")


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else ""


def _candidates(tree: ast.Module) -> list[ast.expr]:
    """The expressions of `tree` that stand where an event type goes."""
    found: list[ast.expr] = []
    for node in tree.body:  # module constants only: an enum's body names its own values
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and node.value.value == node.targets[0].id
        ):
            found.append(node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [kw.value for kw in node.keywords if kw.arg == "event_type"]
            if _HELPER.search(_call_name(node)):
                found += node.args
        elif isinstance(node, ast.Compare) and (
            isinstance(node.left, ast.Attribute) and node.left.attr == "event_type"
        ):
            found += node.comparators
    expanded: list[ast.expr] = []
    for expr in found:
        expanded += [expr.body, expr.orelse] if isinstance(expr, ast.IfExp) else [expr]
    return expanded


def event_types_in(source: str) -> tuple[set[str], set[str]]:
    """The event type literals in `source`, and the constant prefixes of f-string ones."""
    literals: set[str] = set()
    prefixes: set[str] = set()
    for expr in _candidates(ast.parse(source)):
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            if _EVENT_NAME.match(expr.value):
                literals.add(expr.value)
        elif isinstance(expr, ast.JoinedStr) and expr.values:
            head = expr.values[0]
            if isinstance(head, ast.Constant) and _EVENT_PREFIX.match(str(head.value)):
                prefixes.add(str(head.value))
    return literals, prefixes


def _scan() -> dict[str, set[str]]:
    """Each literal or f-string prefix found in the packages, with where it was found."""
    where: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            literals, prefixes = event_types_in(path.read_text(encoding="utf-8"))
            for value in literals | {f"{prefix}*" for prefix in prefixes}:
                where.setdefault(value, set()).add(str(path.relative_to(ROOT)))
    return where


def test_the_scanner_finds_event_types_where_they_go() -> None:
    source = """
FLATTEN = "FLATTEN"
NOT_AN_EVENT = "something else"
op = WriteOp(execution_id=None, event_type="A_TYPE", payload={})
self._transition(_S.UNKNOWN, "B_TYPE", payload, legs=legs)
self._finish(status, "C_TYPE" if done else "D_TYPE", {})
rec.journal(record, "E_TYPE", {"status": "NOT_AN_EVENT_EITHER"})
self._commit(current, status, f"PREFIX_{status.value}", {})
query.where(execution_events.c.event_type == "F_TYPE")
replace_leg(legs, 0, status="NOT_ONE")
"""
    literals, prefixes = event_types_in(source)

    assert literals == {"FLATTEN", "A_TYPE", "B_TYPE", "C_TYPE", "D_TYPE", "E_TYPE", "F_TYPE"}
    assert prefixes == {"PREFIX_"}


def test_every_event_type_in_the_code_is_a_member() -> None:
    members = {member.value for member in JournalEventType}
    where = _scan()

    unknown = {
        value: sorted(paths)
        for value, paths in where.items()
        if not value.endswith("*") and value not in members
    }
    assert not unknown, f"add these to JournalEventType: {unknown}"
    built = {
        value: sorted(paths)
        for value, paths in where.items()
        if value.endswith("*") and not any(m.startswith(value[:-1]) for m in members)
    }
    assert not built, f"no JournalEventType member for these f-string types: {built}"


def test_recovery_has_an_event_for_every_final_status() -> None:
    for status in FINAL_STATUSES:
        assert JournalEventType.recovered(status).value == f"RECOVERED_{status.value}"


def test_members_are_their_names_and_fit_the_column() -> None:
    for member in JournalEventType:
        assert member.value == member.name
        assert 1 <= len(member.value) <= 64
        assert member == member.value  # StrEnum: stored rows read back as members
