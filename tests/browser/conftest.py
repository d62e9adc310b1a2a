"""A real browser (Debian's Chromium, headless, driven by Playwright) against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from app.paths import PROJECT_ROOT
from app.runtime.preflight import free_loopback_port

CHROMIUM = os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The app under uvicorn in its own process, on the suite's database and Redis."""
    port = free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.web.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=PROJECT_ROOT, env=os.environ.copy(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(20)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser, live_server, session):
    """``open_page(user)``: a new browser context signed in as ``user``, on a blank page."""
    from app.services.accounts import start_session
    from app.web.deps import SESSION_COOKIE

    contexts = []

    def opener(user):
        token = start_session(session=session, user=user, lifetime=timedelta(hours=1))
        session.commit()
        context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": live_server}])
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()
