"""A typed Python client for the operator API, signing as the wallet.

op = OperatorClient.connect("http://127.0.0.1:8701")
wallet = op.open_wallet(phone="+8613800000000", display_name="Alice")   # class IV
wallet.load(10_000)            # from the linked deposit account, minor units
receipt = wallet.pay("BKB1...", 2_500, memo="coffee")
wallet.balance().balance, wallet.history().items

Calls that are safe to repeat (payments, loads and unloads: the same signed order, whose nonce
makes it one order however often it arrives; and every read) are retried when the operator
cannot answer for a moment: no answer at all, or 502/503/504 (503 `database_unavailable` while
its database restarts), waiting as its Retry-After says, with backoff, a bounded number of
times (`RetryPolicy`; `NO_RETRY` turns it off). Each try of a signed read is a new envelope with
a new nonce (the operator refuses an envelope it has seen); a payment's order is signed once,
so every try carries the same order and nonce, and a payment that went through before the
answer was lost comes back as its original receipt (`replayed: true`). Opening a wallet is
not retried: the caller decides (the key is bound to the first wallet opened with it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from cbdc.addresses import routing_code
from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient, remember_audience
from wallets.escrows import Escrow
from wallets.orders import (
    escrow_order,
    escrow_refund_order,
    escrow_release_order,
    load_order,
    payment_order,
    schedule_order,
    sign_order,
    unload_order,
)
from wallets.schedules import Schedule
from wallets.vouchers import VoucherHolding, VoucherMethods

__all__ = [
    "NO_RETRY",
    "OperatorClient",
    "RemoteError",
    "RemoteUnavailable",
    "RetryPolicy",
    "WalletClient",
]

T = TypeVar("T")
RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls that are safe to repeat: at most `attempts` tries in all; before try
    n+1 wait `backoff * 2**(n-1)` seconds (jittered), at least the server's Retry-After, at
    most `max_delay`."""

    attempts: int = 6
    backoff: float = 0.25
    max_delay: float = 5.0

    def delay(self, attempt: int, exc: RemoteUnavailable) -> float | None:
        """Seconds to wait after try `attempt` failed with `exc`; None: give up (raise)."""
        if attempt >= self.attempts or not retryable(exc):
            return None
        wait = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        if exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return min(wait, self.max_delay)

    def call(self, attempt: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """`attempt()` until it answers, refuses (RemoteError), or the retries run out."""
        for n in range(1, max(1, self.attempts) + 1):
            try:
                return attempt()
            except RemoteUnavailable as exc:
                wait = self.delay(n, exc)
                if wait is None:
                    raise
            sleep(wait)
        raise AssertionError("unreachable")


NO_RETRY = RetryPolicy(attempts=1)


def retryable(exc: RemoteUnavailable) -> bool:
    """The operator did not answer (the connection failed) or answered that it could not for
    now (502, 503, 504). Not: a 500 (a bug: trying again would not help), or an answer whose
    signature did not verify."""
    if exc.status is not None:
        return exc.status in RETRYABLE_STATUSES
    return isinstance(exc.__cause__, httpx.TransportError)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Limits(_Model):
    balance_cap: int | None
    single_payment: int | None
    daily: int | None
    annual: int | None


class WalletInfo(_Model):
    wallet_id: str
    operator: str
    wallet_class: str
    evidence: list[str] = []
    status: str
    balance: int  # available
    locked: int = 0  # held by the open escrows it pays
    vouchers: list[VoucherHolding] = []  # purpose-bound value it holds, per programme
    currency: str
    customer_id: int
    deposit_balance: int
    limits: Limits
    spent_today: int
    spent_this_year: int
    certificate: dict[str, Any]


class PaymentReceipt(_Model):
    payment_id: str
    payer: str
    payee: str
    amount: int
    currency: str
    route: str
    status: str
    failure: str | None = None
    replayed: bool = False
    receipt: dict[str, Any]


class ExchangeResult(_Model):
    order_id: str
    kind: str
    wallet_id: str
    amount: int
    status: str
    wallet_balance: int
    deposit_balance: int
    replayed: bool = False


class HistoryItem(_Model):
    id: int
    at: str
    kind: str
    amount: int
    reference: str | None
    counterparty: str | None
    status: str
    memo: str | None = None


class History(_Model):
    wallet_id: str
    items: list[HistoryItem]
    next_before: int | None


class OperatorClient:
    """An operator's public face: info, wallet opening, and the batch payment path."""

    def __init__(self, http: httpx.Client, *, retry: RetryPolicy | None = None) -> None:
        self.http = http
        self.client = SignedClient(http)
        self.retry = retry or RetryPolicy()  # for wallets made here, and for pay_batch
        self._info: dict[str, Any] | None = None

    @classmethod
    def connect(
        cls, url: str, *, timeout: float = 30, retry: RetryPolicy | None = None
    ) -> OperatorClient:
        return cls(httpx.Client(base_url=url, timeout=timeout), retry=retry)

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self.retry.call(
                lambda: self.client.request("GET", "/v1/info", signed=False)
            )
            remember_audience(self.http, self._info)  # wallet opening signs for it
        return self._info

    @property
    def currency(self) -> str:
        return str(self.info()["currency"])

    def open_wallet(
        self,
        *,
        display_name: str | None = None,
        phone: str | None = None,
        id_number: str | None = None,
        bank_account: str | None = None,
        wallet_class: str = "IV",
        key: SigningKey | None = None,
        staff_key: SigningKey | None = None,
        customer_id: int | None = None,
    ) -> WalletClient:
        """Self-service signs with the new wallet key (classes IV-II, on the evidence each
        needs); class I needs the operator's staff key (identity verified in person)."""
        key = key or SigningKey.generate()
        body: dict[str, Any] = {"public_key": key.public_key, "wallet_class": wallet_class}
        customer = _evidence(display_name, phone, id_number, bank_account)
        if customer_id is not None:
            body["customer_id"] = customer_id
        if customer or customer_id is None:
            body["customer"] = customer
        if staff_key is not None:
            data = self.client.request(
                "POST",
                "/v1/wallets",
                body,
                key=staff_key,
                key_id=f"operator:{self.info()['operator']}",
            )
        else:
            data = self.client.request("POST", "/v1/wallets", body, key=key, key_id="new-wallet")
        return WalletClient(self, data["wallet_id"], key, info=WalletInfo.model_validate(data))

    def pay_batch(self, signed_orders: list[dict[str, Any]]) -> dict[str, Any]:
        """Submit up to 1000 signed payment orders at once (see POST /v1/payments/batch).
        Retried like a single payment: each order is one payment however often it is sent."""
        return self.retry.call(  # type: ignore[no-any-return]
            lambda: self.client.request(
                "POST", "/v1/payments/batch", {"orders": signed_orders}, signed=False
            )
        )

    def wallet(
        self, wallet_id: str, key: SigningKey, *, retry: RetryPolicy | None = None
    ) -> WalletClient:
        return WalletClient(self, wallet_id, key, retry=retry)


def _evidence(
    display_name: str | None, phone: str | None, id_number: str | None, bank_account: str | None
) -> dict[str, Any]:
    fields = {
        "display_name": display_name,
        "phone": phone,
        "id_number": id_number,
        "bank_account": bank_account,
    }
    return {k: v for k, v in fields.items() if v}


class WalletClient(VoucherMethods):
    """Everything a wallet holder does, each call signed with the wallet key."""

    def __init__(
        self,
        operator: OperatorClient,
        wallet_id: str,
        key: SigningKey,
        info: WalletInfo | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.operator, self.wallet_id, self.key = operator, wallet_id, key
        self.opened = info
        self.retry = retry or operator.retry
        # A wallet's requests are for its own operator, named by the id's routing code.
        self.client = SignedClient(
            operator.http,
            key=key,
            key_id=f"wallet:{wallet_id}",
            audience=operator_audience(routing_code(wallet_id)),
        )

    def _request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """One call, retried per `self.retry`: a signed call is signed again for each try (a new
        envelope nonce); `body` (a signed order) is the same every time."""
        return self.retry.call(lambda: self.client.request(method, path, body, **kwargs))

    def _post_order(self, path: str, order: dict[str, Any]) -> Any:
        """Sign `order` once and POST it: every try sends this same signed order."""
        return self._request("POST", path, sign_order(self.key, order), signed=False)

    def balance(self) -> WalletInfo:
        return WalletInfo.model_validate(self._request("GET", f"/v1/wallets/{self.wallet_id}"))

    def change_class(
        self,
        wallet_class: str,
        *,
        display_name: str | None = None,
        phone: str | None = None,
        id_number: str | None = None,
        bank_account: str | None = None,
    ) -> WalletInfo:
        """Upgrade with the new class's evidence, or downgrade."""
        body: dict[str, Any] = {"wallet_class": wallet_class}
        customer = _evidence(display_name, phone, id_number, bank_account)
        if customer:
            body["customer"] = customer
        return WalletInfo.model_validate(
            self.client.request("POST", f"/v1/wallets/{self.wallet_id}/class", body)
        )

    def history(self, *, limit: int = 50, before: int | None = None) -> History:
        return History.model_validate(
            self._request(
                "GET",
                f"/v1/wallets/{self.wallet_id}/history",
                params={"limit": limit, "before": before},
            )
        )

    def load(self, amount: int, *, nonce: str | None = None) -> ExchangeResult:
        order = load_order(
            wallet=self.wallet_id, amount=amount, currency=self.operator.currency, nonce=nonce
        )
        return ExchangeResult.model_validate(
            self._post_order(f"/v1/wallets/{self.wallet_id}/load", order)
        )

    def unload(self, amount: int, *, nonce: str | None = None) -> ExchangeResult:
        order = unload_order(
            wallet=self.wallet_id, amount=amount, currency=self.operator.currency, nonce=nonce
        )
        return ExchangeResult.model_validate(
            self._post_order(f"/v1/wallets/{self.wallet_id}/unload", order)
        )

    def pay(
        self, payee: str, amount: int, *, memo: str | None = None, nonce: str | None = None
    ) -> PaymentReceipt:
        order = payment_order(
            payer=self.wallet_id,
            payee=payee,
            amount=amount,
            currency=self.operator.currency,
            memo=memo,
            nonce=nonce,
        )
        return self.submit(sign_order(self.key, order))

    def submit(self, signed_order: dict[str, Any]) -> PaymentReceipt:
        """Send a signed payment order, again if the operator cannot answer for a moment (the
        same order: one payment, however many tries reach the operator)."""
        return PaymentReceipt.model_validate(
            self._request("POST", "/v1/payments", signed_order, signed=False)
        )

    def payment(self, payment_id: str) -> PaymentReceipt:
        return PaymentReceipt.model_validate(self._request("GET", f"/v1/payments/{payment_id}"))

    def schedule_payment(
        self,
        payee: str,
        amount: int,
        *,
        first_at: str,
        every: int | None = None,
        count: int = 1,
        memo: str | None = None,
        nonce: str | None = None,
    ) -> Schedule:
        """Pay `payee` at `first_at` (ISO 8601 with zone), then every `every` seconds (None:
        once), `count` times at most; each execution is a payment the operator makes."""
        order = schedule_order(
            payer=self.wallet_id,
            payee=payee,
            amount=amount,
            currency=self.operator.currency,
            first_at=first_at,
            every=every,
            count=count,
            memo=memo,
            nonce=nonce,
        )
        return Schedule.model_validate(self._post_order("/v1/schedules", order))

    def cancel_schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(
            self._request("POST", f"/v1/schedules/{schedule_id}/cancel", {})
        )

    def schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(self._request("GET", f"/v1/schedules/{schedule_id}"))

    def schedules(self) -> list[Schedule]:
        answer = self._request("GET", f"/v1/wallets/{self.wallet_id}/schedules")
        return [Schedule.model_validate(s) for s in answer["schedules"]]

    def create_escrow(
        self,
        payee: str,
        amount: int,
        *,
        deadline: str,
        arbiter: str | None = None,
        memo: str | None = None,
        nonce: str | None = None,
    ) -> Escrow:
        """Lock `amount` for `payee` until `deadline` (ISO 8601 with zone); `arbiter`: a wallet
        of this operator that decides instead of the payer."""
        order = escrow_order(
            payer=self.wallet_id,
            payee=payee,
            amount=amount,
            currency=self.operator.currency,
            deadline=deadline,
            arbiter=arbiter,
            memo=memo,
            nonce=nonce,
        )
        return Escrow.model_validate(self._post_order("/v1/escrows", order))

    def release_escrow(self, escrow_id: str, amount: int, *, nonce: str | None = None) -> Escrow:
        """Release `amount` to the payee, as the payer (no arbiter) or the arbiter."""
        order = escrow_release_order(
            escrow=escrow_id, amount=amount, by=self.wallet_id, nonce=nonce
        )
        return Escrow.model_validate(self._post_order(f"/v1/escrows/{escrow_id}/release", order))

    def refund_escrow(self, escrow_id: str, *, nonce: str | None = None) -> Escrow:
        """Give what remains back to the payer, as the arbiter or the payee."""
        order = escrow_refund_order(escrow=escrow_id, by=self.wallet_id, nonce=nonce)
        return Escrow.model_validate(self._post_order(f"/v1/escrows/{escrow_id}/refund", order))

    def escrow(self, escrow_id: str) -> Escrow:
        return Escrow.model_validate(self._request("GET", f"/v1/escrows/{escrow_id}"))

    def escrows(self) -> list[Escrow]:
        answer = self._request("GET", f"/v1/wallets/{self.wallet_id}/escrows")
        return [Escrow.model_validate(e) for e in answer["escrows"]]
