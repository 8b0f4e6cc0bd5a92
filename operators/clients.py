"""The operator's view of the other parties: the central bank and peer operators."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience
from cbdc.http import RemoteUnavailable, SignedClient

DIRECTORY_TTL = 30.0  # a known operator's key or status change is seen within this
DIRECTORY_MISS_TTL = 5.0  # an unknown code refreshes at most this often


class CentralBankClient:
    """Signed calls to the central bank, every response signature verified."""

    def __init__(
        self, http: httpx.Client, *, code: str, key: SigningKey, central_bank_public_key: str
    ) -> None:
        self.client = SignedClient(
            http,
            key=key,
            key_id=f"operator:{code}",
            server_public_key=central_bank_public_key,
            audience=CENTRAL_BANK_AUDIENCE,
        )
        self._directory: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
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

    def settle_batch(
        self, *, reference: str, serials: list[str], items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Batched gross settlement (`operators.settlement.rtgs`): one call for many payments."""
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            "/v1/settlements/batch",
            {"reference": reference, "serials": serials, "items": items},
            idempotency_key=f"settle-batch:{reference}",
        )

    # -------------------------------------------------------- clearing (deferred net)

    def submit_for_clearing(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST", "/v1/clearing/submissions", body
        )

    def obligations(self, *, actionable: bool = True, limit: int = 1000) -> list[dict[str, Any]]:
        answer = self.client.request(
            "GET",
            "/v1/clearing/obligations",
            params={"actionable": "true" if actionable else "false", "limit": limit},
        )
        return list(answer["obligations"])

    def obligation(
        self, obligation_id: str, *, items: bool = True, offset: int = 0
    ) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "GET",
            f"/v1/clearing/obligations/{obligation_id}",
            params={"items": "true" if items else "false", "offset": offset},
        )

    def pay_obligation(self, obligation_id: str, serials: list[str]) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            f"/v1/clearing/obligations/{obligation_id}/pay",
            {"serials": serials},
            idempotency_key=f"net:{obligation_id}",
        )

    def acknowledge_obligation(self, obligation_id: str, returned: list[str]) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST", f"/v1/clearing/obligations/{obligation_id}/ack", {"returned": returned}
        )

    def report_alert(self, report: dict[str, Any]) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST", "/v1/analysis/reports", report
        )

    def register_disclosure_anchor(self, *, seq: int, head: str, signature: str) -> dict[str, Any]:
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            "/v1/registration/disclosure-anchors",
            {"seq": seq, "hash": head, "signature": signature},
        )

    def revoke_offline_device(self, *, device: str, serial: str, reason: str) -> dict[str, Any]:
        """Revoke one of this operator's offline devices (idempotent per device)."""
        return self.client.request(  # type: ignore[no-any-return]
            "POST",
            "/v1/certification/offline-revocations",
            {"device": device, "serial": serial, "reason": reason},
        )

    def offline_revocations(self) -> dict[str, Any]:
        """The signed list of revoked offline devices ({"document", "signature"})."""
        return self.client.request(  # type: ignore[no-any-return]
            "GET", "/v1/certification/offline-revocations"
        )

    def position(self) -> dict[str, Any]:
        return self.client.request("GET", "/v1/operators/me")  # type: ignore[no-any-return]

    def operator(self, code: str, *, refresh: bool = False) -> dict[str, Any] | None:
        """The operator directory entry (certificate, key) for `code`, cached. An unknown code
        refreshes the directory at most every DIRECTORY_MISS_TTL seconds, so a stream of
        requests naming unknown operators cannot turn into a stream of calls to the central
        bank; known entries are refreshed every DIRECTORY_TTL seconds."""
        with self._lock:
            age = time.monotonic() - self._fetched_at
            missing = refresh or code not in self._directory
            if (
                not self._fetched_at
                or age > DIRECTORY_TTL
                or (missing and age > DIRECTORY_MISS_TTL)
            ):
                listing = self.client.request("GET", "/v1/operators")
                self._directory = {entry["code"]: entry for entry in listing}
                self._fetched_at = time.monotonic()
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
                    self.http_factory(url),
                    key=self.key,
                    key_id=f"operator:{self.code}",
                    audience=operator_audience(code),
                )
            return self._clients[code]

    def offline_claims(self, code: str, claims: list[dict[str, Any]]) -> dict[str, Any]:
        """Forward payments our devices received from operator `code`'s devices
        (`POST /v1/interop/offline/claims`); its answer per claim."""
        client = self.client(code)
        if client is None:
            raise RemoteUnavailable(f"no address known for operator {code}")
        return client.request(  # type: ignore[no-any-return]
            "POST", "/v1/interop/offline/claims", {"claims": claims}
        )
