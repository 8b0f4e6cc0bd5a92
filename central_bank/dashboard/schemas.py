"""Wire types of the dashboard's admin route."""

from __future__ import annotations

from pydantic import BaseModel


class DashboardLogin(BaseModel):
    token: str  # one-time, valid until expires_at; only its sha256 is stored
    url: str  # <central bank URL>/login?token=<token>
    expires_at: str  # ISO 8601
