"""A signing HTTP client used by operators, wallets and the CLI.

Requests are signed with `cbdc.envelope` for the client's `audience` (the service it talks to:
`central-bank` or `operator:<code>`); 4xx answers come back as `RemoteError` carrying the
server's stable problem `code`; network failures and 5xx as `RemoteUnavailable` (retryable).
The Idempotency-Key header is part of the signed text (and of the response signature).
When `server_public_key` is given, answers to signed requests must carry a valid
CBDC-Response-Signature bound to the request sent (the central bank signs every answer to an
authenticated request); an answer without one, a 401 included, is `RemoteUnavailable`: it is not
the server's word, so it must never be taken for a refusal (a payer refunded on a forged 401).

Parties that sign with authority (admin, operators, the regulator) name the audience they mean.
A client built without one learns it once from the server's public `GET /v1/info`: that trusts
the server to name itself, which is only right where the key signs for that server alone.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import Any

import httpx

from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    H_NONCE,
    H_RESPONSE_SIG,
    RequestBinding,
    sign_request,
    verify_response,
)


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


# Audiences learned from `GET /v1/info`, per HTTP client (one per server).
_learned: weakref.WeakKeyDictionary[httpx.Client, str] = weakref.WeakKeyDictionary()
_learning = threading.Lock()


def remember_audience(http: httpx.Client, info: Any) -> None:
    """Keep the audience named in a `GET /v1/info` answer already fetched over `http`."""
    if isinstance(info, dict) and isinstance(info.get("audience"), str):
        with _learning:
            _learned[http] = info["audience"]


class SignedClient:
    def __init__(
        self,
        http: httpx.Client,
        *,
        key: SigningKey | None = None,
        key_id: str | None = None,
        server_public_key: str | None = None,
        audience: str | None = None,
    ) -> None:
        self.http, self.key, self.key_id = http, key, key_id
        self.server_public_key = server_public_key
        self._audience = audience

    @property
    def audience(self) -> str:
        """The service this client's requests are signed for (learned once if not given)."""
        if self._audience is None:
            learned = _learned.get(self.http)
            if learned is None:
                info = self.request("GET", "/v1/info", signed=False)
                remember_audience(self.http, info)
                learned = _learned.get(self.http)
                if learned is None:
                    raise RemoteUnavailable("GET /v1/info names no audience")
            self._audience = learned
        return self._audience

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
            query = str(httpx.QueryParams({k: v for k, v in params.items() if v is not None}))
            if query:  # no bare "?": the server sees no query, so it would not verify
                target += "?" + query
        headers = {"content-type": "application/json"} if body is not None else {}
        use_key, use_id = key or self.key, key_id or self.key_id
        binding: RequestBinding | None = None
        if signed and use_key is not None and use_id is not None:
            audience = self.audience
            envelope = sign_request(
                use_key,
                use_id,
                method,
                target,
                raw,
                audience=audience,
                idempotency_key=idempotency_key,
            )
            headers |= envelope
            binding = RequestBinding(
                audience=audience,
                method=method.upper(),
                target=target,
                key_id=use_id,
                nonce=envelope[H_NONCE],
                idempotency_key=idempotency_key or "",
                body_sha256=sha256_hex(raw),
            )
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.http.request(method, target, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 500:
            raise _unavailable(f"{method} {path}", response)
        if self.server_public_key and binding is not None:
            signature = response.headers.get(H_RESPONSE_SIG, "")
            if not verify_response(
                self.server_public_key, binding, response.status_code, response.content, signature
            ):
                raise RemoteUnavailable(
                    f"{method} {path}: {response.status_code} answer without a valid response "
                    f"signature for this request: not the server's word, retry"
                )
        try:
            data = response.json() if response.content else None
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
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
    except (ValueError, RecursionError):
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
