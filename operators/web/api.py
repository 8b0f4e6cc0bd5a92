"""Routes of the web area: the wallet page at `/`, its static files under `/web/`, QR codes,
and the demo deposit. The page and its files are public (they hold no data); every call the
page makes to the API is signed in the browser."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cbdc.errors import NotFound
from cbdc.web.auth import StrictJSONRoute
from operators.deps import Caller, RequestHash, State, wallet_or_staff
from operators.web import demo
from operators.web.errors import DemoDepositsDisabled
from operators.web.qr import MAX_TEXT, qr_svg
from operators.web.schemas import DemoDeposit, DemoDepositDone

router = APIRouter(route_class=StrictJSONRoute)

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page runs only its own files: no inline script or style, nothing fetched elsewhere, not
# framed (a signing key lives in this origin's IndexedDB).
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _static_files() -> dict[str, Path]:
    return {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES and p.is_file()}


FILES = _static_files()  # a fixed list: a request never names a path of its own


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()  # once per file and process, not per request


def _file_response(name: str) -> Response:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no file {name!r}")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(_read(path), media_type=MEDIA_TYPES[path.suffix], headers=headers)


@router.get("/", include_in_schema=False)
def wallet_page() -> Response:
    """The web wallet."""
    return _file_response("index.html")


@router.get("/web/qr.svg", tags=["web"], response_class=Response)
def qr_code(text: Annotated[str, Query(min_length=1, max_length=MAX_TEXT)]) -> Response:
    """A QR code of `text` (at most 512 characters) as SVG."""
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"}
    return Response(qr_svg(text), media_type=MEDIA_TYPES[".svg"], headers=headers)


@router.get("/web/settings.json", tags=["web"])
def web_settings(state: State) -> dict[str, bool]:
    """What the page offers on this network: `demo_deposits`."""
    return {"demo_deposits": state.config.demo_deposits}


@router.get("/web/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    return _file_response(name)


@router.post("/v1/wallets/{wallet_id}/demo-deposit", tags=["wallets"])
def demo_deposit(
    wallet_id: str, body: DemoDeposit, caller: Caller, state: State, h: RequestHash
) -> DemoDepositDone:
    """Demo only: credit the wallet holder's simulated bank deposit (as staff's
    `POST /v1/admin/customers/{id}/deposit` does), signed by the wallet itself (or staff). The
    envelope's nonce is the reference. Refused with 403 `demo_deposits_disabled` on a network
    started with `cbdc up --no-demo-deposits` (`CBDC_DEMO_DEPOSITS=false`)."""
    wallet_or_staff(caller, wallet_id)
    if not state.config.demo_deposits:
        raise DemoDepositsDisabled("this network was started without demo deposits")
    done = state.uow.run(
        caller,
        lambda s: demo.credit_demo_deposit(
            s,
            state.ctx,
            wallet_id=wallet_id,
            amount=body.amount,
            key_id=caller.key_id,
            nonce=caller.nonce,
            request_hash=h,
        ),
    )
    return DemoDepositDone(**done)
