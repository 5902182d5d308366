"""The console in a real browser: Debian's headless chromium through its chromium-driver
(``make browser`` installs both; selenium never downloads one). Sign in, watch a running task
turn settled without a reload, see a failed delivery on the timeline, at desktop width and
at a phone's 390 px, then redrive it once the receiver is back and see it delivered once.
Screenshots are saved under the test's tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gateway.local import WebhookReceiver
from tests.api.conftest import KEYS
from tests.api.helpers import new_id
from tests.conftest import WEBHOOK_SECRET

pytestmark = [pytest.mark.restate, pytest.mark.edge_only]  # checks the page, not the engine

CHROMEDRIVER = "/usr/bin/chromedriver"
#: the live update swaps the timeline in: an element found a moment ago may be gone
LIVE_SWAP = (StaleElementReferenceException,)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMEDRIVER).exists() and shutil.which("chromium")):
        pytest.fail("chromium and chromium-driver are missing: run `make browser`")
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must not fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def failing() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET, responses=[500] * 10).start()
    yield receiver
    receiver.stop()


def _count(driver: webdriver.Chrome, css: str) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length;",
                                     css))


def _text(driver: webdriver.Chrome, css: str) -> str:
    """The element's text, read in one step (the live update may swap it in between two)."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';",
        css)
    return str(text)


def test_a_running_task_turns_settled_live_and_its_failure_shows(
        api_url: str, http: httpx.Client, browser: webdriver.Chrome,
        failing: WebhookReceiver, tmp_path: Path) -> None:
    browser.set_window_size(1280, 900)
    browser.get(f"{api_url}/console/")
    assert "/console/login" in browser.current_url  # not signed in yet
    browser.find_element(By.ID, "api_key").send_keys(KEYS.full)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "Recent tasks" in d.title)

    task_id = new_id("browser")
    r = http.post("/v1/tasks", json={
        "task_id": task_id, "prompt": "Summarise the nightly run", "agent": "slow",
        "labels": {"team": "console-browser"},
        "subscriptions": [f"{task_id}@example.com", f"webhook:{failing.url}/hooks/{task_id}"]})
    assert r.status_code == 201, r.text

    browser.get(f"{api_url}/console/tasks/{task_id}")
    assert _text(browser, "#task-state") == "running"
    browser.save_screenshot(str(tmp_path / "task-running.png"))
    browser.execute_script("window.sameDocument = true;")  # gone if the page reloads
    WebDriverWait(browser, 60, poll_frequency=0.2, ignored_exceptions=LIVE_SWAP).until(
        lambda d: _text(d, "#live[data-live='0'] #task-state") == "succeeded")
    assert browser.execute_script("return window.sameDocument === true;")
    assert _text(browser, "#failed-count") == "1 failed"
    failed = browser.find_element(By.CSS_SELECTOR, ".card.tone-bad")
    assert "HTTP 500" in failed.text and "attempt 3" in failed.text
    assert "delivered by email" in browser.find_element(By.CSS_SELECTOR, ".card.tone-ok").text
    browser.save_screenshot(str(tmp_path / "task-desktop.png"))

    # the list at desktop width: the failed task's row stands out
    browser.get(f"{api_url}/console/?label=team%3Dconsole-browser")
    row = browser.find_element(By.CSS_SELECTOR, "table.tasks tr.row-bad")
    assert task_id in row.text and "1 failed" in row.text
    browser.save_screenshot(str(tmp_path / "tasks-desktop.png"))

    # a phone: nothing wider than the screen, the failure still first on the page
    browser.set_window_size(390, 844)
    for path, name in ((f"/console/tasks/{task_id}", "task-phone.png"),
                       ("/console/?label=team%3Dconsole-browser", "tasks-phone.png")):
        browser.get(api_url + path)
        width = browser.execute_script("return document.documentElement.scrollWidth;")
        inner = browser.execute_script("return window.innerWidth;")
        assert width <= inner, f"{path} is {width}px wide on a {inner}px screen"
        browser.save_screenshot(str(tmp_path / name))
    assert "1 failed" in browser.find_element(By.CSS_SELECTOR, "tr.row-bad").text

    # the receiver is back: Redrive on the failed delivery sends it once, with the same id
    failing.responses = []
    assert failing.delivered() == []
    failed_ids = {w.headers.get("webhook-id") for w in failing.requests}
    assert len(failed_ids) == 1 and len(failing.requests) == 3
    browser.set_window_size(1280, 900)
    browser.get(f"{api_url}/console/tasks/{task_id}")
    browser.find_element(By.CSS_SELECTOR, ".card.tone-bad form[action$='/redrive'] button").click()
    WebDriverWait(browser, 60, poll_frequency=0.2, ignored_exceptions=LIVE_SWAP).until(
        lambda d: _count(d, ".card.tone-ok") == 2 and _count(d, ".card.tone-bad") == 0)
    delivered = failing.wait_for(1, 10)
    assert [w.headers.get("webhook-id") for w in delivered] == list(failed_ids)
    assert _text(browser, "#task-state") == "succeeded"
    browser.save_screenshot(str(tmp_path / "task-redriven.png"))
    assert len(failing.delivered()) == 1  # once: no second send after the page settled
