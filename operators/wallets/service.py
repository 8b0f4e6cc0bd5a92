"""Wallets of an operator: opening (evidence, identity, certificate), class changes, the
waterfall sweep to the holder's deposit, the wallet view and its history. Class limits are in
`operators.wallets.limits`; payment orders in `operators.payments.orders`.

Every money movement is one balanced journal entry (cbdc.ledger) written in the caller's
transaction. Accounts are locked in ascending id order before balances are read. Customer
orders are signed by the wallet's key; their nonce is unique per wallet, which makes a replayed
order return the original outcome instead of moving money twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code, wallet_numbering
from cbdc.clock import iso
from cbdc.errors import (
    Conflict,
    Forbidden,
    ValidationFailed,
)
from cbdc.policy import WalletClass
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import (
    BalanceCap,
    InvalidWalletId,
    UnknownWallet,
    WrongOperator,
)
from operators.models import Customer, Wallet
from operators.wallets import identity_history as versions
from operators.wallets import identity_repository as irepo
from operators.wallets import repository as wallet_repo
from operators.wallets.identity import (
    check_evidence,
    check_well_formed,
    held_identity,
    merge_identity,
)
from operators.wallets.limits import fmt_money, limits_of, local_day, require_active

# ------------------------------------------------------------------ wallets


def open_wallet(
    session: Session,
    ctx: OperatorContext,
    *,
    public_key: str,
    wallet_class: WalletClass,
    customer: dict[str, Any] | None,
    customer_id: int | None,
    by_staff: bool,
) -> dict[str, Any]:
    """Open a wallet on the evidence its class needs (policy `[evidence]`): class IV on a phone
    number alone; III and II remotely with name, a valid ID number and (II) an own bank
    account; class I only at the counter, i.e. with the request signed by staff."""
    if customer_id is not None and not by_staff:
        raise Forbidden("only staff may attach a wallet to an existing customer")
    customer = check_well_formed(customer)
    repo.lock_key(session, "wallet-public-key", public_key)  # concurrent opens with one key
    if wallet_repo.public_key_in_use(session, public_key):
        raise Conflict("this public key already has a wallet")
    if customer_id is not None:
        holder = wallet_repo.get_customer(session, customer_id)
        if holder is None:
            raise ValidationFailed(f"customer_id: no customer {customer_id}")
        # staff adding (or correcting) evidence for the new wallet's class
        identity, changed = merge_identity(_identity_of(ctx, holder), customer, by_staff=True)
    else:
        if customer is None:
            raise ValidationFailed("customer: required when customer_id is not given")
        identity, changed = {k: v for k, v in customer.items() if v}, False
    evidence = check_evidence(ctx.policy, wallet_class, identity, by_staff=by_staff)
    if customer_id is None:
        deposit = _new_account(session, prefix="deposit", kind="deposit")
        holder = wallet_repo.add_customer(
            session, Customer(identity={}, deposit_account_id=deposit)
        )
    assert holder is not None
    _store_identity(ctx, holder, identity)
    account = _new_account(session, prefix="wallet", kind="wallet")
    wallet_id = wallet_numbering(ctx.key.private_bytes()).wallet_id(ctx.code, account)
    wallet = Wallet(
        id=wallet_id,
        customer_id=holder.id,
        account_id=account,
        wallet_class=int(wallet_class),
        public_key=public_key,
        status="active",
    )
    _certify(ctx, wallet, wallet_class, evidence)
    wallet_repo.add_wallet(session, wallet)
    _record_identity(
        session,
        ctx,
        holder=holder,
        identity=identity,
        changed=changed,
        wallet=wallet,
        wallet_class=wallet_class,
        evidence=evidence,
        changed_by="staff" if by_staff else "self",
    )
    return wallet_view(session, ctx, wallet)


def _identity_of(ctx: OperatorContext, customer: Customer) -> dict[str, Any]:
    """The customer's identity, a phone stored in a spelling from before E.164 read in E.164
    (it is checked, compared and sealed in that form from now on)."""
    assert ctx.identity_cipher is not None
    return held_identity(
        ctx.identity_cipher.decrypt(customer.identity, bound_to=f"customer:{customer.id}")
    )


def _store_identity(ctx: OperatorContext, customer: Customer, identity: dict[str, Any]) -> None:
    assert ctx.identity_cipher is not None
    customer.identity = ctx.identity_cipher.encrypt(identity, bound_to=f"customer:{customer.id}")


def _record_identity(
    session: Session,
    ctx: OperatorContext,
    *,
    holder: Customer,
    identity: dict[str, Any],
    changed: bool,
    wallet: Wallet,
    wallet_class: WalletClass,
    evidence: list[str],
    changed_by: str,
) -> None:
    """Index the wallet's verified evidence (uniqueness) and seal its next identity version.
    When the customer's identity changed, every other wallet of the customer is re-indexed
    and gets a new version too: the regulator sees the change whichever wallet it asks for."""
    others = []
    if changed:
        for other_id in irepo.wallets_of_customer(session, holder.id):
            if other_id != wallet.id:
                other = wallet_repo.get_wallet(session, other_id, lock=True)
                assert other is not None
                others.append(other)
    versions.index_wallets(
        session,
        ctx,
        identity=identity,
        wallets=[(wallet.id, wallet_class, evidence)]
        + [(o.id, WalletClass(o.wallet_class), list(o.evidence or [])) for o in others],
    )
    versions.seal_version(
        session,
        ctx,
        wallet=wallet,
        wallet_class=wallet_class,
        evidence=evidence,
        identity=identity,
        changed_by=changed_by,
    )
    for other in others:
        versions.seal_version(
            session,
            ctx,
            wallet=other,
            wallet_class=WalletClass(other.wallet_class),
            evidence=list(other.evidence or []),
            identity=identity,
            changed_by=changed_by,
        )


def _certify(
    ctx: OperatorContext, wallet: Wallet, wallet_class: WalletClass, evidence: list[str]
) -> None:
    """(Re)issue the wallet certificate for its current class (the escrow record is sealed
    as an identity version: `_record_identity`)."""
    certificate = {
        "type": "wallet-certificate",
        "wallet_id": wallet.id,
        "public_key": wallet.public_key,
        "wallet_class": wallet_class.name,
        "operator": ctx.code,
        "issued_at": iso(ctx.now()),
    }
    wallet.certificate = certificate
    wallet.certificate_signature = ctx.key.sign_json(certificate)
    wallet.evidence = evidence


def change_class(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    wallet_class: WalletClass,
    customer: dict[str, Any] | None,
    by_staff: bool,
) -> dict[str, Any]:
    """Upgrade (with the new class's evidence) or downgrade a wallet; limits follow the class.
    A downgrade whose new balance cap is below the balance is refused, or the excess is swept
    to the linked deposit, as the policy's `balance_cap.overflow` says.

    Self-service (`by_staff` False) may add evidence not yet held, never replace it
    (`identity_change_needs_staff`); staff may correct it. Either way the earlier identity
    stays in the wallet's escrow history, and a downgrade keeps every field held.

    A request that changes neither the class nor the identity (evidence compared in its
    normal form) changes nothing: the wallet as it is, no new identity version."""
    customer = check_well_formed(customer)
    account = require_wallet(session, ctx, wallet_id).account_id
    # The wallet's account first, then its row, in the order payments take them (account,
    # then the spend counters' row): one class change at a time, and no deadlock with them.
    balances = ledger.lock_accounts(session, [account])
    wallet = wallet_repo.get_wallet(session, wallet_id, lock=True)
    assert wallet is not None
    require_active(wallet)
    holder = wallet_repo.get_customer(session, wallet.customer_id)
    assert holder is not None
    identity, changed = merge_identity(
        _identity_of(ctx, holder),
        customer,
        by_staff=by_staff,
        verified=irepo.verified_kinds(session, holder.id),
    )
    evidence = check_evidence(ctx.policy, wallet_class, identity, by_staff=by_staff)
    if not changed and int(wallet_class) == wallet.wallet_class:
        return wallet_view(session, ctx, wallet)  # nothing to change, nothing to seal
    cap = ctx.policy.limits(wallet_class).balance_cap
    balance = balances[wallet.account_id]
    if cap is not None and balance > cap:
        if ctx.policy.overflow != "sweep":
            raise BalanceCap(
                f"balance {fmt_money(ctx, balance)} is above class {wallet_class.name}'s cap "
                f"{fmt_money(ctx, cap)}; unload first",
                limit=cap,
            )
        _sweep_to_deposit(
            session,
            ctx,
            wallet=wallet,
            holder=holder,
            amount=balance - cap,
            source=wallet.account_id,
            reference=f"downgrade:{wallet.id}",
        )
    if changed:
        _store_identity(ctx, holder, identity)
    wallet.wallet_class = int(wallet_class)
    _certify(ctx, wallet, wallet_class, evidence)
    session.flush()
    _record_identity(
        session,
        ctx,
        holder=holder,
        identity=identity,
        changed=changed,
        wallet=wallet,
        wallet_class=wallet_class,
        evidence=evidence,
        changed_by="staff" if by_staff else "self",
    )
    return wallet_view(session, ctx, wallet)


def sweep_wallet_excess(
    session: Session, ctx: OperatorContext, *, wallet_id: str, amount: int, reference: str
) -> None:
    wallet = wallet_repo.get_wallet(session, wallet_id)
    assert wallet is not None
    holder = wallet_repo.get_customer(session, wallet.customer_id)
    assert holder is not None
    _sweep_to_deposit(
        session,
        ctx,
        wallet=wallet,
        holder=holder,
        amount=amount,
        source=wallet.account_id,
        reference=reference,
    )


def _sweep_to_deposit(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet: Wallet,
    holder: Customer,
    amount: int,
    source: int,
    reference: str,
) -> int:
    """Waterfall: `amount` of digital currency leaves `source` for the vault float, and the
    holder's deposit is credited the same (the bank's money replaces the CBDC)."""
    ledger.lock_accounts(
        session,
        [ctx.account("vault_float"), ctx.account("deposits_contra"), holder.deposit_account_id],
    )
    return ledger.post(
        session,
        at=ctx.now(),
        kind="waterfall_sweep",
        reference=reference,
        legs=[
            (source, -amount),
            (ctx.account("vault_float"), amount),
            (ctx.account("deposits_contra"), -amount),
            (holder.deposit_account_id, amount),
        ],
    )


def _new_account(session: Session, *, prefix: str, kind: str) -> int:
    return repo.add_numbered_account(session, prefix=prefix, kind=kind)


def require_wallet(session: Session, ctx: OperatorContext, wallet_id: str) -> Wallet:
    if not is_valid_wallet_id(wallet_id):
        raise InvalidWalletId(f"{wallet_id!r} is not a valid wallet id")
    if routing_code(wallet_id) != ctx.code:
        raise WrongOperator(f"wallet {wallet_id} is held at operator {routing_code(wallet_id)}")
    wallet = wallet_repo.get_wallet(session, wallet_id)
    if wallet is None:
        raise UnknownWallet(f"no wallet {wallet_id}")
    return wallet


def wallet_view(session: Session, ctx: OperatorContext, wallet: Wallet) -> dict[str, Any]:
    limits = limits_of(ctx, wallet)
    today, year = local_day(ctx)
    return {
        "wallet_id": wallet.id,
        "operator": ctx.code,
        "wallet_class": WalletClass(wallet.wallet_class).name,
        "evidence": list(wallet.evidence or []),
        "status": wallet.status,
        "balance": repo.account_balance(session, wallet.account_id),  # available
        "locked": wallet_repo.escrow_locked(session, wallet.id),
        "vouchers": wallet_repo.voucher_holdings(session, wallet.id),
        "currency": ctx.currency,
        "customer_id": wallet.customer_id,
        "deposit_balance": wallet_repo.customer_deposit_balance(session, wallet.customer_id),
        "limits": {
            "balance_cap": limits.balance_cap,
            "single_payment": limits.single_payment,
            "daily": limits.daily,
            "annual": limits.annual,
        },
        "spent_today": wallet.spent_day_total if wallet.spent_day == today else 0,
        "spent_this_year": wallet.spent_year_total if wallet.spent_year == year else 0,
        "certificate": {"document": wallet.certificate, "signature": wallet.certificate_signature},
        "operator_certificate": ctx.certificate,
    }


# ------------------------------------------------------------------ history


def history(
    session: Session, ctx: OperatorContext, *, wallet_id: str, limit: int, before: int | None
) -> dict[str, Any]:
    wallet = require_wallet(session, ctx, wallet_id)
    rows = wallet_repo.wallet_history(
        session, account_id=wallet.account_id, wallet_id=wallet.id, limit=limit, before=before
    )
    items = []
    for r in rows:
        counterparty: str | None
        if r["order_kind"] == "payment":
            if r["order_wallet"] == wallet.id:
                counterparty = r["counterparty"]
            else:
                counterparty = ctx.payer_alias(r["order_wallet"], wallet.id)
        elif r["order_kind"] == "escrow":
            counterparty = r["counterparty"]  # value locked for this payee (escrow_lock)
        elif r["payer_alias"]:
            counterparty = r["payer_alias"]
        elif r["order_kind"] in ("load", "unload"):
            counterparty = "deposit"
        elif r["kind"] in ("cash_load", "cash_withdrawal"):
            counterparty = "cash"  # banknotes over the counter
        else:
            counterparty = None
        items.append(
            {
                "id": r["posting_id"],
                "at": iso(r["created_at"]),
                "kind": r["kind"],
                "amount": int(r["amount"]),
                "reference": r["reference"],
                "counterparty": counterparty,
                "status": r["order_status"] or "completed",
                "memo": r["memo"],
            }
        )
    next_before = items[-1]["id"] if len(items) == limit else None
    return {"wallet_id": wallet.id, "items": items, "next_before": next_before}
