"""The dashboard's logic: one-time login links, sessions, and the summary the page polls.

A login token and a session id are 256 random bits, handed out once and stored only as their
sha256 (`repository.py`): a copy of the database opens no dashboard. The summary is read in one
transaction (money supply, operators, AML alerts, the clearing queue, the anchors of every
operator's disclosure log), then the operators are asked for their metrics and disclosure logs
outside it (`remote.py`), so no database connection waits on the network.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc import disclosure_log
from cbdc.clock import iso
from cbdc.crypto import SigningKey, sha256_hex
from cbdc.errors import Unauthenticated
from central_bank.analysis import repository as analysis_repo
from central_bank.analysis import service as analysis
from central_bank.certification import repository as certification_repo
from central_bank.clearing import stats as clearing
from central_bank.dashboard import remote
from central_bank.dashboard import repository as repo

LOGIN_VALID = timedelta(hours=24)
SESSION_VALID = timedelta(hours=12)
RECENT = 20  # newest alerts and disclosure-log entries shown
SESSION_COOKIE = "cbdc_dashboard"


class DashboardLoginRequired(Unauthenticated):
    code = "dashboard_login_required"
    title = "The dashboard needs a login link"


def _hash(secret: str) -> str:
    return sha256_hex(secret.encode())


def create_login(session: Session, *, now: datetime) -> tuple[str, datetime]:
    """A new one-time login token (returned once, stored hashed) and when it expires."""
    repo.prune_expired(session, now=now)
    token = secrets.token_urlsafe(32)
    expires_at = now + LOGIN_VALID
    repo.add_login(session, token_hash=_hash(token), now=now, expires_at=expires_at)
    return token, expires_at


def open_session(session: Session, *, token: str, now: datetime) -> str | None:
    """Use the login token (once) and open a session: its id, or None when the token is
    unknown, used or expired."""
    if not token or len(token) > 200:
        return None
    login_hash = _hash(token)
    if not repo.use_login(session, token_hash=login_hash, now=now):
        return None
    session_id = secrets.token_urlsafe(32)
    repo.add_session(
        session,
        id_hash=_hash(session_id),
        login_hash=login_hash,
        now=now,
        expires_at=now + SESSION_VALID,
    )
    return session_id


def session_valid(session: Session, *, session_id: str | None, now: datetime) -> bool:
    if not session_id or len(session_id) > 200:
        return False
    return repo.session_valid(session, id_hash=_hash(session_id), now=now)


def require_session(session: Session, *, session_id: str | None, now: datetime) -> None:
    if not session_valid(session, session_id=session_id, now=now):
        raise DashboardLoginRequired(
            "open the login link printed by `cbdc up` or `cbdc dashboard` to start a session"
        )


# ------------------------------------------------------------------ summary


def local_summary(session: Session) -> dict[str, Any]:
    """Everything the central bank knows itself, in one transaction."""
    operators = certification_repo.list_operators(session)
    anchors: dict[str, list[tuple[int, str]]] = {o.code: [] for o in operators}
    for a in analysis_repo.disclosure_anchors(session, operator=None):
        anchors.setdefault(str(a["operator"]), []).append((int(a["seq"]), str(a["hash"])))
    return {
        "supply": analysis.money_supply(session),
        "operators": [{"code": o.code, "name": o.name, "status": o.status} for o in operators],
        "central_bank_queues": clearing.queue_depths(session),
        "alerts": {
            "recent": analysis.list_alerts(
                session, rule=None, operator=None, wallet=None, since=None, limit=RECENT
            ),
            "totals_by_rule": analysis.alert_summary(session),
        },
        "anchors": anchors,
    }


def _operator_line(
    entry: dict[str, Any], supply: dict[str, Any], sources: remote.RemoteSources | None
) -> dict[str, Any]:
    code = entry["code"]
    line: dict[str, Any] = next((o for o in supply["by_operator"] if o["operator"] == code), {})
    scraped = remote.operator_metrics(sources, code)
    metrics = scraped["metrics"]
    return {
        **entry,
        "url": None if sources is None else sources.urls.get(code),
        "outstanding": line.get("circulation", 0),
        "reserves": line.get("reserves", 0),
        "reachable": scraped["reachable"],
        "error": scraped["error"],
        "payments_total": None if metrics is None else metrics["payments_total"],
        "refused_total": None if metrics is None else metrics["refused_total"],
        "payments_by_outcome": None if metrics is None else metrics["payments_by_outcome"],
        "queues": None if metrics is None else metrics["queues"],
        "metrics": metrics,
    }


def _log_entry(row: dict[str, Any]) -> dict[str, Any]:
    raw_entry = row.get("entry")
    entry: dict[str, Any] = raw_entry if isinstance(raw_entry, dict) else {}
    raw_order = entry.get("order")
    order: dict[str, Any] = raw_order if isinstance(raw_order, dict) else {}
    return {
        "seq": row.get("seq"),
        "at": entry.get("at") or row.get("created_at"),
        "wallet": order.get("wallet_id"),
        "basis": order.get("legal_basis"),
        "requester": order.get("requester"),
        "released": entry.get("released"),
    }


def _disclosure(
    code: str,
    anchors: list[tuple[int, str]],
    sources: remote.RemoteSources | None,
    *,
    key: SigningKey,
    regulator_key: str | None,
) -> dict[str, Any]:
    rows, error = remote.disclosure_log(sources, code, key=key)
    if rows is None:
        return {
            "operator": code,
            "reachable": False,
            "error": error,
            "ok": None,
            "length": None,
            "head": None,
            "anchored": max((seq for seq, _ in anchors), default=0),
            "problems": [],
            "entries": [],
        }
    try:
        checked = disclosure_log.verify_log(
            rows, regulator_key=regulator_key, operator=code, anchors=anchors
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        # Rows without a seq, hash or entry of the right type: a broken log, not a 500.
        checked = {
            "ok": False,
            "length": len(rows),
            "head": None,
            "anchored": max((seq for seq, _ in anchors), default=0),
            "problems": [{"seq": 0, "reason": "entry_malformed"}],
        }
    return {
        "operator": code,
        "reachable": True,
        "error": None,
        "ok": checked["ok"],
        "length": checked["length"],
        "head": checked["head"],
        "anchored": checked["anchored"],
        "problems": checked["problems"],
        "entries": [_log_entry(r) for r in reversed(rows[-RECENT:])],
    }


def summary(
    local: dict[str, Any],
    *,
    sources: remote.RemoteSources | None,
    key: SigningKey,
    regulator_key: str | None,
    currency: str,
    decimals: int,
    now: datetime,
) -> dict[str, Any]:
    """The page's data: `local_summary` joined with what the operators answer."""
    supply = local["supply"]
    alerts = local["alerts"]
    entries = local["operators"]
    # The operators are asked in parallel: one slow operator costs one timeout, not one each.
    with ThreadPoolExecutor(max_workers=max(1, min(8, 2 * len(entries)))) as pool:
        lines = pool.map(lambda e: _operator_line(e, supply, sources), entries)
        logs = pool.map(
            lambda e: _disclosure(
                e["code"],
                local["anchors"].get(e["code"], []),
                sources,
                key=key,
                regulator_key=regulator_key,
            ),
            entries,
        )
        operators, disclosure = list(lines), list(logs)
    return {
        "currency": currency,
        "decimals": decimals,
        "at": iso(now),
        "network_known": sources is not None,
        "payments_total_counts": list(remote.PAYMENT_OUTCOMES),
        "supply": supply,
        "operators": operators,
        "central_bank": {"queues": local["central_bank_queues"]},
        "alerts": {
            "recent": alerts["recent"],
            "totals_by_rule": alerts["totals_by_rule"],
            "total": sum(alerts["totals_by_rule"].values()),
        },
        "disclosure": disclosure,
    }
