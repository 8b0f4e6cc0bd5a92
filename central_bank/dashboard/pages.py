"""The dashboard's HTML pages and static assets (`static/`), served with a strict
Content-Security-Policy: no inline script or style, nothing from elsewhere. The pages hold no
data: the dashboard page fetches it from `/dashboard/api/summary` with its session cookie."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi.responses import HTMLResponse, Response

from cbdc.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\.(js|css|svg)$")
CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
# The files an asset name may be (a fixed list, so a request costs no look at the disk).
ASSETS = frozenset(p.name for p in STATIC.iterdir() if p.is_file())
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the login link's token never leaves in a Referer
}


class UnknownAsset(NotFound):
    code = "unknown_asset"
    title = "No such dashboard file"


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def page(name: str, status: int = 200) -> HTMLResponse:
    """One of the HTML pages in `static/` (index.html, login-required.html, link-expired.html)."""
    return HTMLResponse(_read(name), status_code=status, headers=PAGE_HEADERS)


def asset(name: str) -> Response:
    """A static asset by name (no paths: a name is one of the files in `static/`)."""
    match = ASSET_NAME.match(name)
    if match is None or name not in ASSETS:
        raise UnknownAsset(f"{name!r} is not a dashboard file")
    return Response(
        _read(name),
        media_type=CONTENT_TYPES[match.group(1)],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
