"""The operator's view of the other parties: the central bank and peer operators."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from cbdc.crypto import SigningKey
from cbdc.http import SignedClient


class CentralBankClient:
    """Signed calls to the central bank, every response signature verified."""

    def __init__(
        self, http: httpx.Client, *, code: str, key: SigningKey, central_bank_public_key: str
    ) -> None:
        self.client = SignedClient(
            http, key=key, key_id=f"operator:{code}", server_public_key=central_bank_public_key
        )
        self._directory: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def issue(self, *, amount: int, idempotency_key: str) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST", "/v1/issuance", {"amount": amount}, idempotency_key=idempotency_key
        )

    def redeem(self, *, serials: list[str], amount: int, idempotency_key: str) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            "/v1/redemption",
            {"serials": serials, "amount": amount},
            idempotency_key=idempotency_key,
        )

    def settle(
        self, *, payee_operator: str, amount: int, serials: list[str], reference: str
    ) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            "/v1/settlements",
            {
                "payee_operator": payee_operator,
                "amount": amount,
                "serials": serials,
                "reference": reference,
            },
            idempotency_key=f"settle:{reference}",
        )

    def position(self) -> dict[str, Any]:
        return self.client.request("GET", "/v1/operators/me")  # type: ignore[no-any-return]

    def operator(self, code: str, *, refresh: bool = False) -> dict[str, Any] | None:
        """The operator directory entry (certificate, key) for `code`, cached."""
        with self._lock:
            if refresh or code not in self._directory:
                listing = self.client.request("GET", "/v1/operators")
                self._directory = {entry["code"]: entry for entry in listing}
            return self._directory.get(code)


class PeerClients:
    """Signed calls to other operators, by routing code."""

    def __init__(
        self,
        *,
        code: str,
        key: SigningKey,
        url_for: Callable[[str], str | None],
        http_factory: Callable[[str], httpx.Client] | None = None,
    ) -> None:
        self.code, self.key, self.url_for = code, key, url_for
        self.http_factory = http_factory or (lambda url: httpx.Client(base_url=url, timeout=10))
        self._clients: dict[str, SignedClient] = {}
        self._lock = threading.Lock()

    def client(self, code: str) -> SignedClient | None:
        with self._lock:
            if code not in self._clients:
                url = self.url_for(code)
                if url is None:
                    return None
                self._clients[code] = SignedClient(
                    self.http_factory(url), key=self.key, key_id=f"operator:{self.code}"
                )
            return self._clients[code]
