"""The device SDK: an offline device's online calls to its operator, on behalf of the wallet
the device is registered to.

    offline = OfflineClient(wallet)                 # a wallets.client.WalletClient
    se = SecureElement.generate(offline.currency)
    offline.register(se, "phone")                   # certificate installed into the SE
    offline.fund(se, 200_00)                        # wallet -> purse, record applied to the SE
    payment = se.pay(other.device_id, other.wallet_id, 50_00, now)   # offline, no network
    other_se.receive(payment, now)
    offline.sync(se)                                # log uploaded, ack and revocations applied

Money-moving calls are signed orders or device-signed messages whose own identity makes them
idempotent (a registration by the device key, a funding by its order's nonce, a defund or a
sync batch by its transfers' hashes), so each is retried like a payment when the operator
cannot answer for a moment (`wallets.client.RetryPolicy`): the same signed body every try.
Reads are signed envelopes from the wallet key.

The secure element is changed in memory only: the caller persists it (wallets.offline.store)
after every call, also after one that raised. A defund the operator never heard of (it stayed
unreachable) is already signed and debited in the SE and sits in its log: the next sync
carries it, and the operator credits the wallet then.

The central bank's key is what every chain ends in: give it (`central_bank_public_key`, from
the network's configuration) to have the SDK refuse an operator that names another one; without
it, the key the operator hands over at registration is trusted (trust on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cbdc import offline
from cbdc.clock import utcnow
from cbdc.offline import OfflineRefusal
from cbdc.tokens import verify_document
from wallets.client import WalletClient
from wallets.offline.secure_element import SecureElement
from wallets.orders import offline_device_order, offline_fund_order, sign_order

__all__ = [
    "DefundResult",
    "DeviceView",
    "FundingResult",
    "OfflineClient",
    "Registration",
    "SignedRevocationList",
    "SyncResult",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class OfflineLimitsOut(_Model):
    per_payment: int
    purse_cap: int
    max_payments: int
    max_days: int


class Registration(_Model):
    device_id: str
    certificate: dict[str, Any]
    operator_certificate: dict[str, Any]
    central_bank_public_key: str
    limits: OfflineLimitsOut
    purse_balance: int
    revocations: dict[str, Any] | None = None  # the central bank's list, if it was at hand
    replayed: bool = False


class FundingResult(_Model):
    funding: dict[str, Any]
    purse_balance: int
    wallet_balance: int
    replayed: bool = False
    applied: list[int] = []  # funding seqs applied to the SE by this call (none: already were)


class DefundResult(_Model):
    outcome: str
    credited: int
    purse_balance: int
    wallet_balance: int
    hash: str | None = None


class SentOutcome(_Model):
    counter: int | None  # None: a transfer too malformed to name its counter (refused)
    hash: str | None
    outcome: str  # settled | pending_settlement | duplicate | double_spend | forwarding | refused
    code: str | None = None  # the refusal's code


class ReceivedStatus(_Model):
    payer: str | None
    counter: int | None
    hash: str | None
    status: str
    code: str | None = None


class SyncResult(_Model):
    ack: dict[str, Any]
    revocations: dict[str, Any]
    sent: list[SentOutcome]
    received: list[ReceivedStatus]
    purse_balance: int
    device_status: str


class DeviceView(_Model):
    device_id: str
    wallet_id: str
    status: str
    certificate: dict[str, Any]
    purse_balance: int
    fundings: list[dict[str, Any]] = []
    last_sync_at: str | None = None


class RevocationListDocument(_Model):
    type: str
    version: int
    issued_at: str
    revoked: list[dict[str, Any]]


class SignedRevocationList(_Model):
    document: RevocationListDocument
    signature: str

    @property
    def devices(self) -> set[str]:
        return {str(entry["device"]) for entry in self.document.revoked}


class OfflineClient:
    """The online calls of the devices registered to one wallet."""

    def __init__(
        self,
        wallet: WalletClient,
        *,
        central_bank_public_key: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.wallet = wallet
        self.central_bank_public_key = central_bank_public_key
        self.clock = clock  # the device's clock: transfer and batch times

    @property
    def currency(self) -> str:
        return self.wallet.operator.currency

    def _post_signed(self, path: str, body: dict[str, Any]) -> Any:
        """A body whose own signature authorises it: sent as is, the same every try."""
        wallet = self.wallet
        return wallet.retry.call(lambda: wallet.client.request("POST", path, body, signed=False))

    def _get(self, path: str) -> Any:
        """A read, signed by the wallet key (a new envelope every try)."""
        wallet = self.wallet
        return wallet.retry.call(lambda: wallet.client.request("GET", path))

    # ------------------------------------------------------------ registration

    def register(self, se: SecureElement, name: str, *, nonce: str | None = None) -> Registration:
        """Register the SE's key to the wallet and install the certificate the operator signs
        (checked by the SE against the central bank's key). Again with the same key: the same
        device (`replayed`)."""
        order = offline_device_order(
            wallet=self.wallet.wallet_id,
            public_key=se.public_key,
            name=name,
            currency=se.currency,
            nonce=nonce,
        )
        answer = Registration.model_validate(
            self._post_signed(
                f"/v1/wallets/{self.wallet.wallet_id}/devices", sign_order(self.wallet.key, order)
            )
        )
        key = answer.central_bank_public_key
        if self.central_bank_public_key is not None and key != self.central_bank_public_key:
            raise OfflineRefusal(
                offline.BAD_CHAIN, "the operator names another central bank key than ours"
            )
        se.install(answer.certificate, answer.operator_certificate, key)
        if answer.revocations is not None:
            se.apply_revocations(answer.revocations)
        self.central_bank_public_key = key
        return answer

    # ------------------------------------------------------------ purse

    def funding_order(
        self, se: SecureElement, amount: int, *, nonce: str | None = None
    ) -> dict[str, Any]:
        """The signed `offline_fund` order (keep it to send it again: see `submit_funding`)."""
        order = offline_fund_order(
            wallet=self.wallet.wallet_id,
            device=se.device_id,
            amount=amount,
            currency=se.currency,
            nonce=nonce,
        )
        return sign_order(self.wallet.key, order)

    def fund(self, se: SecureElement, amount: int, *, nonce: str | None = None) -> FundingResult:
        """Move `amount` from the wallet into the device's purse and apply the signed funding
        record to the SE (`funding_order` then `submit_funding`)."""
        return self.submit_funding(se, self.funding_order(se, amount, nonce=nonce))

    def submit_funding(self, se: SecureElement, signed_order: dict[str, Any]) -> FundingResult:
        """Send a signed funding order and apply its record to the SE. The same order again is
        the same funding (`replayed`; its record is already in the SE: nothing is applied
        twice); a record whose predecessors the SE missed (an answer lost, then a new order)
        is applied after them, fetched from the device view (`catch_up`)."""
        answer = FundingResult.model_validate(
            self._post_signed(f"/v1/offline/devices/{se.device_id}/fund", signed_order)
        )
        seq = int(answer.funding["document"]["seq"])
        applied = self.catch_up(se) if seq > _fundings(se) + 1 else []
        if seq > _fundings(se):
            se.apply_funding(answer.funding)
            applied.append(seq)
        answer.applied = applied
        return answer

    def catch_up(self, se: SecureElement) -> list[int]:
        """Apply every funding record the operator has for the device that the SE has not
        applied yet, in order; return their seqs."""
        records = sorted(
            self.device(se.device_id).fundings, key=lambda r: int(r["document"]["seq"])
        )
        applied = []
        for record in records:
            seq = int(record["document"]["seq"])
            if seq > _fundings(se):
                se.apply_funding(record)
                applied.append(seq)
        return applied

    def defund(self, se: SecureElement, amount: int) -> DefundResult:
        """The SE signs a defund transfer (purse -> its own wallet) and the operator credits the
        wallet with what the purse covers. Signed once: retries send the same transfer, and
        if the operator never answers the next sync carries it."""
        signed = se.defund(amount, self.clock())
        return DefundResult.model_validate(
            self._post_signed(f"/v1/offline/devices/{se.device_id}/defund", signed)
        )

    # ------------------------------------------------------------ sync

    def sync(self, se: SecureElement) -> SyncResult:
        """Upload the SE's signed log (sent transfers, received payments) and apply the answer:
        the operator's signed ack resets the offline allowance, and the central bank's signed
        revocation list replaces an older one. The same batch again changes nothing there."""
        batch = se.sync_batch(self.clock())
        raw = self._post_signed(f"/v1/offline/devices/{se.device_id}/sync", batch)
        answer = SyncResult.model_validate(raw)
        se.apply_sync(raw)
        return answer

    # ------------------------------------------------------------ reads

    def device(self, device_id: str) -> DeviceView:
        """The device as its operator knows it (purse, fundings, transfers, status)."""
        return DeviceView.model_validate(self._get(f"/v1/offline/devices/{device_id}"))

    def revocations(self) -> SignedRevocationList:
        """The central bank's signed list of revoked devices, as the operator hands it over;
        verified when the central bank's key is known."""
        raw = self._get("/v1/offline/revocations")
        key = self.central_bank_public_key
        if key is not None and not verify_document(key, raw):
            raise OfflineRefusal(
                offline.BAD_SIGNATURE, "the revocation list is not the central bank's"
            )
        return SignedRevocationList.model_validate(raw)


def _fundings(se: SecureElement) -> int:
    """How many funding records the SE has applied."""
    return int(se.view()["fundings"])
