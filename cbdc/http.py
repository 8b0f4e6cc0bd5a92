"""A signing HTTP client used by operators, wallets and the CLI.

Requests are signed with `cbdc.envelope`; 4xx answers come back as `RemoteError` carrying the
server's stable problem `code`; network failures and 5xx as `RemoteUnavailable` (retryable).
When `server_public_key` is given, responses to signed requests must carry a valid
CBDC-Response-Signature (the central bank signs everything it answers).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from cbdc.crypto import SigningKey
from cbdc.envelope import H_NONCE, H_RESPONSE_SIG, sign_request, verify_response


class RemoteError(Exception):
    """The server refused the request (4xx problem+json)."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.body = status, code, detail, body


class RemoteUnavailable(Exception):
    """The server could not be reached or failed (5xx): safe to retry with the same key.
    `status` is None when no answer came; `code` and `retry_after` (seconds) are the server's
    problem code and Retry-After header, when it sent them (503 `database_unavailable`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


class SignedClient:
    def __init__(
        self,
        http: httpx.Client,
        *,
        key: SigningKey | None = None,
        key_id: str | None = None,
        server_public_key: str | None = None,
    ) -> None:
        self.http, self.key, self.key_id = http, key, key_id
        self.server_public_key = server_public_key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        signed: bool = True,
        key: SigningKey | None = None,
        key_id: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        target = path
        if params:
            target += "?" + str(
                httpx.QueryParams({k: v for k, v in params.items() if v is not None})
            )
        headers = {"content-type": "application/json"} if body is not None else {}
        use_key, use_id = key or self.key, key_id or self.key_id
        if signed and use_key is not None and use_id is not None:
            headers |= sign_request(use_key, use_id, method, target, raw)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.http.request(method, target, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 500:
            raise _unavailable(f"{method} {path}", response)
        if self.server_public_key and H_NONCE in headers:
            signature = response.headers.get(H_RESPONSE_SIG, "")
            if not verify_response(
                self.server_public_key,
                response.status_code,
                headers[H_NONCE],
                response.content,
                signature,
            ):
                raise RemoteUnavailable(f"{method} {path}: response signature does not verify")
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = {"detail": response.text}
        if response.status_code >= 400:
            data = data if isinstance(data, dict) else {}
            raise RemoteError(
                response.status_code,
                str(data.get("code", "http_error")),
                str(data.get("detail", response.text)),
                data,
            )
        return data


def _unavailable(what: str, response: httpx.Response) -> RemoteUnavailable:
    try:
        data = response.json()
    except ValueError:
        data = None
    code = data.get("code") if isinstance(data, dict) else None
    try:
        retry_after: float | None = float(response.headers.get("retry-after", ""))
    except ValueError:
        retry_after = None  # absent, or an HTTP date (we never send one)
    return RemoteUnavailable(
        f"{what}: {response.status_code} {response.text}",
        status=response.status_code,
        code=str(code) if code is not None else None,
        retry_after=retry_after,
    )
