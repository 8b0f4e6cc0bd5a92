"""Helpers for the disclosure anchor tests: disclosing, anchors, audits, rewriting the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from cbdc.hashchain import GENESIS, link_hash
from cbdc.http import SignedClient
from orchestration.audit import audit_network
from regulator.client import check_operator_log
from tests.test_compliance_disclosure import identified_wallet, log_entries, order_for, post_order

CODES = ("BKA1", "BKB1")


def regulator_at_central_bank(net: Any) -> SignedClient:
    return SignedClient(
        net.cb,
        key=net.regulator.signing,
        key_id="regulator",
        server_public_key=net.cb_key.public_key,
    )


def anchors(net: Any, code: str | None = None) -> dict[str, Any]:
    params = {"operator": code} if code else None
    return dict(net.admin.request("GET", "/v1/disclosure-anchors", params=params))


def disclose(net: Any, times: int, code: str = "BKA1") -> list[dict[str, Any]]:
    wallet = identified_wallet(net) if code == "BKA1" else net.open_wallet(code, wallet_class="III")
    for _ in range(times):
        response = post_order(net, order_for(net, wallet.wallet_id), code)
        assert response.status_code == 200, response.text
    return log_entries(net, code)


def audit(net: Any, heads: dict[str, tuple[int, str]] | None = None) -> dict[str, Any]:
    """`cbdc audit`; `heads`: the regulator's head file, where the audit runs beside it."""
    return audit_network(
        net.admin,
        {code: net.staff(code) for code in CODES},
        regulator_key=net.regulator.signing.public_key,
        central_bank_key=net.cb_key.public_key,
        regulator_heads=heads,
        regulator_heads_at="the test's regulator directory",
        drain_timeout=5,
    )


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["ok"]]


def regulator_check(net: Any, key_dir: Path, code: str = "BKA1") -> dict[str, Any]:
    """What `cbdc regulator log` does for one operator."""
    central = regulator_at_central_bank(net).request("GET", "/v1/disclosure-anchors")
    return check_operator_log(
        net.regulator,
        key_dir,
        code=code,
        rows=log_entries(net, code),
        central=central,
        central_bank_key=net.cb_key.public_key,
    )


def operator_verify(net: Any, code: str = "BKA1") -> dict[str, Any]:
    return dict(net.staff(code).request("GET", "/v1/admin/disclosure-log/verify"))


def rewrite_log(
    engine: Engine, edit: Callable[[int, dict[str, Any]], dict[str, Any] | None]
) -> None:
    """The attack: triggers off (replica mode), `edit` each entry (None: drop it), and every
    hash recomputed so the chain links again."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        rows = conn.execute(text("SELECT seq, entry FROM disclosure_log ORDER BY seq")).all()
        previous = GENESIS
        for seq, entry in rows:
            changed = edit(int(seq), entry)
            if changed is None:
                conn.execute(text("DELETE FROM disclosure_log WHERE seq = :s"), {"s": seq})
                continue
            digest = link_hash(previous, changed)
            conn.execute(
                text(
                    "UPDATE disclosure_log SET prev_hash = :p, entry = CAST(:e AS jsonb), "
                    "hash = :h WHERE seq = :s"
                ),
                {"p": previous, "e": json.dumps(changed), "h": digest, "s": seq},
            )
            previous = digest
