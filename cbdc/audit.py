"""`cbdc audit`: the cross-tier conservation-of-money check against a running network.

It first lets every operator drain its outbox (so money in flight lands), then reads the central
bank's audit and each operator's audit and checks, besides each side's own invariants:

    for each operator X:
        live tokens registered to X at the central bank
          == value of the tokens in X's vault
          == X's vault float + X's wallets + X's in-transit balances
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from cbdc.crypto import SigningKey
from cbdc.http import SignedClient
from cbdc.settings import NetworkConfig


def _clients(network: NetworkConfig) -> tuple[SignedClient, dict[str, SignedClient]]:
    cb = network.central_bank
    admin = SignedClient(
        httpx.Client(base_url=cb.url, timeout=60),
        key=SigningKey.load(Path(cb.admin_key_file)),
        key_id="admin",
        server_public_key=cb.public_key,
    )
    staff = {
        node.code: SignedClient(
            httpx.Client(base_url=node.url, timeout=60),
            key=SigningKey.load(Path(node.key_file)),
            key_id=f"operator:{node.code}",
        )
        for node in network.operators
    }
    return admin, staff


def drain(staff: dict[str, SignedClient], *, timeout: float) -> dict[str, int]:
    """Run outbox jobs on every operator until none is pending or the timeout passes. Under
    net settlement, payments waiting for a clearing cycle count as pending too (the central
    bank's timer closes the cycles)."""
    deadline = time.time() + timeout
    pending: dict[str, int] = {}
    while True:
        pending = {}
        for code, client in staff.items():
            answer = client.request("POST", "/v1/admin/jobs/run")
            net = answer.get("net", {})
            pending[code] = int(answer["outbox"].get("pending", 0)) + sum(
                int(net.get(k, 0))
                for k in ("items_open", "items_submitted", "obligations_unapplied")
            )
        if not any(pending.values()) or time.time() > deadline:
            return pending
        time.sleep(0.3)


def run_audit(network: NetworkConfig, *, drain_timeout: float = 30) -> dict[str, Any]:
    admin, staff = _clients(network)
    pending = drain(staff, timeout=drain_timeout)
    central = admin.request("GET", "/v1/admin/audit")
    operators = {code: client.request("GET", "/v1/admin/audit") for code, client in staff.items()}
    checks: list[dict[str, Any]] = [
        {**c, "name": f"central bank: {c['name']}"} for c in central["checks"]
    ]
    for code, report in operators.items():
        checks += report["checks"]
        registered = central["operators"].get(code, {}).get("live_token_value", 0)
        checks.append(
            {
                "name": f"{code}: live tokens at central bank == tokens in vault",
                "left": registered,
                "right": report["vault_token_value"],
                "ok": registered == report["vault_token_value"],
            }
        )
        held = report["vault_float"] + report["wallets"] + report["in_transit_total"]
        checks.append(
            {
                "name": f"{code}: live tokens at central bank == float + wallets + in transit",
                "left": registered,
                "right": held,
                "ok": registered == held,
            }
        )
    for code, client in staff.items():
        chain = client.request("GET", "/v1/admin/disclosure-log/verify")
        checks.append(
            {
                "name": f"{code}: disclosure log hash chain intact ({chain['length']} orders)",
                "left": 0 if chain["ok"] else 1,
                "right": 0,
                "ok": bool(chain["ok"]),
            }
        )
    checks.append(
        {
            "name": "outboxes drained (no money left in flight)",
            "left": sum(pending.values()),
            "right": 0,
            "ok": not any(pending.values()),
        }
    )
    failed = {code: r["outbox"].get("failed", 0) for code, r in operators.items()}
    return {
        "ok": all(c["ok"] for c in checks),
        "checks": checks,
        "central_bank": {k: central[k] for k in ("issued", "redeemed", "live_token_value")},
        "operators": {
            code: {
                k: r[k]
                for k in (
                    "vault_token_value",
                    "vault_float",
                    "wallets",
                    "in_transit_total",
                    "deposits",
                    "wallet_count",
                )
            }
            for code, r in operators.items()
        },
        "failed_outbox_jobs": failed,
    }
