"""Routes of the dashboard: the admin's one-time login links, the login itself (a session
cookie), the page at `/`, its static files and the summary it polls.

Only `POST /v1/admin/dashboard/logins` is a signed request (the admin's key). The page and its
summary are for a browser: a session cookie (`cbdc_dashboard`, HttpOnly, SameSite=Lax) that
a one-time login link opens. Tokens and sessions live in the database, so any worker answers.

Lax, not Strict: the cookie authorises only GET reads (the page, its summary, its static
files); every change of state is a signed request, which no cookie authorises, so a request
from another site can do nothing with it. Strict would withhold the cookie from the redirect
that follows a login link opened from another site (mail, chat): the page would say "login
required" until reloaded.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Request, Response
from fastapi.responses import HTMLResponse

from cbdc.clock import iso
from cbdc.db import transaction
from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.dashboard import pages, remote
from central_bank.dashboard import service as dashboard
from central_bank.dashboard.schemas import DashboardLogin
from central_bank.web import Caller, State

router = APIRouter(route_class=StrictJSONRoute)
SessionCookie = Annotated[str | None, Cookie(alias=dashboard.SESSION_COOKIE)]


def _sources(request: Request) -> remote.RemoteSources | None:
    """The operators' URLs and the metrics token (`central_bank.app.app_from_env` sets them
    from the network file); None for an app built without a network (tests, embedding)."""
    return getattr(request.app.state, "dashboard_sources", None)


@router.post(
    "/v1/admin/dashboard/logins", status_code=201, response_model=DashboardLogin, tags=["admin"]
)
def create_login(caller: Caller, state: State, request: Request) -> DashboardLogin:
    """A one-time login link for the dashboard at `/`: valid 24 h, usable once; its session
    lasts 12 h. `cbdc up` and `cbdc dashboard` print one."""
    require_role(caller, "admin")
    token, expires_at = state.uow.run(
        caller, lambda s: dashboard.create_login(s, now=state.clock())
    )
    sources = _sources(request)
    base = (sources.central_bank_url if sources else None) or str(request.base_url)
    return DashboardLogin(
        token=token,
        url=f"{base.rstrip('/')}/login?token={quote(token)}",
        expires_at=iso(expires_at),
    )


@router.get("/login", include_in_schema=False)
def login(state: State, token: str = "") -> Response:
    """Use a login link: a session cookie and 303 to `/`; a used, expired or unknown link gets
    a page (401) saying how to get a new one."""
    session_id = transaction(
        state.factory, lambda s: dashboard.open_session(s, token=token, now=state.clock())
    )
    if session_id is None:
        return pages.page("link-expired.html", status=401)
    answer = Response(status_code=303, headers={"Location": "/", "Cache-Control": "no-store"})
    max_age = int(dashboard.SESSION_VALID.total_seconds())
    answer.headers["Set-Cookie"] = (
        f"{dashboard.SESSION_COOKIE}={session_id}; HttpOnly; SameSite=Lax; Path=/; "
        f"Max-Age={max_age}"
    )
    return answer


@router.get("/", include_in_schema=False)
def dashboard_page(state: State, session_id: SessionCookie = None) -> HTMLResponse:
    """The dashboard with a session; without, a page (401) saying how to log in."""
    valid = transaction(
        state.factory,
        lambda s: dashboard.session_valid(s, session_id=session_id, now=state.clock()),
    )
    return pages.page("index.html") if valid else pages.page("login-required.html", status=401)


@router.get("/dashboard/api/summary", tags=["dashboard"])
def summary(state: State, request: Request, session_id: SessionCookie = None) -> Any:
    """Money supply, operators (payments and queues scraped from their `/metrics`), AML
    alerts and every operator's disclosure log checked against the central bank's anchors.
    Needs the dashboard's session cookie (401 `dashboard_login_required`)."""

    def read(s: Any) -> dict[str, Any]:
        dashboard.require_session(s, session_id=session_id, now=state.clock())
        return dashboard.local_summary(s)

    local = transaction(state.factory, read)
    return dashboard.summary(
        local,
        sources=_sources(request),
        key=state.cb.key,
        regulator_key=state.config.regulator_public_key,
        currency=state.cb.currency,
        decimals=state.decimals,
        now=state.clock(),
    )


@router.get("/dashboard/{name}", include_in_schema=False)
def dashboard_asset(name: str) -> Response:
    """The page's script and style sheet (public: they hold no data)."""
    return pages.asset(name)
