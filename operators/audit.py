"""An operator's side of the cross-tier invariants (and of its disclosure log), for `cbdc audit`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from operators import repository as repo
from operators.compliance import disclosure
from operators.context import OperatorContext
from operators.offline.devices import offline_totals
from operators.programmable import escrow_repository, voucher_repository
from operators.vault import repository as vault_repo
from operators.wallets import repository as wallet_repo


def operator_audit(session: Session, ctx: OperatorContext) -> dict[str, Any]:
    kinds = ledger.balances_by_kind(session)
    accounts = {code: repo.account_balance(session, acc) for code, acc in ctx.accounts.items()}
    tokens = vault_repo.vault_summary(session)
    token_value = tokens.get("held_value", 0) + tokens.get("reserved_value", 0)
    wallets = kinds.get("wallet", 0)
    in_transit = kinds.get("in_transit", 0)
    purses = kinds.get("offline_purse", 0)
    escrowed = kinds.get("escrow", 0)
    earmarked = kinds.get("voucher", 0)  # vouchers (operators/programmable)
    cbdc_total = accounts["vault_float"] + wallets + in_transit + purses + escrowed + earmarked
    integrity = ledger.ledger_integrity(session)
    checks = []

    def check(name: str, left: int, right: int) -> None:
        checks.append(
            {"name": f"{ctx.code}: {name}", "left": left, "right": right, "ok": left == right}
        )

    check("vault tokens == -tokens_held", token_value, -accounts["tokens_held"])
    # Escrow accounts are counted in too; the check keeps its name (tests and scripts look
    # for it).
    check("vault tokens == float + wallets + in transit + offline purses", token_value, cbdc_total)
    check("ledger: unbalanced entries", integrity["unbalanced_entries"], 0)
    check("ledger: balances equal postings", integrity["balance_drift_accounts"], 0)
    check("ledger: no negative balances", integrity["negative_balances"], 0)
    check("ledger: all balances sum to zero", integrity["sum_of_all_balances"], 0)
    awaiting = _awaiting_settlement(session, ctx)
    # Every payment to another operator that is not settled yet is in in_transit_out, whether
    # it waits for RTGS or for a clearing cycle; the net ones are exactly the open and
    # submitted net items.
    check(
        "in_transit_out == payments awaiting settlement",
        accounts["in_transit_out"],
        awaiting["total"],
    )
    check(
        "net items in flight == net payments awaiting settlement",
        awaiting["net_items"],
        awaiting["net_orders"],
    )
    # The disclosure log: chain and the regulator's signature on every order. (Whether it
    # still matches the heads anchored at the central bank, `cbdc audit` checks itself.)
    log = disclosure.verify_log(session, ctx)
    check(
        "disclosure log: first entry whose chain or order signature fails", log["broken_at"] or 0, 0
    )
    offline = offline_totals(session, ctx)
    # Offline payments (operators/offline): every loss booked is in the memorandum account,
    # and no purse ever went below zero.
    check(
        "fraud_losses == losses of detected double spends",
        offline["fraud_losses"],
        offline["losses_recorded"],
    )
    check(
        "fraud_losses == losses of adjudicated transfers",
        offline["fraud_losses"],
        offline["transfer_losses"],
    )
    check("offline purses: none negative", offline["negative_purses"], 0)
    # Escrow (operators/programmable): each escrow account holds exactly amount - released -
    # refunded, never less than zero, the escrow is open iff something remains, and its
    # releases and refunds add up to what it records.
    escrow = escrow_repository.audit_totals(session)
    check("escrows: accounts != amount - released - refunded", escrow["drift"], 0)
    check("escrows: status open iff something remains (violations)", escrow["bad_status"], 0)
    check("escrows: none negative", escrow["negative"], 0)
    check("escrows: events != released and refunded", escrow["events_mismatch"], 0)
    check("escrows: escrow accounts == what the escrows hold", escrowed, escrow["held"])
    # Vouchers: each voucher account holds granted - spent - returned, never less than zero;
    # programme totals are the sums of their vouchers', events add up, expired hold nothing.
    voucher = voucher_repository.audit_totals(session)
    check("vouchers: accounts != granted - spent - returned", voucher["drift"], 0)
    check("vouchers: none negative", voucher["negative"], 0)
    check("vouchers: programme totals != sums of vouchers", voucher["programme_mismatch"], 0)
    check("vouchers: events != voucher totals", voucher["events_mismatch"], 0)
    check("vouchers: expired programmes hold nothing", voucher["expired_held"], 0)
    check("vouchers: voucher accounts == what the vouchers hold", earmarked, voucher["held"])
    outbox = repo.outbox_counts(session)
    return {
        "operator": ctx.code,
        "vault_token_value": token_value,
        "vault_float": accounts["vault_float"],
        "wallets": wallets,
        "in_transit_out": accounts["in_transit_out"],
        "returns_pending": accounts["returns_pending"],
        "redemption_pending": accounts["redemption_pending"],
        "in_transit_total": in_transit,
        "net_in_flight": awaiting["net_items"],
        "rtgs_in_flight": awaiting["total"] - awaiting["net_orders"],
        "deposits": kinds.get("deposit", 0),
        "offline_purses": purses,
        "escrows": escrowed,
        "escrows_open": escrow["open_count"],
        "vouchers": earmarked,  # earmarked: granted, not yet spent or returned
        "programmes_active": voucher["active_count"],
        "offline": offline,
        "wallet_count": wallet_repo.wallet_count(session),
        "outbox": outbox,
        "failed_jobs": repo.failed_jobs(session),
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
    }


def _awaiting_settlement(session: Session, ctx: OperatorContext) -> dict[str, int]:
    row = session.execute(
        text(
            """
SELECT coalesce(sum(o.amount), 0) AS total,
       coalesce(sum(o.amount) FILTER (WHERE n.order_id IS NOT NULL), 0) AS net_orders
FROM orders o LEFT JOIN net_items n ON n.order_id = o.id
WHERE o.status = 'pending_settlement' AND o.kind IN ('payment', 'offline_payment')
  AND left(o.counterparty, 4) <> :code
"""
        ),
        {"code": ctx.code},
    ).one()
    items = session.execute(
        text("SELECT coalesce(sum(amount), 0) FROM net_items WHERE status IN ('open', 'submitted')")
    ).scalar_one()
    return {"total": int(row.total), "net_orders": int(row.net_orders), "net_items": int(items)}
