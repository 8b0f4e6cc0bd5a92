"""`cbdc audit`: the cross-tier conservation-of-money check against a running network.

It first lets every operator drain its outbox (so money in flight lands), then reads the central
bank's audit and each operator's audit and checks, besides each side's own invariants:

    for each operator X:
        live tokens registered to X at the central bank
          == value of the tokens in X's vault
          == X's vault float + X's wallets + X's in-transit balances

and each operator's disclosure log against the regulator's key, the heads the operator
anchored at the central bank (whose chain over them must carry the central bank's signature),
and, where the audit runs beside the regulator's directory, the heads the regulator recorded
from its own disclosure orders (`disclosure_checks`). Without that directory the output says
the regulator's heads were not compared.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from cbdc import disclosure_log
from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience
from cbdc.http import SignedClient
from cbdc.settings import NetworkConfig
from regulator.client import load_anchors

Heads = dict[str, tuple[int, str]]


def _clients(network: NetworkConfig) -> tuple[SignedClient, dict[str, SignedClient]]:
    cb = network.central_bank
    admin = SignedClient(
        httpx.Client(base_url=cb.url, timeout=60),
        key=SigningKey.load(Path(cb.admin_key_file)),
        key_id="admin",
        server_public_key=cb.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )
    staff = {
        node.code: SignedClient(
            httpx.Client(base_url=node.url, timeout=60),
            key=SigningKey.load(Path(node.key_file)),
            key_id=f"operator:{node.code}",
            audience=operator_audience(node.code),
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
    quiet = 0  # passes in a row with nothing pending anywhere
    while True:
        pending = {}
        for code, client in staff.items():
            answer = client.request("POST", "/v1/admin/jobs/run")
            net = answer.get("net", {})
            pending[code] = int(answer["outbox"].get("pending", 0)) + sum(
                int(net.get(k, 0))
                for k in ("items_open", "items_submitted", "obligations_unapplied")
            )
        # A job on one operator can give another work after that one was asked (a forwarded
        # offline claim makes the payer's operator queue a settlement): two quiet passes.
        quiet = 0 if any(pending.values()) else quiet + 1
        if quiet >= 2 or time.time() > deadline:
            return pending
        if quiet:
            continue
        time.sleep(0.3)


def regulator_heads(network: NetworkConfig) -> tuple[Heads | None, str]:
    """The regulator's head file (`log_heads.json` in its directory, where `cbdc regulator log`
    finds it), if this audit can read it: (heads, where) or (None, why not)."""
    directory = Path(network.regulator.key_dir)
    try:
        if not directory.is_dir():
            return None, f"no regulator directory at {directory}"
        return load_anchors(directory), str(directory / "log_heads.json")
    except (OSError, ValueError, TypeError, IndexError) as exc:
        return None, f"{directory / 'log_heads.json'} unreadable ({exc})"


def run_audit(network: NetworkConfig, *, drain_timeout: float = 30) -> dict[str, Any]:
    admin, staff = _clients(network)
    heads, where = regulator_heads(network)
    return audit_network(
        admin,
        staff,
        regulator_key=network.regulator.signing_public_key,
        central_bank_key=network.central_bank.public_key,
        regulator_heads=heads,
        regulator_heads_at=where,
        drain_timeout=drain_timeout,
    )


def audit_network(
    admin: SignedClient,
    staff: dict[str, SignedClient],
    *,
    regulator_key: str,
    central_bank_key: str | None = None,
    regulator_heads: Heads | None = None,
    regulator_heads_at: str = "not given",
    drain_timeout: float = 30,
) -> dict[str, Any]:
    """The audit through the given clients: the central bank's admin, each operator's staff.
    central_bank_key: verifies the central bank's chain over the anchors (default: the key the
    admin client checks responses with). regulator_heads: the regulator's recorded heads (None:
    not available here, and the report says so)."""
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
        # Offline purses are CBDC the operator holds for its devices (operators/offline); the
        # check keeps its name (scripts and tests look for it) and counts them in.
        held = (
            report["vault_float"]
            + report["wallets"]
            + report["in_transit_total"]
            + report.get("offline_purses", 0)
            + report.get("escrows", 0)  # escrow accounts (operators/programmable)
            + report.get("vouchers", 0)  # voucher accounts (operators/programmable)
        )
        offline = report.get("offline") or {}
        checks.append(
            {
                "name": f"{code}: offline claims answered by the payer's operator",
                "left": int(offline.get("claims_forwarding", 0)),
                "right": 0,
                "ok": not offline.get("claims_forwarding", 0),
            }
        )
        checks.append(
            {
                "name": f"{code}: live tokens at central bank == float + wallets + in transit",
                "left": registered,
                "right": held,
                "ok": registered == held,
            }
        )
    logs = disclosure_checks(
        admin,
        staff,
        regulator_key=regulator_key,
        central_bank_key=central_bank_key or admin.server_public_key,
        regulator_heads=regulator_heads,
        regulator_heads_at=regulator_heads_at,
    )
    checks += logs["checks"]
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
            | _offline_summary(r)
            | _programmable_summary(r)
            for code, r in operators.items()
        },
        "failed_outbox_jobs": failed,
        "disclosure_logs": logs["logs"],
    }


def disclosure_checks(
    admin: SignedClient,
    staff: dict[str, SignedClient],
    *,
    regulator_key: str,
    central_bank_key: str | None = None,
    regulator_heads: Heads | None = None,
    regulator_heads_at: str = "not given",
) -> dict[str, Any]:
    """Each operator's disclosure log, checked here (not on the operator's word): hash chain,
    the regulator's signature on every order, every head the operator anchored at the central
    bank still present unchanged, the central bank's signed chain over those anchors, and every
    head in the regulator's head file present unchanged, with as many anchors
    (cbdc/disclosure_log.py). The anchors are read first, so a disclosure made meanwhile can
    only make a log longer than its anchors."""
    registry = admin.request("GET", "/v1/disclosure-anchors")
    directory = {o["code"]: o["public_key"] for o in admin.request("GET", "/v1/operators")}
    checks: list[dict[str, Any]] = []
    logs: dict[str, Any] = {}

    def check(name: str, left: int, right: int = 0) -> None:
        checks.append({"name": name, "left": left, "right": right, "ok": left == right})

    if regulator_heads is None:
        checks.append(
            {
                "name": "regulator's disclosure-log heads NOT compared: not available here "
                f"({regulator_heads_at}); run the audit beside the regulator's directory",
                "left": 0,
                "right": 0,
                "ok": True,
            }
        )
    for code, client in staff.items():
        anchors = [a for a in registry["anchors"] if a["operator"] == code]
        conflicts = [c for c in registry["conflicts"] if c["operator"] == code]
        own = client.request("GET", "/v1/admin/disclosure-log/verify")
        check(
            f"{code}: disclosure log chain and order signatures, as the operator sees them "
            f"({disclosure_log.describe(own) if 'problems' in own else own['ok']})",
            own["broken_at"] or 0,
        )
        rows = client.request("GET", "/v1/regulator/disclosure-log")["entries"]
        result = disclosure_log.verify_log(
            rows,
            regulator_key=regulator_key,
            operator=code,
            anchors=[(int(a["seq"]), str(a["hash"])) for a in anchors],
            seen_head=None if regulator_heads is None else regulator_heads.get(code),
            anchors_complete=True,
        )
        logs[code] = result
        check(
            f"{code}: disclosure log ({result['length']} orders) has every order signed by the "
            f"regulator and matches its {len(anchors)} central-bank anchors"
            + (
                ""
                if regulator_heads is None
                else f" and the regulator's recorded head (#{regulator_heads[code][0]})"
                if code in regulator_heads
                else " (no regulator head recorded)"
            )
            + f" ({disclosure_log.describe(result)}); first entry at fault",
            result["broken_at"] or 0,
        )
        unsigned = [
            a["seq"]
            for a in anchors
            if code not in directory
            or not disclosure_log.anchor_signed(
                directory[code], code, int(a["seq"]), str(a["hash"]), str(a["signature"])
            )
        ]
        check(
            f"{code}: disclosure anchors not signed by the operator "
            f"{['#' + str(s) for s in unsigned]}",
            len(unsigned),
        )
        chain = disclosure_log.verify_anchor_chain(
            anchors,
            central_bank_key=central_bank_key,
            operator=code,
            chain_head=registry.get("anchor_chains", {}).get(code),
        )
        logs[code]["anchor_chain"] = chain
        check(
            f"{code}: disclosure anchors chained and signed by the central bank "
            f"({disclosure_log.describe({'ok': not chain, 'problems': chain})})",
            len(chain),
        )
        check(
            f"{code}: conflicting disclosure anchors refused by the central bank "
            f"{['#' + str(c['seq']) for c in conflicts]}",
            len(conflicts),
        )
    return {"checks": checks, "logs": logs}


def _offline_summary(report: dict[str, Any]) -> dict[str, Any]:
    """An operator's offline totals for the audit report: value in purses, claims being
    forwarded, double spends detected, fraud losses carried."""
    offline = report.get("offline") or {}
    return {
        "offline_purses": report.get("offline_purses", 0),
        "offline_devices": offline.get("devices", 0),
        "offline_claims_forwarding": offline.get("claims_forwarding", 0),
        "offline_double_spends": offline.get("double_spends", 0),
        "fraud_losses": offline.get("fraud_losses", 0),
    }


def _programmable_summary(report: dict[str, Any]) -> dict[str, Any]:
    """An operator's locked and earmarked value for the audit report: held in escrow accounts
    (and how many escrows are open), in voucher accounts (and how many programmes are active)."""
    return {
        "escrows": report.get("escrows", 0),
        "escrows_open": report.get("escrows_open", 0),
        "vouchers": report.get("vouchers", 0),
        "programmes_active": report.get("programmes_active", 0),
    }
