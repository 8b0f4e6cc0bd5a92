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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
DOC_IMAGES = REPO / "docs" / "images"
# The page size of every context: screenshots small enough to keep in docs/images/.
VIEWPORT: ViewportSize = {"width": 1000, "height": 900}

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
    # From the top: a sticky message bar is drawn where the last click left the scroll
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    if doc is not None and os.environ.get("CBDC_UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        _small_copy(path, DOC_IMAGES / f"{doc}.png")
    return path


def _small_copy(source: Path, target: Path) -> None:
    """A copy for the repository: 128 colours, undithered (a third of the size, the same to the
    eye for flat UI colours), with Pillow (matplotlib's dependency); else a plain copy."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(source, target)
        return
    with Image.open(source) as image:
        small = image.convert("RGB").quantize(
            colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        small.save(target, optimize=True)


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


# Whether the page shows a refusal now: `#problem` present, not hidden, laid out.
_PROBLEM_SHOWN = """
() => {
  const problem = document.querySelector("#problem");
  return Boolean(problem && !problem.hidden
    && (problem.offsetWidth || problem.offsetHeight || problem.getClientRects().length));
}
"""


def problem_text(page: Page) -> str:
    """The refusal the page shows (`[code] title detail`), or "" when none."""
    if not page.evaluate(_PROBLEM_SHOWN):
        return ""
    problem = page.locator("#problem")
    return f"[{problem.get_attribute('data-code')}] {problem.inner_text().strip()}"


def wait_until(
    page: Page, condition: str, what: str, *, arg: Any = None, timeout: float = 20
) -> Any:
    """Poll the JS function `condition(arg)` until it is truthy and return its value; fail at
    once with the page's problem title and detail if the page shows a refusal instead.

    Polled from here with `page.evaluate` (the DevTools protocol, which the pages' strict CSP
    does not cover), every 100 ms."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(condition, arg)
        if value:
            return value
        refusal = problem_text(page)
        if refusal:
            pytest.fail(f"{what}: the page shows a refusal: {refusal}")
        if time.monotonic() > deadline:
            status = page.locator("#status").all_inner_texts()
            pytest.fail(f"{what}: not within {timeout} s; the page's #status says {status}")
        time.sleep(0.1)


def wait_for(page: Page, selector: str, what: str, *, timeout: float = 20) -> None:
    """Wait until `selector` matches (a refusal shown instead fails at once)."""
    wait_until(page, "s => document.querySelector(s) !== null", what, arg=selector, timeout=timeout)


def minor(page: Page, selector: str) -> int:
    """The integer `data-minor` of an amount element."""
    value = page.locator(selector).get_attribute("data-minor")
    assert value is not None, f"{selector} has no data-minor"
    return int(value)


def paste(page: Page, selector: str, text: str) -> str:
    """Paste `text` into `selector` as a person would (clipboard and Ctrl+V: `paste` and
    `input` events); where the headless clipboard does not take it, type it in. Says which."""
    field = page.locator(selector)
    field.fill("")
    try:
        page.evaluate("text => navigator.clipboard.writeText(text)", text)
        field.focus()
        page.keyboard.press("Control+V")
        if field.input_value():
            return "clipboard"
    except Exception:  # no clipboard in this browser: typing fires the same input events
        pass
    field.fill(text)
    return "typed"


def watch(page: Page, errors: list[str]) -> None:
    """Collect into `errors` what a page must never do: throw uncaught, or break its CSP."""
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: uncaught {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"{page.url}: {msg.text}")
            if "Content Security Policy" in msg.text
            else None
        ),
    )
