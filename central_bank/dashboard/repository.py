"""All SQL of the dashboard: one-time login tokens and the sessions they open (migration
cb0010). Only sha256 hashes of tokens and session ids are stored."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

# Rows expired this long ago are deleted when a new login is made (a cheap, bounded prune).
KEEP_EXPIRED = timedelta(days=1)


def add_login(session: Session, *, token_hash: str, now: datetime, expires_at: datetime) -> None:
    session.execute(
        text(
            "INSERT INTO dashboard_logins (token_hash, created_at, expires_at) "
            "VALUES (:h, :now, :exp)"
        ),
        {"h": token_hash, "now": now, "exp": expires_at},
    )


def use_login(session: Session, *, token_hash: str, now: datetime) -> bool:
    """Mark the login used, atomically: True for the one caller that used it, False when it is
    unknown, used already or expired."""
    used = session.execute(
        text(
            "UPDATE dashboard_logins SET used_at = :now "
            "WHERE token_hash = :h AND used_at IS NULL AND expires_at > :now "
            "RETURNING token_hash"
        ),
        {"h": token_hash, "now": now},
    ).scalar()
    return used is not None


def add_session(
    session: Session, *, id_hash: str, login_hash: str, now: datetime, expires_at: datetime
) -> None:
    session.execute(
        text(
            "INSERT INTO dashboard_sessions (id_hash, login_hash, created_at, expires_at) "
            "VALUES (:h, :l, :now, :exp)"
        ),
        {"h": id_hash, "l": login_hash, "now": now, "exp": expires_at},
    )


def session_valid(session: Session, *, id_hash: str, now: datetime) -> bool:
    found = session.execute(
        text("SELECT 1 FROM dashboard_sessions WHERE id_hash = :h AND expires_at > :now"),
        {"h": id_hash, "now": now},
    ).scalar()
    return found is not None


def prune_expired(session: Session, *, now: datetime) -> None:
    before = now - KEEP_EXPIRED
    session.execute(text("DELETE FROM dashboard_sessions WHERE expires_at < :t"), {"t": before})
    session.execute(
        text(
            "DELETE FROM dashboard_logins l WHERE l.expires_at < :t AND NOT EXISTS "
            "(SELECT 1 FROM dashboard_sessions s WHERE s.login_hash = l.token_hash)"
        ),
        {"t": before},
    )
