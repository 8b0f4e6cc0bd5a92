"""Operators accept the central bank's key (key id `central-bank`) for reading the disclosure
log, which the dashboard checks against the central bank's anchors, and for nothing else."""

from __future__ import annotations

import uuid

import pytest

from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, SignedClient
from tests.conftest import InProcessNetwork


def as_central_bank(
    net: InProcessNetwork, code: str, key: SigningKey | None = None
) -> SignedClient:
    return SignedClient(
        net.operator_http[code],
        key=key or net.cb_key,
        key_id="central-bank",
        audience=f"operator:{code}",
    )


def test_central_bank_key_reads_the_disclosure_log(network: InProcessNetwork) -> None:
    for code in ("BKA1", "BKB1"):
        assert as_central_bank(network, code).request("GET", "/v1/regulator/disclosure-log") == {
            "entries": []
        }


def test_another_key_under_the_central_banks_id_is_refused(network: InProcessNetwork) -> None:
    forged = as_central_bank(network, "BKA1", key=SigningKey.generate())
    with pytest.raises(RemoteError) as refused:
        forged.request("GET", "/v1/regulator/disclosure-log")
    assert refused.value.status == 401


def test_central_bank_key_is_refused_everywhere_else(network: InProcessNetwork) -> None:
    wallet = network.open_wallet("BKA1", load=10_00)
    customer = wallet.balance().customer_id
    cb = as_central_bank(network, "BKA1")
    calls: list[tuple[str, str, object, str | None]] = [
        ("GET", "/v1/admin/disclosure-log/verify", None, None),
        ("GET", "/v1/admin/aml/alerts", None, None),
        ("GET", f"/v1/wallets/{wallet.wallet_id}", None, None),
        ("GET", f"/v1/wallets/{wallet.wallet_id}/history", None, None),
        ("GET", "/v1/admin/vault", None, None),
        ("GET", "/v1/offline/revocations", None, None),  # open to any signed caller but this
        ("POST", f"/v1/admin/customers/{customer}/deposit", {"amount": 100}, str(uuid.uuid4())),
    ]
    for method, path, body, idem in calls:
        with pytest.raises(RemoteError) as refused:
            cb.request(method, path, body, idempotency_key=idem)
        assert refused.value.status == 403, (path, refused.value.body)
