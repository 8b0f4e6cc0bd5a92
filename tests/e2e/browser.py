"""Browser helpers for the web pages' tests: the system Chromium driven by Playwright.

No browser is ever downloaded (`playwright install` is not used): the tests launch the Debian
`chromium` that scripts/setup.sh installs (`/usr/bin/chromium`, or the path in `CBDC_CHROMIUM`)
through Playwright's `executable_path`. When Playwright or the browser is missing, the tests
*skip* with the reason; they never pass without a browser.

Screenshots go to `artifacts/screenshots/` (gitignored); with `CBDC_UPDATE_DOC_SCREENSHOTS=1`
the ones the README shows are copied to `docs/images/` too.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
DOC_IMAGES = REPO / "docs" / "images"
# The page size of every context: screenshots small enough to keep in docs/images/.
VIEWPORT = {"width": 1000, "height": 900}

# Headless, and nothing that reaches outside 127.0.0.1 on its own (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    """The system Chromium: `CBDC_CHROMIUM`, else /usr/bin/chromium, else `chromium` on PATH."""
    configured = os.environ.get("CBDC_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless system Chromium for the duration of the block, or a skip saying why not."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser test needs playwright (the dev extra, scripts/setup.sh): {exc}")
    executable = chromium_executable()
    if executable is None:
        wanted = os.environ.get("CBDC_CHROMIUM") or "/usr/bin/chromium"
        pytest.skip(
            f"browser test needs Chromium at {wanted} (scripts/setup.sh installs Debian's "
            "`chromium`; or set CBDC_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
        except PlaywrightError as exc:
            pytest.skip(f"browser test: Chromium at {executable} did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, *, doc: str | None = None) -> Path:
    """A full-page screenshot `artifacts/screenshots/<name>.png`; copied to
    `docs/images/<doc>.png` when `doc` is given and CBDC_UPDATE_DOC_SCREENSHOTS=1."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if doc is not None and os.environ.get("CBDC_UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{doc}.png")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """`directory` served over HTTP on 127.0.0.1 (a secure context for WebCrypto, like the
    operator's page); yields the base URL."""
    handler = partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
