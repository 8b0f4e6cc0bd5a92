"""Offline ("dual offline") payments: the messages devices, operators and the central bank
exchange, and the checks any of them can make with no network. Pure functions, no I/O.

    device certificate   operator -> device   {"document": ..., "signature": ...} signed by the
                         operator; chain: central bank -> operator certificate -> device
    funding record       operator -> device   value moved from the online wallet into the purse
    transfer             payer device         {"transfer": doc, "signature": ...}: counter,
                         amount, payee, time, hash of the payer's previous transfer
    payment              payer -> payee       a transfer plus the payer's two certificates, all a
                         payee needs to check it offline
    sync batch           device -> operator   the device's log, signed by the device
    sync ack             operator -> device   what the operator accepted, and the revocation
                         list version it handed over
    revocation list      central bank         every revoked device, signed by the central bank

The protocol, message by message, and its threat model: docs/offline.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from cbdc.clock import iso, parse_iso
from cbdc.crypto import canonical_json, sha256_hex, verify_json
from cbdc.policy import OfflineLimits
from cbdc.tokens import verify_document

GENESIS = "0" * 64  # `prev` of a device's first transfer
DEVICE_ID = re.compile(r"^[A-Z0-9]{4}D[0-9A-F]{15}$")
DEFUND_PREFIX = "wallet:"  # a transfer whose payee is "wallet:<id>" defunds into that wallet
CERTIFICATE_DAYS = 365

# Stable refusal codes (a device's refusal offline; the same codes as problem+json online).
BAD_CHAIN = "offline_bad_chain"
REVOKED = "offline_device_revoked"
EXPIRED = "offline_certificate_expired"
BAD_SIGNATURE = "offline_bad_signature"
WRONG_PAYEE = "offline_wrong_payee"
WRONG_CURRENCY = "offline_wrong_currency"
OVER_LIMIT = "offline_over_limit"
COUNTER_REUSED = "offline_counter_reused"
INSUFFICIENT_PURSE = "offline_insufficient_purse"
MUST_SYNC = "offline_must_sync"
MALFORMED = "offline_malformed"


class OfflineRefusal(Exception):
    """A check of the offline protocol failed; `code` is one of the constants above."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# ------------------------------------------------------------------ identifiers


def new_device_id(operator: str) -> str:
    """A device id: the operator's routing code, "D", 15 random hex digits (routable by prefix,
    like wallet ids)."""
    return f"{operator}D{secrets.token_hex(8).upper()[:15]}"


def operator_of(device_id: str) -> str:
    return device_id[:4]


def is_device_id(text: str) -> bool:
    return bool(DEVICE_ID.match(text))


def defund_payee(wallet_id: str) -> str:
    return f"{DEFUND_PREFIX}{wallet_id}"


def is_defund(transfer: dict[str, Any]) -> bool:
    return str(transfer.get("payee", "")).startswith(DEFUND_PREFIX)


# ------------------------------------------------------------------ documents


def device_certificate(
    *,
    device_id: str,
    public_key: str,
    operator: str,
    wallet_id: str,
    wallet_class: int,
    limits: OfflineLimits,
    serial: str,
    issued_at: datetime,
    days: int = CERTIFICATE_DAYS,
) -> dict[str, Any]:
    """The document an operator signs for a device (the caller signs it with `sign_document`)."""
    return {
        "type": "offline-device-certificate",
        "device": device_id,
        "public_key": public_key,
        "operator": operator,
        "wallet": wallet_id,
        "wallet_class": wallet_class,
        "limits": {
            "per_payment": limits.per_payment,
            "purse_cap": limits.purse_cap,
            "max_payments": limits.max_payments,
            "max_days": limits.max_days,
        },
        "serial": serial,
        "issued_at": iso(issued_at),
        "expires_at": iso(issued_at + timedelta(days=days)),
    }


def limits_of(certificate: dict[str, Any]) -> OfflineLimits:
    """The limits a (signed or bare) device certificate carries."""
    document = certificate.get("document", certificate)
    raw = document["limits"]
    return OfflineLimits(
        per_payment=int(raw["per_payment"]),
        purse_cap=int(raw["purse_cap"]),
        max_payments=int(raw["max_payments"]),
        max_days=int(raw["max_days"]),
    )


def transfer(
    *,
    payer: str,
    payee: str,
    payee_wallet: str,
    counter: int,
    amount: int,
    currency: str,
    at: datetime,
    prev: str,
) -> dict[str, Any]:
    """A transfer document (the payer's secure element signs it). `payee` is the payee's
    device id and `payee_wallet` the online wallet its certificate names (where the value is
    credited at sync, by whichever side syncs first); a defund is a transfer with payee
    `defund_payee(own wallet)` and payee_wallet the own wallet."""
    return {
        "type": "offline-transfer",
        "payer": payer,
        "payee": payee,
        "payee_wallet": payee_wallet,
        "counter": counter,
        "amount": amount,
        "currency": currency,
        "at": iso(at),
        "prev": prev,
    }


def transfer_hash(document: dict[str, Any]) -> str:
    """The hash a transfer is known by (and the next transfer's `prev`)."""
    return sha256_hex(canonical_json(document))


def funding_record(
    *, device: str, seq: int, amount: int, currency: str, at: datetime, order: str
) -> dict[str, Any]:
    """Value moved from the online wallet into the device's purse; `seq` counts the device's
    fundings from 1, so a secure element applies each record exactly once."""
    return {
        "type": "offline-funding",
        "device": device,
        "seq": seq,
        "amount": amount,
        "currency": currency,
        "at": iso(at),
        "order": order,
    }


def sync_batch(
    *,
    device: str,
    counter: int,
    sent: list[dict[str, Any]],
    received: list[dict[str, Any]],
    at: datetime,
) -> dict[str, Any]:
    """A device's log for its operator: its own signed transfers since its last sync (`sent`),
    the payments it received (`received`), and its counter now. Signed by the device."""
    return {
        "type": "offline-sync",
        "device": device,
        "counter": counter,
        "sent": sent,
        "received": received,
        "at": iso(at),
    }


def sync_ack(
    *, device: str, counter: int, at: datetime, revocations_version: int
) -> dict[str, Any]:
    """The operator's acknowledgement of a sync (signed by the operator): the secure element
    resets its offline allowance (payments and days) from it."""
    return {
        "type": "offline-sync-ack",
        "device": device,
        "counter": counter,
        "at": iso(at),
        "revocations_version": revocations_version,
    }


def revocation_list(
    *, version: int, issued_at: datetime, revoked: list[dict[str, Any]]
) -> dict[str, Any]:
    """The central bank's list of revoked devices; entries {"device", "serial", "operator",
    "reason", "at"}."""
    return {
        "type": "offline-revocation-list",
        "version": version,
        "issued_at": iso(issued_at),
        "revoked": revoked,
    }


# ------------------------------------------------------------------ checks


def verify_device_chain(
    central_bank_public_key: str,
    operator_certificate: dict[str, Any],
    device_certificate: dict[str, Any],
) -> dict[str, Any]:
    """Check central bank -> operator -> device; return the device certificate's document."""
    if not isinstance(operator_certificate, dict) or not verify_document(
        central_bank_public_key, operator_certificate
    ):
        raise OfflineRefusal(BAD_CHAIN, "the operator certificate is not the central bank's")
    operator = operator_certificate["document"]
    if not isinstance(device_certificate, dict) or not verify_document(
        str(operator.get("public_key", "")), device_certificate
    ):
        raise OfflineRefusal(BAD_CHAIN, "the device certificate is not signed by its operator")
    device = device_certificate["document"]
    if (
        device.get("type") != "offline-device-certificate"
        or device.get("operator") != operator.get("operator")
        or not is_device_id(str(device.get("device", "")))
        or operator_of(str(device["device"])) != operator.get("operator")
    ):
        raise OfflineRefusal(BAD_CHAIN, "the device certificate names another operator")
    return device


def check_transfer_signature(signed: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    """Check a signed transfer against its payer's certificate document; return the transfer."""
    document, signature = signed.get("transfer"), signed.get("signature")
    if not isinstance(document, dict) or not isinstance(signature, str):
        raise OfflineRefusal(MALFORMED, "a transfer is {transfer, signature}")
    if document.get("type") != "offline-transfer" or document.get("payer") != device["device"]:
        raise OfflineRefusal(MALFORMED, "the transfer's payer is not the certificate's device")
    if not verify_json(str(device["public_key"]), document, signature):
        raise OfflineRefusal(BAD_SIGNATURE, "the payer's signature does not verify")
    if not isinstance(document.get("payee"), str) or not isinstance(
        document.get("payee_wallet"), str
    ):
        raise OfflineRefusal(MALFORMED, "payee and payee_wallet must be strings")
    counter, amount = document.get("counter"), document.get("amount")
    if not isinstance(counter, int) or counter < 1 or not isinstance(amount, int) or amount <= 0:
        raise OfflineRefusal(MALFORMED, "counter and amount must be positive integers")
    try:
        parse_iso(str(document.get("at")))
    except ValueError:
        raise OfflineRefusal(MALFORMED, "at: not an ISO timestamp with a zone") from None
    return document


def check_payment(
    payment: dict[str, Any],
    *,
    central_bank_public_key: str,
    payee_device: str,
    payee_wallet: str,
    currency: str,
    revoked: Collection[str],
    now: datetime,
    seen: Collection[tuple[str, int]] = (),
) -> dict[str, Any]:
    """What a payee's device checks before it accepts a payment, offline: the certificate chain,
    the revocation list it last synced (device ids), the certificate's validity, the signature,
    that it is the payee, the currency, the certificate's limits, and that it has not already
    received this payer's counter (`seen`: (payer, counter) pairs). Returns the transfer."""
    try:
        device = verify_device_chain(
            central_bank_public_key,
            payment.get("operator_certificate"),  # type: ignore[arg-type]
            payment.get("certificate"),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, AttributeError):
        raise OfflineRefusal(BAD_CHAIN, "the payment's certificates are malformed") from None
    if device["device"] in revoked:
        raise OfflineRefusal(REVOKED, f"device {device['device']} is revoked")
    if now > parse_iso(str(device["expires_at"])):
        raise OfflineRefusal(EXPIRED, "the payer's device certificate has expired")
    document = check_transfer_signature(payment, device)
    if document.get("payee") != payee_device or document.get("payee_wallet") != payee_wallet:
        raise OfflineRefusal(WRONG_PAYEE, "the transfer is made out to another device")
    if document.get("currency") != currency:
        raise OfflineRefusal(WRONG_CURRENCY, f"the transfer is not in {currency}")
    limits = limits_of(device)
    if document["amount"] > min(limits.per_payment, limits.purse_cap):
        raise OfflineRefusal(
            OVER_LIMIT, f"{document['amount']} exceeds the payer's per-payment limit"
        )
    if (document["payer"], document["counter"]) in seen:
        raise OfflineRefusal(COUNTER_REUSED, "this payer's counter was already received")
    return document
