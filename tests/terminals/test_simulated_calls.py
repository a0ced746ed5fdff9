"""Call records, concurrent-call detection, latency per call kind, thread safety."""

from __future__ import annotations

import threading

import pytest

from terminals.simulated import SimulatedTerminal
from tests.terminals import FakeClock, deal, make_sim


def test_calls_are_recorded_with_plain_values() -> None:
    sim = make_sim()
    sim.reset_calls()
    sim.symbol_info_tick("EURUSD")
    request = deal()
    sim.order_send(request)
    sim.positions_get(symbol="EURUSD")
    sim.order_send(deal(comment="x" * 40))
    sim.last_error()
    records = sim.calls
    assert [r.name for r in records] == [
        "symbol_info_tick", "order_send", "positions_get", "order_send", "last_error",
    ]  # fmt: skip
    tick, sent, positions, bad, error = records
    assert tick.args == ("EURUSD",)
    assert tick.result == "Tick"
    assert sent.args == (request,)
    assert sent.result == "OrderSendResult(retcode=10009)"
    assert positions.kwargs == {"symbol": "EURUSD", "ticket": None, "group": None}
    assert positions.result == "tuple[1]"
    assert bad.result == "None (-2, 'Invalid \"comment\" argument')"
    assert error.result == "(-2, 'Invalid \"comment\" argument')"
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert all(r.thread_id == threading.get_ident() for r in records)
    assert all(r.end >= r.start for r in records)
    assert not any(r.concurrent for r in records)
    plain = sent.to_dict()
    assert plain["name"] == "order_send"
    assert plain["args"] == [request]


def test_sent_requests_are_copies_and_include_rejections() -> None:
    sim = make_sim()
    request = deal()
    sim.order_send(request)
    request["volume"] = 99.0
    sim.order_send(deal(volume=0.001))
    sim.order_send(deal(comment="x" * 40))
    sim.set_ipc_alive(False)
    sim.order_send(deal(volume=0.2))
    sent = sim.sent_requests()
    assert [r["volume"] for r in sent] == [0.1, 0.001, 0.1, 0.2]
    sent[0]["volume"] = 5.0
    assert sim.sent_requests()[0]["volume"] == 0.1


def test_reset_calls() -> None:
    sim = make_sim()
    sim.order_send(deal())
    sim.reset_calls()
    assert sim.calls == ()
    assert sim.sent_requests() == []
    assert sim.overlapping_calls() == []


def test_sequential_calls_do_not_overlap() -> None:
    sim = make_sim(ipc_latency=0.002)
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            with lock:  # what the BrokerActor does: one call at a time
                sim.symbol_info_tick("EURUSD")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sim.calls) == 16
    assert sim.overlapping_calls() == []


def test_a_call_started_while_another_is_in_flight_is_flagged() -> None:
    # Deterministic: the terminal's clock blocks inside order_send until released.
    entered, release = threading.Event(), threading.Event()
    blocking = threading.local()
    base = FakeClock()

    def clock() -> float:
        if getattr(blocking, "on", False):
            entered.set()
            assert release.wait(5)
            blocking.on = False
        return base()

    sim = make_sim(clock)
    sim.reset_calls()

    def send() -> None:
        blocking.on = True
        sim.order_send(deal())

    sender = threading.Thread(target=send)
    sender.start()
    assert entered.wait(5)
    sim.last_error()  # from this thread, while order_send is in flight
    release.set()
    sender.join()
    pairs = sim.overlapping_calls()
    assert [(a.name, b.name) for a, b in pairs] == [("order_send", "last_error")]
    by_name = {r.name: r for r in sim.calls}
    assert by_name["last_error"].concurrent
    assert not by_name["order_send"].concurrent
    assert by_name["order_send"].thread_id != by_name["last_error"].thread_id
    assert sim.overlapping_seqs() == [(by_name["order_send"].seq, by_name["last_error"].seq)]
    plain = sim.call_records()
    assert [r["name"] for r in plain] == ["order_send", "last_error"]
    assert plain[1]["concurrent"] is True


def test_two_threads_with_latency_overlap() -> None:
    sim = make_sim(order_send_latency=0.05, ipc_latency=0.05)
    sim.reset_calls()
    barrier = threading.Barrier(2)

    def call(work: str) -> None:
        barrier.wait()
        if work == "send":
            sim.order_send(deal())
        else:
            sim.account_info()

    threads = [threading.Thread(target=call, args=(w,)) for w in ("send", "info")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pairs = sim.overlapping_calls()
    assert len(pairs) == 1
    assert {pairs[0][0].name, pairs[0][1].name} == {"order_send", "account_info"}
    assert any(r.concurrent for r in sim.calls)


def test_latency_per_call_kind() -> None:
    sim = SimulatedTerminal(
        clock=FakeClock(), order_send_latency=0.03, order_check_latency=0.02, ipc_latency=0.01
    )
    assert sim.initialize()
    sim.reset_calls()
    sim.order_send(deal())
    sim.order_check(deal())
    sim.symbol_info("EURUSD")
    sim.history_deals_get(ticket=1)
    sim.last_error()
    durations = {r.name: r.duration for r in sim.calls}
    assert durations["order_send"] >= 0.03
    assert durations["order_check"] >= 0.02
    assert durations["symbol_info"] >= 0.01
    assert durations["history_deals_get"] >= 0.01
    info = sim.terminal_info()
    assert info is not None
    assert info.ping_last == 30000  # microseconds, the order_send round trip


def test_set_latency_changes_one_kind() -> None:
    sim = make_sim()
    sim.set_latency(order_check=0.02)
    sim.reset_calls()
    sim.order_check(deal())
    sim.order_send(deal())
    (check, _) = sim.calls
    assert check.duration >= 0.02
    with pytest.raises(ValueError, match="latency"):
        sim.set_latency(ipc=-1)


def test_latency_is_slept_outside_the_state_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The send's round trip is held open; a call from another thread must still get through.
    sleeping, release = threading.Event(), threading.Event()

    def held_sleep(seconds: float) -> None:
        if seconds > 0:
            sleeping.set()
            assert release.wait(5)

    monkeypatch.setattr("terminals.simulated._sleep", held_sleep)
    sim = make_sim(order_send_latency=0.2)
    sim.reset_calls()
    sender = threading.Thread(target=lambda: sim.order_send(deal()))
    sender.start()
    assert sleeping.wait(5)
    assert sim.account_info() is not None
    release.set()
    sender.join()
    by_name = {r.name: r for r in sim.calls}
    assert by_name["order_send"].start < by_name["account_info"].start
    assert by_name["account_info"].end < by_name["order_send"].end


def test_hammering_from_many_threads_keeps_state_consistent() -> None:
    sim = make_sim()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                result = sim.order_send(deal(sell=bool((n + i) % 2)))
                assert result is not None
                assert result.retcode == 10009
                assert sim.positions_get(ticket=result.order)
        except BaseException as exc:  # collected for the main thread to report
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    orders = sim.history_orders_snapshot()
    assert len(orders) == len({o.ticket for o in orders}) == 320
    deals = sim.history_deals_snapshot()
    assert len({d.ticket for d in deals}) == 320
    assert len(sim.positions_snapshot()) == 320
    assert len([r for r in sim.calls if r.name == "order_send"]) == 320
