"""Helpers for the revocation list tests: operators calling the central bank."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from cbdc.envelope import CENTRAL_BANK_AUDIENCE, sign_request
from cbdc.http import SignedClient

PATH = "/v1/certification/offline-revocations"


def device_id(code: str) -> str:
    """A device id routed to operator `code` (cbdc.offline.new_device_id's format)."""
    return f"{code}D{secrets.token_hex(8).upper()[:15]}"


def at_central_bank(net: Any, code: str) -> SignedClient:
    """Operator `code` calling the central bank, as its CentralBankClient does."""
    return SignedClient(
        net.cb,
        key=net.operator_keys[code],
        key_id=f"operator:{code}",
        server_public_key=net.cb_key.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )


def post_raw(net: Any, code: str, body: Any) -> httpx.Response:
    """A signed POST by operator `code` whose raw answer (status, headers) the test reads."""
    raw = json.dumps(body).encode()
    headers = sign_request(
        net.operator_keys[code],
        f"operator:{code}",
        "POST",
        PATH,
        raw,
        audience=CENTRAL_BANK_AUDIENCE,
    )
    headers["content-type"] = "application/json"
    response: httpx.Response = net.cb.post(PATH, content=raw, headers=headers)
    return response


def revoke(
    net: Any, code: str, device: str, *, serial: str = "S1", reason: str = "counter_reuse"
) -> httpx.Response:
    return post_raw(net, code, {"device": device, "serial": serial, "reason": reason})


def revocation_list(net: Any, code: str = "BKB1") -> dict[str, Any]:
    return dict(at_central_bank(net, code).request("GET", PATH))
