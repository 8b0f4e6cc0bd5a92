"""Retail domain logic of an operator: wallets, limits, exchange (load/unload) and payments.

Every money movement is one balanced journal entry (cbdc.ledger) written in the caller's
transaction. Accounts are locked in ascending id order before balances are read. Customer
orders are signed by the wallet's key; their nonce is unique per wallet, which makes a replayed
order return the original outcome instead of moving money twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code, wallet_numbering
from cbdc.clock import iso, parse_iso, utcnow
from cbdc.crypto import canonical_json, sha256_hex, verify_json
from cbdc.errors import (
    BadSignature,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    ValidationFailed,
)
from cbdc.money import format_amount
from cbdc.policy import ClassLimits, WalletClass
from cbdc.tokens import sign_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import (
    AnnualLimit,
    BalanceCap,
    CurrencyMismatch,
    DailyLimit,
    InvalidWalletId,
    OrderExpired,
    OrderRefused,
    PayeeBalanceCap,
    SinglePaymentLimit,
    UnknownPayment,
    UnknownWallet,
    WalletNotActive,
    WrongOperator,
)
from operators.models import Customer, Order, Wallet
from operators.wallets import identity_history as versions
from operators.wallets import identity_repository as irepo
from operators.wallets.identity import (
    check_evidence,
    check_well_formed,
    held_identity,
    merge_identity,
)

ORDER_MAX_AGE = timedelta(minutes=10)
ORDER_MAX_SKEW = timedelta(minutes=5)


class VaultShortfall(Exception):
    """The vault float cannot cover a load right now; the caller replenishes and retries."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"vault float short by {needed}")
        self.needed = needed


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
    if repo.public_key_in_use(session, public_key):
        raise Conflict("this public key already has a wallet")
    if customer_id is not None:
        holder = repo.get_customer(session, customer_id)
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
        holder = repo.add_customer(session, Customer(identity={}, deposit_account_id=deposit))
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
    repo.add_wallet(session, wallet)
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
                other = repo.get_wallet(session, other_id, lock=True)
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
        "issued_at": iso(utcnow()),
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
    wallet = repo.get_wallet(session, wallet_id, lock=True)
    assert wallet is not None
    require_active(wallet)
    holder = repo.get_customer(session, wallet.customer_id)
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
                f"balance {_fmt(ctx, balance)} is above class {wallet_class.name}'s cap "
                f"{_fmt(ctx, cap)}; unload first",
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
    wallet = repo.get_wallet(session, wallet_id)
    assert wallet is not None
    holder = repo.get_customer(session, wallet.customer_id)
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
    wallet = repo.get_wallet(session, wallet_id)
    if wallet is None:
        raise UnknownWallet(f"no wallet {wallet_id}")
    return wallet


def limits_of(ctx: OperatorContext, wallet: Wallet) -> ClassLimits:
    return ctx.policy.limits(wallet.wallet_class)


def wallet_view(session: Session, ctx: OperatorContext, wallet: Wallet) -> dict[str, Any]:
    limits = limits_of(ctx, wallet)
    today, year = _today(ctx)
    return {
        "wallet_id": wallet.id,
        "operator": ctx.code,
        "wallet_class": WalletClass(wallet.wallet_class).name,
        "evidence": list(wallet.evidence or []),
        "status": wallet.status,
        "balance": repo.account_balance(session, wallet.account_id),
        "currency": ctx.currency,
        "customer_id": wallet.customer_id,
        "deposit_balance": repo.customer_deposit_balance(session, wallet.customer_id),
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


def _today(ctx: OperatorContext) -> tuple[Any, int]:
    now = ctx.now().astimezone(ctx.timezone)
    return now.date(), now.year


# ------------------------------------------------------------------ order checks


def check_signed_order(wallet: Wallet, order: dict[str, Any], signature: str) -> str:
    if not verify_json(wallet.public_key, order, signature):
        raise BadSignature("order signature does not verify against the wallet's key")
    try:
        created = parse_iso(order["created_at"])
    except (ValueError, KeyError):
        raise ValidationFailed("order.created_at: must be ISO 8601 with a time zone") from None
    now = utcnow()
    if created < now - ORDER_MAX_AGE or created > now + ORDER_MAX_SKEW:
        raise OrderExpired("order.created_at is outside the accepted window")
    return sha256_hex(canonical_json(order))


def check_currency(ctx: OperatorContext, order: dict[str, Any]) -> None:
    if order["currency"] != ctx.currency:
        raise CurrencyMismatch(f"this network's currency is {ctx.currency}")


def check_replay(previous: Order, order_hash: str) -> None:
    if previous.order_hash != order_hash:
        raise IdempotencyMismatch("this nonce was already used by a different order")
    if previous.status == "failed" and previous.entry_id is None:
        raise OrderRefused(
            f"this order was refused ({previous.failure}); sign a new order to try again",
            failure=previous.failure,
        )


def unspend(session: Session, ctx: OperatorContext, *, order: Order) -> None:
    """A payment that came back (refund, return) no longer counts against daily/annual limits."""
    wallet = repo.get_wallet(session, order.wallet_id, lock=True)
    if wallet is None:
        return
    day = order.created_at.astimezone(ctx.timezone)
    day_total = wallet.spent_day_total
    year_total = wallet.spent_year_total
    if wallet.spent_day == day.date():
        day_total = max(0, day_total - order.amount)
    if wallet.spent_year == day.year:
        year_total = max(0, year_total - order.amount)
    repo.update_spend_counters(
        session,
        wallet.id,
        day=wallet.spent_day,
        day_total=day_total,
        year=wallet.spent_year or day.year,
        year_total=year_total,
    )


def require_active(wallet: Wallet, role: str = "wallet") -> None:
    if wallet.status != "active":
        raise WalletNotActive(f"{role} {wallet.id} is {wallet.status}")


def check_outgoing_limits(
    ctx: OperatorContext,
    wallet: Wallet,
    amount: int,
    *,
    today: Any = None,
    year: int | None = None,
) -> tuple[int, int]:
    """(spent today, spent this year) including `amount`; raises the class limit it breaks.
    `today`/`year` default to the context clock's."""
    limits = limits_of(ctx, wallet)
    if today is None or year is None:
        today, year = _today(ctx)
    day_total = (wallet.spent_day_total if wallet.spent_day == today else 0) + amount
    year_total = (wallet.spent_year_total if wallet.spent_year == year else 0) + amount
    if (
        (limits.single_payment is None or amount <= limits.single_payment)
        and (limits.daily is None or day_total <= limits.daily)
        and (limits.annual is None or year_total <= limits.annual)
    ):
        return day_total, year_total
    name = WalletClass(wallet.wallet_class).name
    if limits.single_payment is not None and amount > limits.single_payment:
        raise SinglePaymentLimit(
            f"class {name} allows at most {_fmt(ctx, limits.single_payment)} per payment",
            limit=limits.single_payment,
        )
    if limits.daily is not None and day_total > limits.daily:
        raise DailyLimit(
            f"class {name} allows {_fmt(ctx, limits.daily)} per day; "
            f"{_fmt(ctx, day_total - amount)} already spent today",
            limit=limits.daily,
        )
    if limits.annual is not None and year_total > limits.annual:
        raise AnnualLimit(
            f"class {name} allows {_fmt(ctx, limits.annual)} per year; "
            f"{_fmt(ctx, year_total - amount)} already spent this year",
            limit=limits.annual,
        )
    return day_total, year_total


def check_cap(
    ctx: OperatorContext, wallet: Wallet, balance: int, amount: int, *, payee: bool
) -> None:
    cap = limits_of(ctx, wallet).balance_cap
    if cap is not None and balance + amount > cap:
        error = PayeeBalanceCap if payee else BalanceCap
        raise error(
            f"class {WalletClass(wallet.wallet_class).name} balance cap is {_fmt(ctx, cap)}; "
            f"balance {_fmt(ctx, balance)} + {_fmt(ctx, amount)} would exceed it",
            limit=cap,
        )


def _fmt(ctx: OperatorContext, minor: int) -> str:
    return format_amount(minor, ctx.decimals, ctx.currency)


# ------------------------------------------------------------------ payments


def payment_receipt(ctx: OperatorContext, order: Order) -> dict[str, Any]:
    document = {
        "type": "payment-receipt",
        "payment_id": str(order.id),
        "operator": ctx.code,
        "payer": order.wallet_id,
        "payee": order.counterparty,
        "amount": order.amount,
        "currency": ctx.currency,
        "nonce": order.nonce,
        "route": "intra" if routing_code(order.counterparty or "") == ctx.code else "cross",
        "status": order.status,
        "failure": order.failure,
        "accepted_at": iso(order.created_at),
    }
    return {**document, "receipt": sign_document(ctx.key, document)}


def _overflow(ctx: OperatorContext, payee: Wallet, balance: int, amount: int) -> int:
    """How much of `amount` must be swept past the payee's cap (0 if it fits); refuses when
    the policy says so."""
    cap = limits_of(ctx, payee).balance_cap
    if cap is None or balance + amount <= cap:
        return 0
    if ctx.policy.overflow != "sweep":
        check_cap(ctx, payee, balance, amount, payee=True)
    return balance + amount - max(cap, balance)


def payment_status(
    session: Session, ctx: OperatorContext, *, payment_id: str, wallet_id: str | None
) -> dict[str, Any]:
    try:
        order = repo.get_order(session, uuid.UUID(payment_id))
    except ValueError:
        raise ValidationFailed("payment_id must be a UUID") from None
    if order is None or order.kind != "payment":
        raise UnknownPayment(f"no payment {payment_id}")
    if wallet_id is not None and wallet_id != order.wallet_id:
        raise UnknownPayment(f"no payment {payment_id}")  # do not reveal others' payments
    return payment_receipt(ctx, order)


def record_refused_order(
    session: Session,
    ctx: OperatorContext,
    *,
    kind: str,
    order: dict[str, Any],
    signature: str,
    failure: str,
) -> None:
    """Keep a refused order's nonce, so the same signed order can never succeed later (e.g.
    replayed once the payer has funds): a resend returns this refusal."""
    wallet_id = order.get("payer") if kind == "payment" else order.get("wallet")
    if not isinstance(wallet_id, str) or not is_valid_wallet_id(wallet_id):
        return
    wallet = repo.get_wallet(session, wallet_id)
    if wallet is None or not verify_json(wallet.public_key, order, signature):
        return
    repo.lock_key(session, f"order-nonce:{wallet_id}", str(order.get("nonce")))
    if repo.find_order(session, wallet_id, order["nonce"]) is not None:
        return  # the same refused order, sent twice at once, is recorded once
    repo.add_order(
        session,
        Order(
            id=uuid.uuid4(),
            wallet_id=wallet_id,
            nonce=order["nonce"],
            kind=kind,
            amount=order["amount"],
            counterparty=order.get("payee") if kind == "payment" else "deposit",
            body=order,
            signature=signature,
            order_hash=sha256_hex(canonical_json(order)),
            status="failed",
            failure=failure,
            entry_id=None,
            created_at=ctx.now(),
        ),
    )


# ------------------------------------------------------------------ history


def history(
    session: Session, ctx: OperatorContext, *, wallet_id: str, limit: int, before: int | None
) -> dict[str, Any]:
    wallet = require_wallet(session, ctx, wallet_id)
    rows = repo.wallet_history(
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
        elif r["payer_alias"]:
            counterparty = r["payer_alias"]
        elif r["order_kind"] in ("load", "unload"):
            counterparty = "deposit"
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
