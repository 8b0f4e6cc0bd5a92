"""Helpers for the bad input tests: raw clients that turn a crash into a 500, problem checks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from fastapi.testclient import TestClient

from cbdc.crypto import SigningKey
from cbdc.envelope import sign_request
from wallets.orders import payment_order

JSON = {"content-type": "application/json"}


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == response.status_code
    assert isinstance(body["code"], str) and body["code"]
    assert body["type"].endswith(body["code"])
    return body


class Raw:
    """Raw HTTP against one app that reports server errors as 500 responses."""

    def __init__(self, app: Any, audience: str) -> None:
        self.http = TestClient(app, raise_server_exceptions=False)
        self.audience = audience

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        key: SigningKey | None = None,
        key_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        content = body if body is not None else b""
        all_headers = dict(JSON) if body is not None else {}
        if key is not None and key_id is not None:
            # the server checks the signature over the decoded path (and the raw query)
            route, _, query = path.partition("?")
            target = unquote(route) + (f"?{query}" if query else "")
            # an Idempotency-Key among the headers is signed with the rest, as clients do
            all_headers |= sign_request(
                key,
                key_id,
                method,
                target,
                content,
                audience=self.audience,
                idempotency_key=(headers or {}).get("Idempotency-Key"),
            )
        all_headers |= headers or {}
        return self.http.request(method, path, content=content, headers=all_headers)

    def send_json(self, method: str, path: str, value: Any, **kw: Any) -> Any:
        return self.send(method, path, json.dumps(value).encode(), **kw)


def valid_order(p: dict[str, Any], **changes: Any) -> dict[str, Any]:
    order = payment_order(
        payer=p["payer"].wallet_id, payee=p["payee"].wallet_id, amount=100, currency="CNY"
    )
    order.update(changes)
    return order


def balances(p: dict[str, Any]) -> tuple[int, int, int]:
    return (
        p["payer"].balance().balance,
        p["payee"].balance().balance,
        p["remote"].balance().balance,
    )
