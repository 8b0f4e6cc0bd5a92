"""What every load-test user shares: the seeded wallets (from the manifest), their derived keys,
signed orders and signed read requests, and the tally of payment outcomes.

The manifest is read once per Locust process. Outcomes are tallied per process and sent to the
master with Locust's worker reports, so a distributed run adds them up in one place.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import lru_cache
from typing import Any

from locust import between, constant

from cbdc.addresses import routing_code
from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience, sign_request
from loadtest.config import LoadtestSettings
from loadtest.keys import wallet_key
from loadtest.seed import MERCHANT_SUFFIX, Manifest, OperatorWallets
from wallets.orders import payment_order, sign_order

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


def key_of(operator: OperatorWallets, index: int, *, merchant: bool = False) -> SigningKey:
    owner = operator.code + (MERCHANT_SUFFIX if merchant else "")
    return wallet_key(manifest().key_seed, owner, index)


def signed_payment(key: SigningKey, *, payer: str, payee: str, amount: int, currency: str) -> str:
    """A request body for POST /v1/payments: the wallets' own order format and signature."""
    order = payment_order(payer=payer, payee=payee, amount=amount, currency=currency)
    return json.dumps(sign_order(key, order))


def signed_get_headers(key: SigningKey, wallet_id: str, target: str) -> dict[str, str]:
    audience = operator_audience(routing_code(wallet_id))  # the wallet's own operator
    return sign_request(key, f"wallet:{wallet_id}", "GET", target, audience=audience)


def pick_operator(rng: random.Random, *, other_than: str | None = None) -> OperatorWallets:
    choices = [o for o in manifest().operators if o.code != other_than] or manifest().operators
    return rng.choice(choices)


def problem_code(body: bytes) -> str:
    try:
        value: Any = json.loads(body)
        return str(value.get("code", "unknown"))
    except (ValueError, AttributeError):
        return "unreadable"
