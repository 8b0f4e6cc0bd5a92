"""Giving a voucher payment back (the refund hook of body type `voucher_payment`, composed into
`OperatorContext.refund_hooks` by operators.state and reached by operators.settlement.refunds):
a voucher payment the payee's operator returns, or the central bank or the clearing house
refuses, never becomes free money of the holder. It goes back into the holder's voucher while
the programme is active and now < expires_at (event `refund`: the voucher's `spent` goes down),
else to the programme's issuer wallet, where expiry sends what is unspent (event
`refund_expired`: `spent` down, `returned` up, as if expiry had returned it). So each voucher
account still holds granted - spent - returned, and the programme's totals stay the sums of its
vouchers'.

Locks (`lock`, before the refund locks its ledger accounts, as a payment takes them): the
programmes FOR UPDATE in id order, then the vouchers FOR UPDATE in (programme, holder) order;
then the caller locks the accounts (voucher and issuer wallet accounts among them) ascending.
The expiry sweep takes the programme row FOR UPDATE SKIP LOCKED: a refund holding it makes the
sweep pass it over until the next pass (then the refunded value is returned with the rest); a
sweep holding it makes the refund wait and then see `expired` (to the issuer). Exactly once: the
callers refund an order once (its status, the inbound settlement's idempotency) and
`uq_voucher_events_refund` allows one refund event per payment order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from operators.programmable import voucher_repository as vrepo
from operators.wallets import repository as wallet_repo


def _key(order: Any) -> tuple[uuid.UUID, str]:
    return uuid.UUID(str(order.body["programme"])), str(order.wallet_id)


def _issuer_account(session: Any, programme: dict[str, Any]) -> int:
    issuer = wallet_repo.get_wallet(session, programme["issuer"])
    assert issuer is not None
    return int(issuer.account_id)


def lock(session: Any, orders: Sequence[Any]) -> set[int]:
    """Lock the programmes and vouchers of the voucher payments `orders`; the accounts a refund
    of any of them may credit (the voucher accounts and the issuers' wallet accounts)."""
    keys = sorted({_key(o) for o in orders})
    accounts: set[int] = set()
    for programme_id in sorted({p for p, _ in keys}):
        programme = vrepo.get_programme(session, programme_id, lock="update")
        assert programme is not None, f"no programme {programme_id}"
        accounts.add(_issuer_account(session, programme))
    for programme_id, holder in keys:
        voucher = vrepo.voucher(session, programme_id, holder, lock=True)
        assert voucher is not None, f"no voucher of {holder} in {programme_id}"
        accounts.add(int(voucher["account_id"]))
    return accounts


def book(session: Any, order: Any, amount: int, now: datetime) -> int:
    """Record the refund of `amount` of the voucher payment `order` (rows locked by `lock` in
    this transaction): the voucher's totals and the event. The account to credit: the
    voucher's while the programme is active and now < expires_at, else the issuer's wallet."""
    programme_id, holder = _key(order)
    programme = vrepo.get_programme(session, programme_id, lock="update")
    voucher = vrepo.voucher(session, programme_id, holder, lock=True)
    assert programme is not None and voucher is not None
    active = programme["status"] == "active" and now < programme["expires_at"]
    if active:
        vrepo.add_to(session, programme_id, holder, spent=-amount)
        target = int(voucher["account_id"])
    else:
        vrepo.add_to(session, programme_id, holder, spent=-amount, returned=amount)
        target = _issuer_account(session, programme)
    vrepo.add_event(
        session,
        programme_id=programme_id,
        holder=holder,
        kind="refund" if active else "refund_expired",
        amount=amount,
        order_id=order.id,
        created_at=now,
    )
    return target
