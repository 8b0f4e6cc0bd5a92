"""What every load-test user shares: the seeded wallets (from the manifest), their derived keys,
signed orders and signed read requests, and the tally of payment outcomes.

The manifest is read once per Locust process. Outcomes are tallied per process and sent to the
master with Locust's worker reports, so a distributed run adds them up in one place.

Payment bodies are built and signed as text (`loadtest.orders.payment_body`), and answers
read by a byte search (`receipt_status`, `problem_code`).

Requests go out through `OperatorHttp`: geventhttpclient, the HTTP client Locust's
`FastHttpUser` wraps, called directly, each answer reported to Locust's statistics with its
`request` event (Locust's documented way for a custom client). FastHttpSession's layers around
that client (URL building, a user agent with redirects and retries, request and response
wrappers, the `catch_response` context manager) cost 0.09 ms of CPU per request here, more
than signing the order: see docs/decisions.md.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from geventhttpclient import HTTPClient
from locust import between, constant

from cbdc.addresses import routing_code
from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience, sign_request
from loadtest.config import LoadtestSettings
from loadtest.keys import KEYS_KEPT, private_key, wallet_key
from loadtest.manifest import MERCHANT_SUFFIX, Manifest, OperatorWallets
from loadtest.orders import payment_body, problem_code, receipt_status

__all__ = ["payment_body", "problem_code", "receipt_status"]  # the users' one import

# Refusals a payment may meet by design of the mix (class limits, caps, a spent wallet): the
# service was right to refuse, so they are outcomes, not errors.
EXPECTED_REFUSALS = frozenset(
    {
        "single_payment_limit_exceeded",
        "daily_limit_exceeded",
        "annual_limit_exceeded",
        "payee_balance_cap_exceeded",
        "insufficient_funds",
    }
)

outcomes: Counter[str] = Counter()


@lru_cache(maxsize=1)
def settings() -> LoadtestSettings:
    return LoadtestSettings()


def wait_time() -> Any:
    """Locust's wait between a user's tasks: `LOADTEST_WAIT_MIN..MAX` seconds, or none."""
    s = settings()
    return between(s.wait_min, s.wait_max) if s.wait_max > 0 else constant(0)


@lru_cache(maxsize=1)
def manifest() -> Manifest:
    return Manifest.load(settings().manifest)


def derive_keys_ahead(limit: int = KEYS_KEPT) -> int:
    """Derive the paying wallets' keys now, before the test: up to `limit` of them, spread over
    the operators (the rest are derived when first used). Returns how many."""
    operators = manifest().operators
    seed, each = manifest().key_seed, limit // max(1, len(operators))
    count = 0
    for operator in operators:
        for index in range(min(each, len(operator.wallets))):
            private_key(seed, operator.code, index)
            count += 1
    return count


def payer_key(operator: OperatorWallets, index: int) -> Ed25519PrivateKey:
    return private_key(manifest().key_seed, operator.code, index)


def key_of(operator: OperatorWallets, index: int, *, merchant: bool = False) -> SigningKey:
    owner = operator.code + (MERCHANT_SUFFIX if merchant else "")
    return wallet_key(manifest().key_seed, owner, index)


def signed_get_headers(key: SigningKey, wallet_id: str, target: str) -> dict[str, str]:
    audience = operator_audience(routing_code(wallet_id))  # the wallet's own operator
    return sign_request(key, f"wallet:{wallet_id}", "GET", target, audience=audience)


def pick_operator(rng: random.Random, *, other_than: str | None = None) -> OperatorWallets:
    choices = [o for o in manifest().operators if o.code != other_than] or manifest().operators
    return rng.choice(choices)


class UnexpectedAnswer(Exception):
    """An answer the mix does not expect (reported to Locust as the request's failure)."""


# Locust's FastHttpUser defaults: generous, so that a slow answer is measured, not cut off.
CONNECTION_TIMEOUT = NETWORK_TIMEOUT = 60.0


class OperatorHttp:
    """One user's keep-alive connection to each operator, and the report of every request to
    Locust's statistics (by request name: response time, length, failure)."""

    def __init__(self, environment: Any, operators: list[OperatorWallets]) -> None:
        self._fire = environment.events.request.fire
        self._clients = {
            o.code: HTTPClient.from_url(
                o.url,
                concurrency=1,
                connection_timeout=CONNECTION_TIMEOUT,
                network_timeout=NETWORK_TIMEOUT,
            )
            for o in operators
        }

    def request(
        self,
        operator: str,
        method: str,
        target: str,
        *,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> tuple[int, bytes, Exception | None, float]:
        """Send one request and read the whole answer: (status, body, transport error, response
        time in ms). Status 0 and the error when no answer came."""
        started = time.perf_counter()
        try:
            response = self._clients[operator].request(method, target, body=body, headers=headers)
            status = response.status_code
            content = response.read()
        except Exception as exc:  # refused, reset, timed out: no answer
            return 0, b"", exc, (time.perf_counter() - started) * 1000
        return status, content, None, (time.perf_counter() - started) * 1000

    def report(
        self, method: str, name: str, elapsed_ms: float, length: int, error: Exception | None
    ) -> None:
        self._fire(
            request_type=method,
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=error,
            context={},
        )

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
