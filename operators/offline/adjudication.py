"""Adjudication: every transfer of one of our devices is judged here once, whichever side
brings it (the payer's sync, the payee's sync, a claim forwarded by the payee's operator, a
defund), and settled to its payee.

Settling a transfer of device P (payer wallet W), amount A, to payee wallet Q:
take = min(A, purse); rest = A - take; recovered = min(rest, balance of W); loss = rest -
recovered, paid from the vault float and recorded in the fraud-loss memorandum pair. One entry
(kind `offline_payment`): purse -take, W -recovered, vault_float -loss, fraud_losses +loss,
fraud_losses_contra -loss, +A to Q's wallet (ours: order `completed`) or to `in_transit_out`
(another operator's: order `pending_settlement`, settled through the central bank). A payee
that cannot take it (closed, over its cap when the policy refuses) has it credited back to W
(order `returned`). A defund (payee `wallet:<W>`) credits W with what the purse covers.

Detection: a second hash for a (device, counter) already adjudicated (`counter_reuse`: a clone
or a rollback) or rest > 0 (`overspend`). At the first, the device is revoked, an AML alert
raised and the revocation reported to the central bank, in the same transaction; every detection
adds to the device's one `offline_double_spends` row (so the count and the total loss do not
depend on the order logs arrive in; which kind is seen first does). The transfer is still
honoured: the payee accepted it in good faith.

Concurrency: the payers' device rows are locked first, in id order, then every account the
batch touches in one `lock_accounts`; two syncs that share a payer serialise on its row, and the
second sees the first's transfers (a duplicate moves nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc import offline as kernel
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import parse_iso
from cbdc.errors import DomainError
from operators.compliance import aml
from operators.context import OperatorContext
from operators.exchange.service import VaultShortfall
from operators.models import Order, Wallet
from operators.offline import repository as offline_repo
from operators.offline.revocations import queue_revocation
from operators.settlement.queue import queue_cross_operator
from operators.wallets import limits
from operators.wallets import repository as wallet_repo

UNKNOWN_DEVICE = "offline_unknown_device"


def refused(code: str, detail: str, document: Any = None) -> dict[str, Any]:
    doc = document if isinstance(document, dict) else {}
    hashed = kernel.transfer_hash(doc) if doc else None
    return {
        "payer": doc.get("payer"),
        "counter": doc.get("counter"),
        "hash": hashed,
        "outcome": "refused",
        "code": code,
        "detail": detail,
    }


def adjudicate(
    session: Session,
    ctx: OperatorContext,
    *,
    payment_or_signed_transfer: dict[str, Any],
    source: str,
) -> dict[str, Any]:
    """Adjudicate and settle one transfer of one of our devices (a payment carries it with its
    certificates; the signature is checked against the key registered here). Returns its
    outcome: settled | pending_settlement | returned | duplicate | double_spend | refused."""
    return adjudicate_many(session, ctx, [payment_or_signed_transfer], source=source)[0]


def adjudicate_many(
    session: Session,
    ctx: OperatorContext,
    signed: Sequence[dict[str, Any]],
    *,
    source: str,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Adjudicate transfers of our devices in order, in the caller's transaction."""
    return _Batch(session, ctx, now or ctx.now(), source).run(signed)


class _Batch:
    def __init__(self, session: Session, ctx: OperatorContext, now: datetime, source: str):
        self.session, self.ctx, self.now, self.source = session, ctx, now, source
        self.devices: dict[str, Row[Any]] = {}
        self.revoked: set[str] = set()
        self.wallets: dict[str, Wallet] = {}
        self.deposits: dict[str, int] = {}
        self.balances: dict[int, int] = {}
        self.existing: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.cross: list[tuple[uuid.UUID, str, str, int]] = []
        self.known_peers: dict[str, bool] = {}
        self.payee_wallets: dict[str, str] = {}  # our payee devices' wallets

    def run(self, signed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(signed)
        docs: dict[int, tuple[dict[str, Any], str]] = {}
        payers = set()
        for i, item in enumerate(signed):
            doc = item.get("transfer") if isinstance(item, dict) else None
            if not isinstance(doc, dict) or not isinstance(doc.get("payer"), str):
                results[i] = refused(kernel.MALFORMED, "a transfer is {transfer, signature}")
            else:
                payers.add(doc["payer"])
        self.devices = offline_repo.lock_devices(self.session, sorted(payers))
        self.revoked = {d for d, row in self.devices.items() if row.status == "revoked"}
        for i, item in enumerate(signed):
            if results[i] is None:
                try:
                    docs[i] = self._check(item)
                except kernel.OfflineRefusal as exc:
                    results[i] = refused(exc.code, exc.detail, item.get("transfer"))
        self._lock(docs)
        for i, (doc, signature) in docs.items():
            results[i] = self._one(doc, signature)
        queue_cross_operator(self.session, self.ctx, self.cross)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------ checks and locks

    def _check(self, item: dict[str, Any]) -> tuple[dict[str, Any], str]:
        payer = item["transfer"]["payer"]
        device = self.devices.get(payer)
        if device is None:
            raise kernel.OfflineRefusal(UNKNOWN_DEVICE, f"no device {payer} at {self.ctx.code}")
        document = kernel.check_transfer_signature(item, device.certificate)
        if document.get("currency") != self.ctx.currency:
            raise kernel.OfflineRefusal(kernel.WRONG_CURRENCY, f"not in {self.ctx.currency}")
        # What no payee running the offline checks accepts (cbdc.offline.check_payment) is
        # not honoured either: it bounds what a colluding payee can claim.
        limits = kernel.limits_of(device.certificate)
        if not kernel.is_defund(document) and document["amount"] > min(
            limits.per_payment, limits.purse_cap
        ):
            raise kernel.OfflineRefusal(kernel.OVER_LIMIT, "over the per-payment limit")
        if parse_iso(str(document["at"])) > parse_iso(str(device.certificate["expires_at"])):
            raise kernel.OfflineRefusal(kernel.EXPIRED, "made after the certificate expired")
        if kernel.is_defund(document) and (
            document["payee"] != kernel.defund_payee(device.wallet_id)
            or document["payee_wallet"] != device.wallet_id
        ):
            raise kernel.OfflineRefusal(kernel.WRONG_PAYEE, "a defund goes to the own wallet")
        return document, str(item["signature"])

    def _lock(self, docs: dict[int, tuple[dict[str, Any], str]]) -> None:
        wanted = {self.devices[doc["payer"]].wallet_id for doc, _ in docs.values()}
        for doc, _ in docs.values():
            payee = doc["payee_wallet"]
            if is_valid_wallet_id(payee) and routing_code(payee) == self.ctx.code:
                wanted.add(payee)
        for wallet_id in sorted(wanted):
            wallet = wallet_repo.get_wallet(self.session, wallet_id)
            if wallet is not None:
                self.wallets[wallet_id] = wallet
        if self.ctx.policy.overflow == "sweep":
            for wallet in self.wallets.values():
                customer = wallet_repo.get_customer(self.session, wallet.customer_id)
                assert customer is not None
                self.deposits[wallet.id] = customer.deposit_account_id
        system = ("vault_float", "fraud_losses", "fraud_losses_contra", "in_transit_out")
        accounts = [self.ctx.account(code) for code in system]
        accounts += [self.devices[doc["payer"]].account_id for doc, _ in docs.values()]
        accounts += [w.account_id for w in self.wallets.values()]
        accounts += list(self.deposits.values())
        if self.deposits:
            accounts.append(self.ctx.account("deposits_contra"))
        ours = [doc["payee"] for doc, _ in docs.values() if str(doc["payee"])[:4] == self.ctx.code]
        self.payee_wallets = offline_repo.device_wallets(self.session, ours)
        pairs = [(doc["payer"], int(doc["counter"])) for doc, _ in docs.values()]
        for key, rows in offline_repo.transfers_at(self.session, pairs).items():
            self.existing[key] = [dict(r._mapping) for r in rows]
        self.balances = ledger.lock_accounts(self.session, accounts)
        for wallet in self.wallets.values():
            self.session.refresh(wallet)  # status and class as of the lock

    # ------------------------------------------------------------ one transfer

    def _one(self, doc: dict[str, Any], signature: str) -> dict[str, Any]:
        ctx, device = self.ctx, self.devices[doc["payer"]]
        digest, counter, amount = kernel.transfer_hash(doc), int(doc["counter"]), doc["amount"]
        base = {"payer": device.id, "counter": counter, "hash": digest}
        earlier = self.existing.setdefault((device.id, counter), [])
        for row in earlier:
            if row["transfer_hash"] == digest:
                return {
                    **base,
                    "outcome": "duplicate",
                    "status": row["outcome"],
                    "order_id": str(row["order_id"]) if row["order_id"] else None,
                }
        if (
            device.id in self.revoked
            and self.source == f"sync:{device.id}"
            and not kernel.is_defund(doc)
        ):
            # Brought by the revoked device itself: its payees bring what they accepted (their
            # sync or their operator's claim). Else a rolled-back device (which forgets that it
            # was revoked) could pay any wallet, with no payee's check, again and again.
            return refused(kernel.REVOKED, "settled when its payee brings it", doc)
        purse, payer = device.account_id, self.wallets[device.wallet_id]
        take = min(amount, self.balances[purse])
        rest = amount - take
        legs: dict[int, int] = {}

        def leg(account: int, value: int) -> None:
            legs[account] = legs.get(account, 0) + value

        status, failure, counterparty, cross = "completed", None, doc["payee_wallet"], False
        target = payer.account_id
        if not kernel.is_defund(doc):
            target, status, failure, cross = self._credit_target(doc, payer, amount, leg)
        if target == payer.account_id:
            # A defund, or a payment its payee cannot take: only what the purse holds goes back
            # to the payer's wallet; nothing is recovered and the float pays nothing (a shortfall
            # is still a detected double spend).
            recovered = loss = 0
            credited = take
        else:
            recovered = min(rest, max(self.balances[payer.account_id], 0))
            loss = rest - recovered
            credited = amount
        vault = ctx.account("vault_float")
        if loss > self.balances[vault]:
            raise VaultShortfall(loss - self.balances[vault])
        leg(purse, -take)
        leg(payer.account_id, -recovered)
        leg(vault, -loss)
        leg(ctx.account("fraud_losses"), loss)
        leg(ctx.account("fraud_losses_contra"), -loss)
        leg(target, credited)
        order_id = uuid.uuid4() if credited > 0 else None
        if order_id is not None:
            entry = ledger.post(
                self.session,
                at=self.now,
                kind="offline_payment",
                reference=str(order_id),
                legs=[(a, v) for a, v in sorted(legs.items()) if v != 0],
            )
            for account, value in legs.items():
                self.balances[account] = self.balances.get(account, 0) + value
            wallet_repo.add_order(
                self.session,
                Order(
                    id=order_id,
                    wallet_id=payer.id,
                    nonce=f"off:{device.id}:{counter}:{digest[:16]}",
                    kind="offline_payment",
                    amount=credited,
                    counterparty=counterparty,
                    body=doc,
                    signature=signature,
                    order_hash=digest,
                    status=status,
                    failure=failure,
                    entry_id=entry,
                    created_at=self.now,
                    updated_at=self.now,
                ),
            )
            if cross:
                self.cross.append((order_id, payer.id, counterparty, amount))
        detection = "counter_reuse" if earlier else ("overspend" if rest > 0 else None)
        outcome = {"completed": "settled"}.get(status, status)
        offline_repo.add_transfer(
            self.session,
            payer_device=device.id,
            counter=counter,
            transfer_hash=digest,
            payee=doc["payee"],
            payee_wallet=doc["payee_wallet"],
            amount=amount,
            at=parse_iso(str(doc["at"])),
            transfer=doc,
            signature=signature,
            source=self.source,
            outcome=outcome,
            detection=detection,
            taken=take,
            recovered=recovered,
            loss=loss,
            order_id=order_id,
            created_at=self.now,
        )
        if detection is not None:
            self._detected(device, detection, doc, digest, earlier, loss, recovered)
        earlier.append(
            {
                "transfer_hash": digest,
                "outcome": outcome,
                "order_id": order_id,
                "at": parse_iso(str(doc["at"])),
            }
        )
        return {
            **base,
            "outcome": "double_spend" if detection else outcome,
            "status": outcome,
            "order_id": str(order_id) if order_id else None,
            "credited": credited,
            "taken": take,
            "recovered": recovered,
            "loss": loss,
            "detection": detection,
            "failure": failure,
        }

    def _credit_target(
        self, doc: dict[str, Any], payer: Wallet, amount: int, leg: Any
    ) -> tuple[int, str, str | None, bool]:
        """(account credited, order status, failure, cross-operator) for a payment's payee."""
        ctx, payee_id = self.ctx, doc["payee_wallet"]
        if not is_valid_wallet_id(payee_id):
            return payer.account_id, "returned", "invalid_wallet_id", False
        peer = routing_code(payee_id)
        if (
            not kernel.is_device_id(doc["payee"])
            or kernel.operator_of(doc["payee"]) != peer
            or (peer == ctx.code and self.payee_wallets.get(doc["payee"]) != payee_id)
        ):  # no payee's device would take it (a device's wallet is its certificate's)
            return payer.account_id, "returned", kernel.WRONG_PAYEE, False
        if peer != ctx.code:
            if peer not in self.known_peers:
                self.known_peers[peer] = ctx.central_bank.operator(peer) is not None
            if not self.known_peers[peer]:
                return payer.account_id, "returned", "unknown_payee_operator", False
            return ctx.account("in_transit_out"), "pending_settlement", None, True
        payee = self.wallets.get(payee_id)
        if payee is None:
            return payer.account_id, "returned", "unknown_wallet", False
        try:
            limits.require_active(payee, "payee wallet")
            overflow = limits.cap_overflow(ctx, payee, self.balances[payee.account_id], amount)
        except DomainError as exc:
            return payer.account_id, "returned", exc.code, False
        if overflow:  # the policy sweeps what exceeds the cap into the payee's deposit
            leg(payee.account_id, -overflow)
            leg(ctx.account("vault_float"), overflow)
            leg(ctx.account("deposits_contra"), -overflow)
            leg(self.deposits[payee.id], overflow)
        return payee.account_id, "completed", None, False

    def _detected(
        self,
        device: Row[Any],
        kind: str,
        doc: dict[str, Any],
        digest: str,
        earlier: list[dict[str, Any]],
        loss: int,
        recovered: int,
    ) -> None:
        at = parse_iso(str(doc["at"]))
        first_at = min([at, *(row["at"] for row in earlier)])
        hashes = [digest, *(str(row["transfer_hash"]) for row in earlier)]
        offline_repo.add_double_spend(
            self.session,
            device_id=device.id,
            kind=kind,
            detected_at=self.now,
            first_at=first_at,
            loss=loss,
            recovered=recovered,
            hashes=hashes,
        )
        if device.id in self.revoked:
            return  # detected before: its row adds this shortfall; one alert, one revocation
        self.revoked.add(device.id)
        aml.on_offline_double_spend(
            self.session,
            self.ctx,
            wallet_id=device.wallet_id,
            amount=int(doc["amount"]),
            details={"kind": kind, "counter": doc["counter"], "loss": loss},
            at=self.now,
        )
        offline_repo.revoke_device(self.session, device.id, reason=kind, now=self.now)
        queue_revocation(
            self.session,
            self.ctx,
            device_id=device.id,
            serial=device.serial,
            reason=kind,
            now=self.now,
        )
