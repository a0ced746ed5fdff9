"""The console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium against `execution-engine serve`.

With CI set these tests must run (a missing browser fails them); elsewhere they skip.
Screenshots of the main screens go to `test-artifacts/console/` (git-ignored; override with
EE_TEST_ARTIFACTS) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# selenium is a declared test dependency (the `test` extra): a missing one is an error
# everywhere, never a silent skip.
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.api._console import client, console_server
from tests.api._server import Server
from tests.api._support import TOKEN_OF, rpm_message
from tests.conftest import _running_in_ci

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("EE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,900",
)
WAIT = 5.0


def _browser_paths() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        reason = "chromium and chromium-driver are not installed (.ci/run installs them)"
        if _running_in_ci():
            pytest.fail(f"{reason}; CI is set: the browser tests must run")
        pytest.skip(reason)
    return browser, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with console_server(tmp_path_factory.mktemp("console-browser")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _until(browser: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    try:
        # The page redraws its tables as data arrives: an element read a moment ago may be
        # gone; the next poll looks again.
        wait = WebDriverWait(
            browser, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        )
        return wait.until(check)
    except TimeoutException:
        _shot(browser, "failure")
        raise AssertionError(f"not true within {WAIT} s: {what}") from None


def _shot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _visible(browser: WebDriver, element_id: str) -> bool:
    found = browser.find_elements(By.ID, element_id)
    return bool(found) and found[0].is_displayed()


def _sign_in(browser: WebDriver, server: Server, token: str) -> None:
    # Signed out on a page of the same origin that runs no console script (one still
    # signing in would store its token again after the clear).
    browser.get(f"{server.url}/health")
    browser.execute_script("sessionStorage.clear()")
    browser.get_log("browser")  # drained: that JSON page's missing favicon is no console error
    browser.get(f"{server.url}/console")
    field = _until(browser, lambda b: b.find_element(By.ID, "token"), "the sign-in form")
    field.send_keys(token)
    browser.find_element(By.ID, "sign-in-button").click()


def _signed_in(browser: WebDriver, server: Server, role: str) -> None:
    _sign_in(browser, server, TOKEN_OF[role])
    _until(
        browser,
        lambda b: b.find_element(By.ID, "who-role").text.lower() == role,
        f"signed in as {role}",
    )
    _until(browser, lambda b: b.find_element(By.ID, "live").text == "LIVE", "the live stream")


def _controls(browser: WebDriver) -> list[str]:
    return [
        b.get_attribute("id") or ""
        for b in browser.find_elements(By.CSS_SELECTOR, "#controls button")
    ]


def _text(browser: WebDriver, selector: str) -> str:
    """The text of the first match, read in one step (the page redraws its tables)."""
    found = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
        selector,
    )
    return str(found) if found is not None else ""


def _firm_state(browser: WebDriver) -> str:
    return _text(browser, '#state-rows tr[data-scope="Firm-wide"] td[data-field="state"]')


def _act(
    browser: WebDriver, action: str, reason: str, shot: str | None = None, symbol: str = ""
) -> None:
    browser.find_element(By.ID, f"action-{action}").click()
    _until(browser, lambda b: _visible(b, "action-dialog"), f"the {action} dialog")
    browser.find_element(By.ID, "action-reason").send_keys(reason)
    if symbol:
        browser.find_element(By.ID, "action-symbol").send_keys(symbol)
    if shot:
        _shot(browser, shot)
    browser.find_element(By.ID, "action-confirm").click()
    _until(browser, lambda b: not _visible(b, "action-dialog"), f"the {action} dialog closes")


def _no_page_errors(browser: WebDriver) -> None:
    """No script error and no Content-Security-Policy violation in the page's console."""
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_a_bad_token_shows_a_clear_message(browser: WebDriver, server: Server) -> None:
    _sign_in(browser, server, "not-a-configured-token")
    error = _until(
        browser,
        lambda b: _visible(b, "sign-in-error") and b.find_element(By.ID, "sign-in-error"),
        "the sign-in error",
    )
    assert "not valid" in error.text
    assert "401" in error.text
    assert not _visible(browser, "console")
    assert browser.execute_script("return sessionStorage.length") == 0
    _shot(browser, "bad-token")
    browser.get_log("browser")  # the refused /whoami is logged as a failed request: expected


def test_a_viewer_sees_the_desk_and_no_controls(browser: WebDriver, server: Server) -> None:
    _signed_in(browser, server, "viewer")
    assert _controls(browser) == []
    assert _firm_state(browser) == "ACTIVE"
    _until(browser, lambda b: b.find_element(By.ID, "health-status").text == "OK", "health ok")
    health = browser.find_element(By.ID, "health").text
    assert "Terminal" in health
    assert "Journal head" in health
    assert browser.execute_script("return sessionStorage.length") == 1
    assert TOKEN_OF["viewer"] not in browser.current_url
    _no_page_errors(browser)


def test_executions_submitted_through_the_api_appear_live(
    browser: WebDriver, server: Server
) -> None:
    _signed_in(browser, server, "trader")
    with client(server, "trader") as trader:
        desk = [("EURUSD", 1, 95000), ("GBPUSD", -1, 40000), ("USDJPY", 1, 10000)]
        for n, (symbol, direction, units) in enumerate(desk):
            message = rpm_message(f"desk-{n}", symbol=symbol, direction=direction, units=units)
            assert trader.post("/execute", json=message).status_code == 200
        refused = rpm_message("desk-refused", status="REJECTED")
        assert trader.post("/execute", json=refused).status_code == 200
        sent = time.monotonic()
        execution_id = trader.post(
            "/execute", params={"wait": 0}, json=rpm_message("live-1")
        ).json()["execution_id"]
        row = f'#execution-rows tr[data-id="{execution_id}"]'
        _until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, row), "the new execution's row")
        assert time.monotonic() - sent < 2.0
        status = f'{row} td[data-field="status"]'
        _until(
            browser,
            lambda b: b.find_element(By.CSS_SELECTOR, status).text == "FILLED",
            "its fill on the page",
        )
    newest = browser.execute_script(
        "return document.querySelector('#execution-rows tr').dataset.id"
    )
    assert newest == execution_id  # newest first
    _until(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#chart-outcomes svg rect"),
        "the charts of the last hour",
    )
    _shot(browser, "overview")

    browser.find_element(By.CSS_SELECTOR, row).click()
    _until(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#event-rows tr")) >= 2,
        "the execution's journal events",
    )
    assert execution_id in browser.find_element(By.ID, "detail-fields").text
    _shot(browser, "execution-detail")
    browser.find_element(By.ID, "detail-close").click()
    _no_page_errors(browser)


def test_a_trader_goes_reduce_only_then_flattens(browser: WebDriver, server: Server) -> None:
    with client(server, "trader") as trader:  # a position to flatten
        assert trader.post("/execute", json=rpm_message("to-flatten")).status_code == 200
    _signed_in(browser, server, "trader")
    _act(browser, "reduce", "news in 5 minutes")
    _until(browser, lambda b: _firm_state(b) == "REDUCING", "REDUCING on the page")
    with client(server, "viewer") as viewer:
        state = viewer.get("/trading-state").json()
    assert (state["state"], state["reason"]) == ("REDUCING", "news in 5 minutes")
    assert state["changed_by"].startswith("trader:")
    _shot(browser, "reducing")
    _act(browser, "flatten", "flat before the news", symbol="EURUSD")
    result = _until(
        browser,
        lambda b: (
            _visible(b, "action-result")
            and "positions_closed" in b.find_element(By.ID, "action-result").text
            and b.find_element(By.ID, "action-result")
        ),
        "the flatten report",
    )
    assert '"positions_closed": 0' not in result.text
    _no_page_errors(browser)


def test_a_trader_halts_with_a_reason_and_cannot_resume(browser: WebDriver, server: Server) -> None:
    _signed_in(browser, server, "trader")
    assert "action-halt" in _controls(browser)
    assert "action-resume" not in _controls(browser)
    _act(browser, "halt", "desk drill: spread blow-out", shot="halt-dialog")
    _until(browser, lambda b: _firm_state(b) == "HALTED", "HALTED on the page")
    assert browser.find_element(By.ID, "state-badge").text == "HALTED"
    with client(server, "viewer") as viewer:
        state = viewer.get("/trading-state").json()
    assert state["state"] == "HALTED"
    assert state["reason"] == "desk drill: spread blow-out"
    assert state["changed_by"].startswith("trader:")
    _shot(browser, "halted")
    _no_page_errors(browser)


def test_an_admin_resumes(browser: WebDriver, server: Server) -> None:
    with client(server, "trader") as trader:
        trader.post("/halt", json={"reason": "before the admin resumes"})
    _signed_in(browser, server, "admin")
    _until(browser, lambda b: _firm_state(b) == "HALTED", "HALTED on the page")
    assert {"action-halt", "action-resume"} <= set(_controls(browser))
    _act(browser, "resume", "drill over, spreads normal")
    _until(browser, lambda b: _firm_state(b) == "ACTIVE", "ACTIVE on the page")
    with client(server, "viewer") as viewer:
        state = viewer.get("/trading-state").json()
    assert (state["state"], state["reason"]) == ("ACTIVE", "drill over, spreads normal")
    assert state["changed_by"].startswith("admin:")
    _no_page_errors(browser)


def test_the_audit_export_downloads_csv_for_a_date_range(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    with client(server, "trader") as trader:
        assert trader.post("/execute", json=rpm_message("audited")).status_code == 200
    _signed_in(browser, server, "viewer")
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    browser.find_element(By.CSS_SELECTOR, "#audit-form button[type=submit]").click()
    _until(browser, lambda b: "Downloaded" in _text(b, "#audit-message"), "the export")
    files = _until(browser, lambda b: list(tmp_path.glob("audit_*.csv")), "the CSV file")
    text = files[0].read_text()
    assert text.startswith("execution_id,")
    assert ",audited," in text
    _no_page_errors(browser)


def test_the_console_reads_on_a_phone(browser: WebDriver, server: Server) -> None:
    with client(server, "trader") as trader:
        assert trader.post("/execute", json=rpm_message("phone")).status_code == 200
    _signed_in(browser, server, "trader")
    browser.set_window_size(390, 844)
    try:
        _until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#execution-rows tr"), "rows")
        _shot(browser, "phone")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        viewport = browser.execute_script("return window.innerWidth")
        assert width <= viewport  # no sideways scrolling of the page (tables scroll inside)
    finally:
        browser.set_window_size(1440, 900)
