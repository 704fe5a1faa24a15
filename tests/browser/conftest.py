"""Playwright (sync API) driving Debian's chromium against the real daphne.

Playwright's own browser is never installed: ``executable_path`` points at the system
chromium (STACK-NOTES section 5). Pages come from the session's daphne (``web``), which
is another process, so test data must be committed: browser tests use transactional
databases.

While Playwright's sync API is active an asyncio loop counts as running in the test
thread, so Django hands that thread a second set of database connections (asgiref's
thread-critical Local switches to context storage). ``browser`` gives them what
pytest-django put on the first set and closes them at the end.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[Browser]:
    # Module, not session: a session-wide sync_playwright keeps an event loop running
    # in the main thread and later pytest-asyncio tests fail (STACK-NOTES pitfall 13).
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make chromium` (apt install chromium)"
        )
    outside = {alias: connections[alias] for alias in connections}
    with sync_playwright() as playwright:
        _adopt_test_database_state(outside)
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
            _close_connections()


@pytest.fixture
def page(browser: Browser, web: str) -> Iterator[Page]:
    """A fresh page in its own context (no cookies shared between tests)."""
    context = browser.new_context(base_url=web)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _adopt_test_database_state(outside: dict[str, object]) -> None:
    # serialized_rollback restores the migrations' data (the role groups) after each
    # flush from this attribute; without it the first flush loses them for good.
    for alias, connection in outside.items():
        contents = getattr(connection, "_test_serialized_contents", None)
        if contents is not None:
            connections[alias]._test_serialized_contents = contents


def _close_connections() -> None:
    # Open connections to the test database would make its DROP fail at the end.
    for connection in connections.all(initialized_only=True):
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()
