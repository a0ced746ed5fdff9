"""The simulator's `rewrite_comment`: brokers may rewrite order comments (mt5-api.md §3)."""

from __future__ import annotations

import pytest

from tests.terminals import deal, make_sim


def test_rewrite_comment_changes_that_order_and_its_deals_only() -> None:
    sim = make_sim()
    first = sim.order_send(deal(comment="ee-first"))
    second = sim.order_send(deal(comment="ee-second"))
    assert first is not None
    assert second is not None
    before = len(sim.calls)

    sim.rewrite_comment(first.order, "[sl 1.0990]")

    orders = sim.history_orders_get(ticket=first.order)
    deals = sim.history_deals_get(ticket=first.order)
    others = sim.history_deals_get(ticket=second.order)
    assert orders is not None
    assert deals is not None
    assert others is not None
    assert [o.comment for o in orders] == ["[sl 1.0990]"]
    assert [d.comment for d in deals] == ["[sl 1.0990]"]
    assert [d.comment for d in others] == ["ee-second"]
    # A control, not an MT5 call: the call log only has the three history queries.
    assert [r.name for r in sim.calls[before:]] == ["history_orders_get"] + [
        "history_deals_get"
    ] * 2


def test_rewrite_comment_refuses_an_unknown_ticket_or_a_non_string() -> None:
    sim = make_sim()
    sent = sim.order_send(deal())
    assert sent is not None

    with pytest.raises(ValueError, match="unknown order ticket"):
        sim.rewrite_comment(12345, "x")
    with pytest.raises(ValueError, match="comment must be a str"):
        sim.rewrite_comment(sent.order, 7)  # type: ignore[arg-type]
