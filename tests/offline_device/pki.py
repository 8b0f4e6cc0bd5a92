"""A central bank, operators and their signed documents for the device tests, with no server:
the same builders (`cbdc.offline`) and signatures (`cbdc.tokens.sign_document`) the services use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cbdc import offline
from cbdc.crypto import SigningKey
from cbdc.policy import OfflineLimits
from cbdc.tokens import sign_document
from wallets.offline.secure_element import SecureElement

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CURRENCY = "EUR"
LIMITS = OfflineLimits(per_payment=500_00, purse_cap=1_000_00, max_payments=5, max_days=3)


def operator_certificate(cb: SigningKey, code: str, key: SigningKey) -> dict[str, Any]:
    document = {
        "type": "operator-certificate",
        "operator": code,
        "name": f"Operator {code}",
        "public_key": key.public_key,
        "issued_at": T0.isoformat(),
        "issuer": "central_bank",
    }
    return sign_document(cb, document)


@dataclass
class Operator:
    code: str
    key: SigningKey
    certificate: dict[str, Any]
    fundings: dict[str, int] = field(default_factory=dict)


@dataclass
class Network:
    """A central bank and two operators (AAAA, BBBB)."""

    cb: SigningKey = field(default_factory=SigningKey.generate)
    operators: dict[str, Operator] = field(default_factory=dict)
    revoked: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for code in ("AAAA", "BBBB"):
            key = SigningKey.generate()
            self.operators[code] = Operator(code, key, operator_certificate(self.cb, code, key))

    def device_certificate(
        self, code: str, public_key: str, *, wallet: str | None = None, **overrides: Any
    ) -> dict[str, Any]:
        document = offline.device_certificate(
            device_id=offline.new_device_id(code),
            public_key=public_key,
            operator=code,
            wallet_id=wallet or f"{code}W{public_key[:6].upper()}",
            wallet_class=4,
            limits=LIMITS,
            serial=f"S-{public_key[:12]}",
            issued_at=T0,
        )
        document.update(overrides)
        return sign_document(self.operators[code].key, document)

    def device(self, code: str = "AAAA", *, funded: int = 0) -> SecureElement:
        """A device registered at `code`, with `funded` in its purse."""
        se = SecureElement.generate(CURRENCY)
        operator = self.operators[code]
        se.install(
            self.device_certificate(code, se.public_key),
            operator.certificate,
            self.cb.public_key,
        )
        if funded:
            se.apply_funding(self.funding(se.device_id, funded))
        return se

    def funding(self, device: str, amount: int, *, seq: int | None = None) -> dict[str, Any]:
        operator = self.operators[offline.operator_of(device)]
        number = seq if seq is not None else operator.fundings.get(device, 0) + 1
        operator.fundings[device] = max(number, operator.fundings.get(device, 0))
        record = offline.funding_record(
            device=device, seq=number, amount=amount, currency=CURRENCY, at=T0, order="o-1"
        )
        return sign_document(operator.key, record)

    def revoke(self, device: SecureElement) -> None:
        document = device.certificate["document"]
        self.revoked.append(
            {
                "device": document["device"],
                "serial": document["serial"],
                "operator": document["operator"],
                "reason": "test",
                "at": T0.isoformat(),
            }
        )

    def revocations(self, at: datetime = T0) -> dict[str, Any]:
        listed = offline.revocation_list(
            version=len(self.revoked), issued_at=at, revoked=list(self.revoked)
        )
        return sign_document(self.cb, listed)

    def answer(self, batch: dict[str, Any], at: datetime) -> dict[str, Any]:
        """What the device's operator answers a sync (every received payment listed)."""
        document = batch["batch"]
        operator = self.operators[offline.operator_of(document["device"])]
        ack = offline.sync_ack(
            device=document["device"],
            counter=document["counter"],
            at=at,
            revocations_version=len(self.revoked),
        )
        return {
            "ack": sign_document(operator.key, ack),
            "revocations": self.revocations(at),
            "sent": [],
            "received": [
                {
                    "payer": p["transfer"]["payer"],
                    "counter": p["transfer"]["counter"],
                    "hash": offline.transfer_hash(p["transfer"]),
                    "status": "accepted",
                }
                for p in document["received"]
            ],
        }


def after(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)
