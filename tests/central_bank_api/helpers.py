"""Helpers for calling the central bank as an operator: signed clients, issuance, positions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cbdc.envelope import (
    CENTRAL_BANK_AUDIENCE,
)
from cbdc.http import RemoteError, SignedClient

RESERVES = 10**11  # what the network fixture funds each operator with


def operator_client(network: Any, code: str) -> SignedClient:
    return SignedClient(
        network.cb,
        key=network.operator_keys[code],
        key_id=f"operator:{code}",
        server_public_key=network.cb_key.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )


def idem() -> str:
    return f"test-{uuid.uuid4()}"


def issue(client: SignedClient, amount: int, key: str | None = None) -> dict[str, Any]:
    return client.request("POST", "/v1/issuance", {"amount": amount}, idempotency_key=key or idem())


def position(client: SignedClient) -> dict[str, Any]:
    return client.request("GET", "/v1/operators/me")


def token_info(network: Any, serial: str) -> dict[str, Any]:
    return network.admin.request("GET", f"/v1/tokens/{serial}")


def cb_audit_ok(network: Any) -> dict[str, Any]:
    report = network.admin.request("GET", "/v1/admin/audit")
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    return report


def refused(call: Any, status: int, code: str) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body
    body = caught.value.body
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status
    return caught.value
