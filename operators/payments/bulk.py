"""Onboarding and exchange in bulk, for the scenario engine's simulated customers.

Same rules as the one-at-a-time service functions (`service.open_wallet`,
`exchange.load/unload/cash_load`): evidence by class, identity encrypted at rest, wallet
certificates signed by the operator, balance caps, deposits and vault float that must cover a
load. Written set-based: ids come from the sequences first, rows go in with one INSERT each,
money moves through `ledger.post_many` (one balanced entry per customer operation).

Simulated customers are onboarded at the counter (`by_staff`), and their exchanges are
bookings on their behalf, so no signed orders are stored for them. Their evidence goes into the
blind index under the policy's `[uniqueness]` limits like any other (one lock on the whole
index per chunk instead of one per piece of evidence), so a population must give each person
their own ID number, phone and account (simulator/population.py: `identity`), or a researcher
sets the limits to 0 in the policy file. No escrow is sealed for them (simulated people have
no identity to disclose).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import wallet_numbering
from cbdc.clock import iso
from cbdc.errors import DomainError, InsufficientFunds
from cbdc.policy import WalletClass
from cbdc.sqlarrays import int_array, text_array
from operators.context import OperatorContext
from operators.errors import UnknownWallet, VaultFloatInsufficient
from operators.vault import service as vault
from operators.wallets import identity_history, limits
from operators.wallets.identity import check_evidence
from operators.wallets.states import WalletState, load_wallet_states, wallet_accounts


@dataclass(frozen=True, slots=True)
class NewCustomer:
    identity: dict[str, Any]
    deposit: int = 0  # simulated commercial-bank money credited at once


@dataclass(frozen=True, slots=True)
class NewWallet:
    customer_id: int
    identity: dict[str, Any]
    wallet_class: WalletClass
    public_key: str


def _ids(session: Session, sequence: str, n: int) -> list[int]:
    return [
        int(v)
        for v in session.execute(
            text(f"SELECT nextval('{sequence}') FROM generate_series(1, :n)"), {"n": n}
        ).scalars()
    ]


def _accounts(session: Session, prefix: str, kind: str, n: int) -> list[int]:
    ids = _ids(session, "accounts_id_seq", n)
    session.execute(
        text(
            "INSERT INTO accounts (id, code, kind) SELECT i, :p || ':' || i, :k "
            "FROM unnest(CAST(:ids AS bigint[])) AS i"
        ),
        {"ids": int_array(ids), "p": prefix, "k": kind},
    )
    return ids


def add_customers(
    session: Session, ctx: OperatorContext, customers: Sequence[NewCustomer]
) -> list[int]:
    """Customers with a deposit account each (identity encrypted); returns their ids."""
    if not customers:
        return []
    assert ctx.identity_cipher is not None
    deposits = _accounts(session, "deposit", "deposit", len(customers))
    ids = _ids(session, "customers_id_seq", len(customers))
    boxes = [
        json.dumps(ctx.identity_cipher.encrypt(c.identity, bound_to=f"customer:{cid}"))
        for c, cid in zip(customers, ids, strict=True)
    ]
    session.execute(
        text(
            "INSERT INTO customers (id, identity, deposit_account_id) "
            "SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:boxes AS jsonb[]), "
            "CAST(:deposits AS bigint[]))"
        ),
        {"ids": int_array(ids), "boxes": text_array(boxes), "deposits": int_array(deposits)},
    )
    credits = [
        (
            "deposit_credit",
            f"opening:{cid}",
            [(ctx.account("deposits_contra"), -c.deposit), (acc, c.deposit)],
        )
        for c, cid, acc in zip(customers, ids, deposits, strict=True)
        if c.deposit > 0
    ]
    if credits:
        ledger.lock_accounts(session, [ctx.account("deposits_contra")])
        ledger.post_many(session, credits, at=ctx.now())
    return ids


def open_wallets(session: Session, ctx: OperatorContext, wallets: Sequence[NewWallet]) -> list[str]:
    """Wallets for existing customers, evidence checked as at the counter; returns wallet ids.
    Raises the evidence error of the first holder who lacks what its class needs."""
    if not wallets:
        return []
    evidence = [
        check_evidence(ctx.policy, w.wallet_class, w.identity, by_staff=True) for w in wallets
    ]
    accounts = _accounts(session, "wallet", "wallet", len(wallets))
    numbering = wallet_numbering(ctx.key.private_bytes())
    ids = [numbering.wallet_id(ctx.code, a) for a in accounts]
    issued_at = iso(ctx.now())
    certificates: list[str] = []
    signatures: list[str] = []
    for w, wallet_id in zip(wallets, ids, strict=True):
        certificate = {
            "type": "wallet-certificate",
            "wallet_id": wallet_id,
            "public_key": w.public_key,
            "wallet_class": w.wallet_class.name,
            "operator": ctx.code,
            "issued_at": issued_at,
        }
        certificates.append(json.dumps(certificate))
        signatures.append(ctx.key.sign_json(certificate))
    session.execute(
        text(
            "INSERT INTO wallets (id, customer_id, account_id, wallet_class, public_key, "
            "certificate, certificate_signature, evidence, status, spent_day_total, "
            "spent_year_total) SELECT v.id, v.customer_id, v.account_id, v.wallet_class, "
            "v.public_key, v.certificate, v.signature, string_to_array(v.evidence, ','), "
            "'active', 0, 0 FROM unnest(CAST(:ids AS text[]), CAST(:customers AS bigint[]), "
            "CAST(:accounts AS bigint[]), CAST(:classes AS smallint[]), CAST(:keys AS text[]), "
            "CAST(:certificates AS jsonb[]), CAST(:signatures AS text[]), "
            "CAST(:evidence AS text[])) AS v(id, customer_id, account_id, wallet_class, "
            "public_key, certificate, signature, evidence)"
        ),
        {
            "ids": text_array(ids),
            "customers": int_array(w.customer_id for w in wallets),
            "accounts": int_array(accounts),
            "classes": int_array(int(w.wallet_class) for w in wallets),
            "keys": text_array([w.public_key for w in wallets]),
            "certificates": text_array(certificates),
            "signatures": text_array(signatures),
            "evidence": text_array([",".join(e) for e in evidence]),
        },
    )
    identity_history.index_new_wallets(
        session,
        ctx,
        [
            (wallet_id, w.wallet_class, w.identity, e)
            for w, wallet_id, e in zip(wallets, ids, evidence, strict=True)
        ],
    )
    return ids


# ------------------------------------------------------------------ exchange

ExchangeKind = Literal["load", "cash_load", "unload"]


@dataclass(slots=True)
class ExchangeOutcome:
    wallet_id: str
    amount: int
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def exchange_many(
    session: Session,
    ctx: OperatorContext,
    kind: ExchangeKind,
    moves: Sequence[tuple[str, int]],
    *,
    now: datetime | None = None,
) -> list[ExchangeOutcome]:
    """Loads from the deposit, loads of banknotes, or unloads to the deposit, judged in order:
    the wallet is active, the source covers the amount, a load keeps the wallet under its cap
    and is covered by the vault float (else `vault_float_insufficient`: the caller obtains
    issuance first, see `OperatorState.replenish`)."""
    now = now or ctx.now()
    wallet_ids = sorted({w for w, _ in moves})
    float_acc, contra = ctx.account("vault_float"), ctx.account("deposits_contra")
    cash, cash_contra = ctx.account("cash_on_hand"), ctx.account("cash_contra")
    to_lock = wallet_accounts(session, wallet_ids, with_deposits=kind != "cash_load")
    to_lock.add(float_acc)
    to_lock |= {cash, cash_contra} if kind == "cash_load" else {contra}
    balances = ledger.lock_accounts(session, to_lock)
    wallets = load_wallet_states(session, wallet_ids)
    outcomes: list[ExchangeOutcome] = []
    entries: list[ledger.Entry] = []
    for wallet_id, amount in moves:
        outcome = ExchangeOutcome(wallet_id, amount)
        outcomes.append(outcome)
        try:
            wallet = wallets.get(wallet_id)
            if wallet is None:
                raise UnknownWallet(f"no wallet {wallet_id}")
            limits.require_active(wallet)  # type: ignore[arg-type]
            legs = _legs(ctx, kind, wallet, amount, balances)
        except DomainError as exc:
            outcome.error = exc
            continue
        for account, delta in legs:
            balances[account] += delta
        entries.append((kind, f"{kind}:{wallet_id}:{now.isoformat()}", legs))
    if entries:
        ledger.post_many(session, entries, at=now)
        vault.check_water_marks(session, ctx, float_balance=balances[float_acc])
    return outcomes


def _legs(
    ctx: OperatorContext,
    kind: ExchangeKind,
    wallet: WalletState,
    amount: int,
    balances: dict[int, int],
) -> list[tuple[int, int]]:
    float_acc, contra = ctx.account("vault_float"), ctx.account("deposits_contra")
    if kind == "unload":
        if balances[wallet.account_id] < amount:
            raise InsufficientFunds(
                f"wallet balance {limits.fmt_money(ctx, balances[wallet.account_id])} "
                f"does not cover {limits.fmt_money(ctx, amount)}"
            )
        return [
            (wallet.account_id, -amount),
            (float_acc, amount),
            (contra, -amount),
            (wallet.deposit_account_id, amount),
        ]
    if kind == "load" and balances[wallet.deposit_account_id] < amount:
        raise InsufficientFunds(
            f"deposit balance {limits.fmt_money(ctx, balances[wallet.deposit_account_id])} "
            f"does not cover {limits.fmt_money(ctx, amount)}"
        )
    limits.check_cap(ctx, wallet, balances[wallet.account_id], amount, payee=False)  # type: ignore[arg-type]
    if balances[float_acc] < amount:
        raise VaultFloatInsufficient(
            f"vault float {limits.fmt_money(ctx, balances[float_acc])} cannot cover a load of "
            f"{limits.fmt_money(ctx, amount)}"
        )
    if kind == "cash_load":
        return [
            (ctx.account("cash_contra"), -amount),
            (ctx.account("cash_on_hand"), amount),
            (float_acc, -amount),
            (wallet.account_id, amount),
        ]
    return [
        (wallet.deposit_account_id, -amount),
        (contra, amount),
        (float_acc, -amount),
        (wallet.account_id, amount),
    ]


def cap_room(ctx: OperatorContext, wallet: WalletState, balance: int) -> int | None:
    """How much more the wallet may hold under its class cap (None: no cap)."""
    cap = ctx.policy.limits(WalletClass(wallet.wallet_class)).balance_cap
    return None if cap is None else max(0, cap - balance)
