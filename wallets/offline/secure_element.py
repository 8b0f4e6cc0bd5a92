"""A simulated secure element: the chip in a phone, SIM or card that holds an offline device's
key and purse and pays other devices with no network.

The device key is generated inside (`SecureElement.generate`) and no method returns it. The only
way out is `state()`, the *sealed storage*: what a real chip keeps in its protected memory. The
simulation persists devices through it (wallets.offline.store), and the two attacks copy it:
`clone()` (the same sealed state in a second device: same key, counter and purse) and a rollback
(an earlier sealed state restored, wallets.offline.store.DeviceStore.rollback). Both make the
device sign two different transfers with the same (payer, counter); the payer's operator detects
them at sync (docs/offline.md).

An honest secure element, as payer (`pay`): never signs beyond its purse or its certificate's
per-payment limit, never reuses a counter (each transfer carries counter + 1 and the hash of the
previous one, so its log is a chain), refuses once it has made `max_payments` payments or
`max_days` days have passed since its last sync (`offline_must_sync`), and refuses while its own
certificate is revoked (on the last revocation list it synced) or expired. It has no trusted
clock: it keeps the latest time it has seen (its transfers, payments received, its operator's
acks) and never takes "now" as earlier, so setting the device's clock back buys no offline days
(at most it freezes time at its last transfer: `max_payments` still bounds it).

As payee (`receive`) it runs `cbdc.offline.check_payment` with its last revocation list and the
(payer, counter) pairs it has received, and logs the payment. **Received value is not added to
the purse**: it is credited to the payee's online wallet when either device syncs. So every
offline transfer is adjudicated once, by the payer's operator, and a counterfeit (a clone's or a
rolled-back device's transfer) cannot be passed on offline; to spend offline again, the holder
funds the purse from the online wallet.

Every refusal raises `cbdc.offline.OfflineRefusal` with one of the kernel's stable codes.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from cbdc import offline
from cbdc.clock import iso, parse_iso
from cbdc.crypto import SigningKey
from cbdc.offline import OfflineRefusal
from cbdc.policy import OfflineLimits
from cbdc.tokens import verify_document
from wallets.offline import receipts

STATE_VERSION = 1


class SecureElement:
    """One device's secure element. Create it with `generate`, install the certificate the
    operator issued for its public key, fund it, then pay and receive offline and sync online."""

    def __init__(self, state: dict[str, Any]) -> None:
        """Open a sealed state (use `generate` or `from_state`)."""
        if state.get("version") != STATE_VERSION:
            raise OfflineRefusal(offline.MALFORMED, "unknown secure element state version")
        self._key = SigningKey.from_private_bytes(str(state["sealed_key"]))
        if self._key.public_key != state["public_key"]:
            raise OfflineRefusal(offline.MALFORMED, "the sealed key does not match its public key")
        self._s: dict[str, Any] = copy.deepcopy(state)

    # ------------------------------------------------------------ making and sealing

    @classmethod
    def generate(cls, currency: str) -> SecureElement:
        """A new, empty secure element whose key pair is made inside it."""
        key = SigningKey.generate()
        return cls(
            {
                "version": STATE_VERSION,
                "sealed_key": key.private_bytes(),
                "public_key": key.public_key,
                "currency": currency,
                "device": None,
                "certificate": None,
                "operator_certificate": None,
                "central_bank_public_key": None,
                "purse": 0,
                "counter": 0,
                "last_hash": offline.GENESIS,
                "fundings": 0,
                "last_sync_at": None,
                "clock": None,
                "revocations": None,
                "seen": [],
                "sent": [],
                "received": [],
            }
        )

    def state(self) -> dict[str, Any]:
        """The sealed storage (includes the private key): for persistence and for the attacks."""
        return copy.deepcopy(self._s)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SecureElement:
        return cls(state)

    def clone(self) -> SecureElement:
        """The clone attack: a second device with the same sealed state (key, counter, purse)."""
        return SecureElement.from_state(self.state())

    # ------------------------------------------------------------ identity

    @property
    def public_key(self) -> str:
        return str(self._s["public_key"])

    @property
    def currency(self) -> str:
        return str(self._s["currency"])

    @property
    def installed(self) -> bool:
        return self._s["certificate"] is not None

    @property
    def device_id(self) -> str:
        return str(self._device_document()["device"])

    @property
    def wallet_id(self) -> str:
        """The online wallet the device is registered to (its certificate's)."""
        return str(self._device_document()["wallet"])

    @property
    def certificate(self) -> dict[str, Any]:
        self._device_document()
        return copy.deepcopy(self._s["certificate"])

    @property
    def operator_certificate(self) -> dict[str, Any]:
        self._device_document()
        return copy.deepcopy(self._s["operator_certificate"])

    @property
    def limits(self) -> OfflineLimits:
        return offline.limits_of(self._device_document())

    @property
    def purse(self) -> int:
        return int(self._s["purse"])

    @property
    def counter(self) -> int:
        return int(self._s["counter"])

    def _device_document(self) -> dict[str, Any]:
        certificate = self._s["certificate"]
        if certificate is None:
            raise OfflineRefusal(offline.MALFORMED, "the device has no certificate installed")
        document: dict[str, Any] = certificate["document"]
        return document

    def _operator_key(self) -> str:
        self._device_document()
        return str(self._s["operator_certificate"]["document"]["public_key"])

    # ------------------------------------------------------------ online: install, fund

    def install(
        self,
        certificate: dict[str, Any],
        operator_certificate: dict[str, Any],
        central_bank_public_key: str,
    ) -> None:
        """Install the certificate the operator issued for this device's key (checked against
        the central bank's key). A renewal (same device id) keeps the purse and the counter."""
        try:
            document = offline.verify_device_chain(
                central_bank_public_key, operator_certificate, certificate
            )
        except (KeyError, TypeError, AttributeError):
            raise OfflineRefusal(offline.BAD_CHAIN, "the certificates are malformed") from None
        if document.get("public_key") != self.public_key:
            raise OfflineRefusal(offline.BAD_CHAIN, "the certificate is for another key")
        if self.installed and document["device"] != self.device_id:
            raise OfflineRefusal(
                offline.MALFORMED, f"the device is already installed as {self.device_id}"
            )
        try:
            issued_at = parse_iso(str(document["issued_at"]))
            parse_iso(str(document["expires_at"]))
            offline.limits_of(document)
            str(document["wallet"])
        except (KeyError, TypeError, ValueError):
            raise OfflineRefusal(offline.MALFORMED, "the certificate lacks a field") from None
        self._s["device"] = document["device"]
        self._s["certificate"] = copy.deepcopy(certificate)
        self._s["operator_certificate"] = copy.deepcopy(operator_certificate)
        self._s["central_bank_public_key"] = central_bank_public_key
        if self._s["last_sync_at"] is None:
            # registration is the device's first contact with its operator: its allowance of
            # offline days counts from the certificate's issue
            self._s["last_sync_at"] = iso(issued_at)
            self._s["clock"] = iso(self._moment(issued_at))

    def apply_funding(self, signed_record: dict[str, Any]) -> int:
        """Add a funding record the operator signed (each exactly once, in seq order); return
        the purse balance."""
        funding = receipts.check_funding(
            signed_record,
            operator_key=self._operator_key(),
            device_id=self.device_id,
            currency=self.currency,
        )
        seq, amount = funding.seq, funding.amount
        expected = int(self._s["fundings"]) + 1
        if seq < expected:
            raise OfflineRefusal(offline.COUNTER_REUSED, f"funding {seq} was already applied")
        if seq > expected:
            raise OfflineRefusal(offline.MALFORMED, f"funding {expected} must be applied first")
        if self.purse + amount > self.limits.purse_cap:
            raise OfflineRefusal(
                offline.OVER_LIMIT, f"the purse would exceed its cap of {self.limits.purse_cap}"
            )
        self._s["purse"] = self.purse + amount
        self._s["fundings"] = seq
        return self.purse

    # ------------------------------------------------------------ offline: pay, receive

    def pay(
        self, payee_device: str, payee_wallet: str, amount: int, now: datetime
    ) -> dict[str, Any]:
        """Sign a transfer to another device; return the payment the payee's device checks:
        {"transfer", "signature", "certificate", "operator_certificate"}."""
        now = self._moment(now)
        self._check_own_certificate(now)
        reason = self.must_sync(now)
        if reason:
            raise OfflineRefusal(offline.MUST_SYNC, reason)
        if not offline.is_device_id(payee_device) or not isinstance(payee_wallet, str):
            raise OfflineRefusal(offline.MALFORMED, "the payee is not a device id and a wallet")
        if payee_device == self.device_id:
            raise OfflineRefusal(offline.WRONG_PAYEE, "a device cannot pay itself")
        _check_amount(amount)
        if amount > self.limits.per_payment:
            raise OfflineRefusal(
                offline.OVER_LIMIT,
                f"{amount} exceeds the per-payment limit {self.limits.per_payment}",
            )
        self._check_purse(amount)
        signed = self._sign_transfer(payee_device, payee_wallet, amount, now)
        return {
            **signed,
            "certificate": self.certificate,
            "operator_certificate": self.operator_certificate,
        }

    def defund(self, amount: int, now: datetime) -> dict[str, Any]:
        """Sign a defund (a transfer to the own online wallet) for the operator's defund
        endpoint; it joins the log like any transfer. Not bound by the per-payment limit nor by
        must-sync (a defund is made online), nor by the own certificate's status (it is how the
        holder gets the purse back)."""
        now = self._moment(now)
        self._device_document()
        _check_amount(amount)
        self._check_purse(amount)
        return self._sign_transfer(
            offline.defund_payee(self.wallet_id), self.wallet_id, amount, now
        )

    def receive(self, payment: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Check a payment offline and log it for the next sync (its value is credited online
        at sync, not added to the purse); return the transfer document."""
        now = self._moment(now)
        if not isinstance(payment, dict):
            raise OfflineRefusal(offline.MALFORMED, "a payment is a JSON object")
        document = offline.check_payment(
            payment,
            central_bank_public_key=str(self._s["central_bank_public_key"]),
            payee_device=self.device_id,
            payee_wallet=self.wallet_id,
            currency=self.currency,
            revoked=self.revoked_devices,
            now=now,
            seen=self._seen(),
        )
        kept = {
            key: copy.deepcopy(payment[key])
            for key in ("transfer", "signature", "certificate", "operator_certificate")
        }
        self._s["received"].append(kept)
        self._s["seen"].append([document["payer"], document["counter"]])
        self._s["clock"] = iso(now)
        return copy.deepcopy(document)

    def _check_own_certificate(self, now: datetime | None) -> None:
        document = self._device_document()
        if self.device_id in self.revoked_devices:
            raise OfflineRefusal(offline.REVOKED, "this device's certificate is revoked")
        if now is not None and now > parse_iso(str(document["expires_at"])):
            raise OfflineRefusal(offline.EXPIRED, "this device's certificate has expired")

    def _check_purse(self, amount: int) -> None:
        if amount > self.purse:
            raise OfflineRefusal(
                offline.INSUFFICIENT_PURSE, f"{amount} exceeds the purse balance {self.purse}"
            )

    def _sign_transfer(
        self, payee: str, payee_wallet: str, amount: int, now: datetime
    ) -> dict[str, Any]:
        document = offline.transfer(
            payer=self.device_id,
            payee=payee,
            payee_wallet=payee_wallet,
            counter=self.counter + 1,
            amount=amount,
            currency=self.currency,
            at=now,
            prev=str(self._s["last_hash"]),
        )
        signed = {"transfer": document, "signature": self._key.sign_json(document)}
        self._s["counter"] = document["counter"]
        self._s["purse"] = self.purse - amount
        self._s["last_hash"] = offline.transfer_hash(document)
        self._s["clock"] = iso(now)
        self._s["sent"].append(copy.deepcopy(signed))
        return signed

    def _moment(self, now: datetime) -> datetime:
        """`now`, or the latest time this device has seen if that is later: it has no trusted
        clock, so a clock set back must not buy it offline days nor revive its certificate."""
        _aware(now)
        latest = self._s.get("clock")
        return now if latest is None else max(now, parse_iso(str(latest)))

    def _seen(self) -> set[tuple[str, int]]:
        return {(str(payer), int(counter)) for payer, counter in self._s["seen"]}

    # ------------------------------------------------------------ online: sync

    def sync_batch(self, now: datetime) -> dict[str, Any]:
        """The signed log for the operator: the transfers signed and the payments received
        since the last sync. Changes nothing (a batch may be sent again)."""
        _aware(now)
        document = offline.sync_batch(
            device=self.device_id,
            counter=self.counter,
            sent=copy.deepcopy(self._s["sent"]),
            received=copy.deepcopy(self._s["received"]),
            at=now,
        )
        return {"batch": document, "signature": self._key.sign_json(document)}

    def apply_sync(self, answer: dict[str, Any]) -> None:
        """Take the operator's answer to a sync: the signed ack (operator key) and the signed
        revocation list (central bank key). Drops the sent transfers the ack covers (counter <=
        its counter) and the received payments the answer lists, resets the offline allowance,
        keeps the newer revocation list."""
        checked = receipts.check_sync_answer(
            answer,
            operator_key=self._operator_key(),
            central_bank_public_key=str(self._s["central_bank_public_key"]),
            device_id=self.device_id,
        )
        if checked.counter > self.counter:
            raise OfflineRefusal(offline.MALFORMED, "the ack covers transfers never signed here")
        if checked.at < self.last_sync_at:
            raise OfflineRefusal(offline.MALFORMED, "the ack is older than the last sync")
        self._s["sent"] = [s for s in self._s["sent"] if s["transfer"]["counter"] > checked.counter]
        self._s["received"] = [
            p
            for p in self._s["received"]
            if offline.transfer_hash(p["transfer"]) not in checked.carried
        ]
        self._s["last_sync_at"] = iso(checked.at)
        self._s["clock"] = iso(self._moment(checked.at))
        self._keep_list(checked.revocations, checked.version)

    def apply_revocations(self, signed_list: dict[str, Any]) -> None:
        """Take a revocation list handed over outside a sync (at registration, so that a new
        device refuses revoked payers before its first sync): kept if the central bank signed
        it and it is newer than the one the device holds."""
        document = signed_list.get("document") if isinstance(signed_list, dict) else None
        if not isinstance(document, dict) or not verify_document(
            str(self._s["central_bank_public_key"]), signed_list
        ):
            raise OfflineRefusal(
                offline.BAD_SIGNATURE, "the revocation list is not the central bank's"
            )
        version = document.get("version")
        if (
            document.get("type") != "offline-revocation-list"
            or not isinstance(version, int)
            or isinstance(version, bool)
            or version < 0
            or not isinstance(document.get("revoked"), list)
        ):
            raise OfflineRefusal(offline.MALFORMED, "not a revocation list")
        self._keep_list(signed_list, version)

    def _keep_list(self, signed_list: dict[str, Any], version: int) -> None:
        kept = self._s["revocations"]
        if kept is None or version >= int(kept["document"]["version"]):
            self._s["revocations"] = copy.deepcopy(signed_list)

    # ------------------------------------------------------------ what the holder sees

    @property
    def last_sync_at(self) -> datetime:
        self._device_document()
        return parse_iso(str(self._s["last_sync_at"]))

    @property
    def payments_since_sync(self) -> int:
        """Payments (not defunds) signed since the last sync: the unsynced ones."""
        return sum(1 for s in self._s["sent"] if not offline.is_defund(s["transfer"]))

    @property
    def revoked_devices(self) -> set[str]:
        """The devices on the last revocation list this device synced."""
        listed = self._s["revocations"]
        if listed is None:
            return set()
        return {str(entry["device"]) for entry in listed["document"]["revoked"]}

    def must_sync(self, now: datetime) -> str | None:
        """Why the device must sync before it pays again (None if it need not): `max_payments`
        payments, or `max_days` days, since its last sync."""
        now, limits = self._moment(now), self.limits
        if self.payments_since_sync >= limits.max_payments:
            return f"{limits.max_payments} payments since the last sync"
        if now - self.last_sync_at >= timedelta(days=limits.max_days):
            return f"{limits.max_days} days since the last sync"
        return None

    def certificate_status(self, now: datetime | None = None) -> str:
        """The own certificate's status: "not installed", "revoked" (on the last list synced),
        "expired" (checked only when `now` is given) or "active"."""
        if not self.installed:
            return "not installed"
        try:
            self._check_own_certificate(None if now is None else self._moment(now))
        except OfflineRefusal as refusal:
            return "revoked" if refusal.code == offline.REVOKED else "expired"
        return "active"

    def view(self, now: datetime | None = None) -> dict[str, Any]:
        """Purse, counter, unsynced sent/received, certificate status (no key material)."""
        view: dict[str, Any] = {
            "public_key": self.public_key,
            "currency": self.currency,
            "installed": self.installed,
            "purse": self.purse,
            "counter": self.counter,
            "fundings": int(self._s["fundings"]),
            "certificate_status": self.certificate_status(now),
        }
        if not self.installed:
            return view
        listed = self._s["revocations"]
        document = self._device_document()
        view.update(
            device=self.device_id,
            wallet=self.wallet_id,
            operator=offline.operator_of(self.device_id),
            serial=document.get("serial"),
            expires_at=document.get("expires_at"),
            limits=dict(document["limits"]),
            last_hash=self._s["last_hash"],
            last_sync_at=self._s["last_sync_at"],
            payments_since_sync=self.payments_since_sync,
            revocations_version=None if listed is None else listed["document"]["version"],
            unsynced_sent=[_line(s["transfer"]) for s in self._s["sent"]],
            unsynced_received=[_line(p["transfer"]) for p in self._s["received"]],
        )
        if now is not None:
            view["must_sync"] = self.must_sync(now) is not None
        return view


def _aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("`now` must be a datetime with a time zone")


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise OfflineRefusal(offline.MALFORMED, "the amount must be a positive integer")


def _line(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "payer": document["payer"],
        "payee": document["payee"],
        "counter": document["counter"],
        "amount": document["amount"],
        "at": document["at"],
        "hash": offline.transfer_hash(document),
    }
