"""A headless Chromium on a dashboard page, for the browser test, the actor-step benchmark and the
README's screenshot (Playwright, a dev dependency, drives the system's Chromium: browser downloads
by automation libraries do not work on a closed network). `make setup` installs Debian's
`chromium`; `SERL_CHROMIUM` names another binary (Ubuntu's Chromium is a snap: use Google
Chrome's .deb there)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

# what a root user in a container needs; no background traffic on a closed network
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")


def chromium_binary() -> str:
    """The Chromium to drive; FileNotFoundError naming how to get one."""
    found = os.environ.get("SERL_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not found:
        raise FileNotFoundError(
            "no Chromium: run `make setup` (on Debian it installs the chromium package) or set "
            "SERL_CHROMIUM to a Chromium or Chrome binary")
    return found


@contextmanager
def dashboard_page(url: str, width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright page showing `url`, closed (with its browser) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(),
                                             args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()
