"""Exchange between commercial-bank money and digital currency (M0 substitution): a customer
loads a wallet from its deposit or with banknotes at the counter, and unloads back to the
deposit or withdraws banknotes at the counter (on its signed consent); staff credit simulated
deposits. Loads draw on the vault float (a shortfall raises `VaultShortfall`, and the API
obtains issuance and retries); every move is one balanced journal entry with the deposit (or
cash) side and the CBDC side in the same entry.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.errors import IdempotencyMismatch, InsufficientFunds, ValidationFailed
from cbdc.money import format_amount
from operators import repository as repo
from operators.compliance import aml
from operators.context import OperatorContext
from operators.exchange.errors import CashOnHandInsufficient
from operators.models import Order, Wallet
from operators.payments import orders
from operators.vault import service as vault
from operators.wallets import limits, service
from operators.wallets import repository as wallet_repo


class VaultShortfall(Exception):
    """The vault float cannot cover a load right now; the caller replenishes and retries."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"vault float short by {needed}")
        self.needed = needed


def load(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """Deposit -> wallet: the deposit is extinguished and vault float becomes the customer's."""
    wallet = service.require_wallet(session, ctx, order["wallet"])
    orders.check_currency(ctx, order)
    order_hash = orders.check_signed_order(wallet, order, signature, now=ctx.now())
    amount = order["amount"]
    customer = wallet_repo.get_customer(session, wallet.customer_id)
    assert customer is not None
    accounts = [
        wallet.account_id,
        customer.deposit_account_id,
        ctx.account("vault_float"),
        ctx.account("deposits_contra"),
    ]
    balances = ledger.lock_accounts(session, accounts)
    previous = wallet_repo.find_order(session, wallet.id, order["nonce"])
    if previous is not None:
        orders.check_replay(previous, order_hash)
        return {**_exchange_result(session, ctx, previous, wallet), "replayed": True}
    session.refresh(wallet)  # class (hence cap) and status as of the lock
    limits.require_active(wallet)
    if balances[customer.deposit_account_id] < amount:
        raise InsufficientFunds(
            f"deposit balance {_money(ctx, balances[customer.deposit_account_id])} "
            f"does not cover {_money(ctx, amount)}"
        )
    limits.check_cap(ctx, wallet, balances[wallet.account_id], amount, payee=False)
    if balances[ctx.account("vault_float")] < amount:
        raise VaultShortfall(amount - balances[ctx.account("vault_float")])
    row = _record(
        session,
        ctx,
        wallet=wallet,
        order=order,
        signature=signature,
        order_hash=order_hash,
        kind="load",
        legs=[
            (customer.deposit_account_id, -amount),
            (ctx.account("deposits_contra"), amount),
            (ctx.account("vault_float"), -amount),
            (wallet.account_id, amount),
        ],
    )
    vault.check_water_marks(
        session, ctx, float_balance=balances[ctx.account("vault_float")] - amount
    )
    return {**_exchange_result(session, ctx, row, wallet), "replayed": False}


def unload(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """Wallet -> deposit: the customer's digital currency returns to the vault float."""
    wallet = service.require_wallet(session, ctx, order["wallet"])
    orders.check_currency(ctx, order)
    order_hash = orders.check_signed_order(wallet, order, signature, now=ctx.now())
    amount = order["amount"]
    customer = wallet_repo.get_customer(session, wallet.customer_id)
    assert customer is not None
    accounts = [
        wallet.account_id,
        customer.deposit_account_id,
        ctx.account("vault_float"),
        ctx.account("deposits_contra"),
    ]
    balances = ledger.lock_accounts(session, accounts)
    previous = wallet_repo.find_order(session, wallet.id, order["nonce"])
    if previous is not None:
        orders.check_replay(previous, order_hash)
        return {**_exchange_result(session, ctx, previous, wallet), "replayed": True}
    limits.require_active(wallet)
    if balances[wallet.account_id] < amount:
        raise InsufficientFunds(_wallet_short(ctx, balances[wallet.account_id], amount))
    row = _record(
        session,
        ctx,
        wallet=wallet,
        order=order,
        signature=signature,
        order_hash=order_hash,
        kind="unload",
        legs=[
            (wallet.account_id, -amount),
            (ctx.account("vault_float"), amount),
            (ctx.account("deposits_contra"), -amount),
            (customer.deposit_account_id, amount),
        ],
    )
    aml.on_unload(session, ctx, wallet=wallet, amount=amount)
    vault.check_water_marks(
        session, ctx, float_balance=balances[ctx.account("vault_float")] + amount
    )
    return {**_exchange_result(session, ctx, row, wallet), "replayed": False}


def _record(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet: Wallet,
    order: dict[str, Any],
    signature: str,
    order_hash: str,
    kind: str,
    legs: list[tuple[int, int]],
    counterparty: str = "deposit",
) -> Order:
    """Post a load's, unload's or cash withdrawal's entry and record its completed order, both
    at one instant."""
    now, order_id = ctx.now(), uuid.uuid4()
    entry = ledger.post(session, at=now, kind=kind, reference=str(order_id), legs=legs)
    return wallet_repo.add_order(
        session,
        Order(
            id=order_id,
            wallet_id=wallet.id,
            nonce=order["nonce"],
            kind=kind,
            amount=order["amount"],
            counterparty=counterparty,
            body=order,
            signature=signature,
            order_hash=order_hash,
            status="completed",
            entry_id=entry,
            created_at=now,
            updated_at=now,
        ),
    )


def _money(ctx: OperatorContext, minor: int) -> str:
    return format_amount(minor, ctx.decimals, ctx.currency)


def _wallet_short(ctx: OperatorContext, balance: int, amount: int) -> str:
    return f"wallet balance {_money(ctx, balance)} does not cover {_money(ctx, amount)}"


def _exchange_result(
    session: Session, ctx: OperatorContext, order: Order, wallet: Wallet
) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "kind": order.kind,
        "wallet_id": wallet.id,
        "amount": order.amount,
        "status": order.status,
        "wallet_balance": repo.account_balance(session, wallet.account_id),
        "deposit_balance": wallet_repo.customer_deposit_balance(session, wallet.customer_id),
    }


# ------------------------------------------------------------------ staff operations


def _staff_idempotent(
    session: Session, key_id: str, idem_key: str, request_hash: str, run: Any
) -> dict[str, Any]:
    repo.lock_idempotency_key(session, key_id, idem_key)
    found = repo.find_idempotency(session, key_id, idem_key)
    if found is not None:
        if found[0] != request_hash:
            raise IdempotencyMismatch("Idempotency-Key was used for a different request")
        return {**found[1], "replayed": True}
    response = run()
    repo.save_idempotency(session, key_id, idem_key, request_hash, response)
    return {"replayed": False, **response}  # `run` may say it replayed a signed order


def credit_deposit(
    session: Session,
    ctx: OperatorContext,
    *,
    customer_id: int,
    amount: int,
    key_id: str,
    idem_key: str,
    request_hash: str,
) -> dict[str, Any]:
    """Simulated commercial-bank money arriving in a customer's deposit account."""

    def run() -> dict[str, Any]:
        customer = wallet_repo.get_customer(session, customer_id)
        if customer is None:
            raise ValidationFailed(f"customer_id: no customer {customer_id}")
        ledger.lock_accounts(session, [customer.deposit_account_id, ctx.account("deposits_contra")])
        ledger.post(
            session,
            at=ctx.now(),
            kind="deposit_credit",
            reference=idem_key,
            legs=[(ctx.account("deposits_contra"), -amount), (customer.deposit_account_id, amount)],
        )
        return {
            "customer_id": customer_id,
            "amount": amount,
            "deposit_balance": wallet_repo.customer_deposit_balance(session, customer_id),
        }

    return _staff_idempotent(session, key_id, idem_key, request_hash, run)


def cash_load(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    amount: int,
    key_id: str,
    idem_key: str,
    request_hash: str,
) -> dict[str, Any]:
    """Banknotes over the counter -> wallet (M0 cash substituted by M0 digital currency)."""

    def run() -> dict[str, Any]:
        wallet = service.require_wallet(session, ctx, wallet_id)
        limits.require_active(wallet)
        balances = ledger.lock_accounts(
            session,
            [
                wallet.account_id,
                ctx.account("vault_float"),
                ctx.account("cash_on_hand"),
                ctx.account("cash_contra"),
            ],
        )
        limits.check_cap(ctx, wallet, balances[wallet.account_id], amount, payee=False)
        if balances[ctx.account("vault_float")] < amount:
            raise VaultShortfall(amount - balances[ctx.account("vault_float")])
        ledger.post(
            session,
            at=ctx.now(),
            kind="cash_load",
            reference=idem_key,
            legs=[
                (ctx.account("cash_contra"), -amount),
                (ctx.account("cash_on_hand"), amount),
                (ctx.account("vault_float"), -amount),
                (wallet.account_id, amount),
            ],
        )
        vault.check_water_marks(
            session, ctx, float_balance=balances[ctx.account("vault_float")] - amount
        )
        return {
            "wallet_id": wallet_id,
            "amount": amount,
            "wallet_balance": repo.account_balance(session, wallet.account_id),
        }

    return _staff_idempotent(session, key_id, idem_key, request_hash, run)


def cash_withdraw(
    session: Session,
    ctx: OperatorContext,
    *,
    order: dict[str, Any],
    signature: str,
    key_id: str,
    idem_key: str,
    request_hash: str,
) -> dict[str, Any]:
    """Wallet -> banknotes over the counter, the mirror of `cash_load`: the holder's digital
    currency returns to the vault float and the counter's cash goes out. Staff submit the
    holder's signed `cash_withdrawal` order (the consent); its nonce is unique per wallet like
    every order's, so one consent pays out once whatever Idempotency-Key staff send it with."""

    def run() -> dict[str, Any]:
        wallet = service.require_wallet(session, ctx, order["wallet"])
        orders.check_currency(ctx, order)
        order_hash = orders.check_signed_order(wallet, order, signature, now=ctx.now())
        amount = order["amount"]
        float_, cash = ctx.account("vault_float"), ctx.account("cash_on_hand")
        balances = ledger.lock_accounts(
            session, [wallet.account_id, float_, cash, ctx.account("cash_contra")]
        )
        previous = wallet_repo.find_order(session, wallet.id, order["nonce"])
        if previous is not None:
            orders.check_replay(previous, order_hash)
            return {**_exchange_result(session, ctx, previous, wallet), "replayed": True}
        limits.require_active(wallet)
        if balances[wallet.account_id] < amount:
            raise InsufficientFunds(_wallet_short(ctx, balances[wallet.account_id], amount))
        if balances[cash] < amount:
            raise CashOnHandInsufficient(
                f"the counter holds {_money(ctx, balances[cash])} in banknotes; "
                f"it cannot pay out {_money(ctx, amount)}"
            )
        row = _record(
            session,
            ctx,
            wallet=wallet,
            order=order,
            signature=signature,
            order_hash=order_hash,
            kind="cash_withdrawal",
            counterparty="cash",
            legs=[
                (wallet.account_id, -amount),
                (float_, amount),
                (cash, -amount),
                (ctx.account("cash_contra"), amount),
            ],
        )
        aml.on_unload(session, ctx, wallet=wallet, amount=amount)
        vault.check_water_marks(session, ctx, float_balance=balances[float_] + amount)
        return _exchange_result(session, ctx, row, wallet)

    return _staff_idempotent(session, key_id, idem_key, request_hash, run)
