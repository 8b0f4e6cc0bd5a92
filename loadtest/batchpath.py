"""The batch path through the API: signed orders posted to `POST /v1/payments/batch`.

A fixed amount of work: `orders` payment orders per operator, one per seeded payer (small
amounts, payees at the same operator), all signed before the clock starts so the figure is the
services' and the database's, not the signer's. They go out in requests of `batch` orders from
`clients` threads per operator; payments/s = orders judged / seconds from the first request to
the last answer.
"""

from __future__ import annotations

import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from loadtest.cpu import CpuSampler
from loadtest.keys import private_key
from loadtest.manifest import Manifest
from loadtest.orders import payment_body


def _signed_orders(manifest: Manifest, count: int, rng: random.Random) -> dict[str, list[bytes]]:
    unit = 10**manifest.decimals
    per_operator: dict[str, list[bytes]] = {}
    for op in manifest.operators:
        n = min(count, len(op.wallets))
        bodies = []
        for index in rng.sample(range(len(op.wallets)), n):
            payer = op.wallets[index]
            payee = rng.choice(op.wallets)
            while payee == payer:
                payee = rng.choice(op.wallets)
            bodies.append(
                payment_body(
                    private_key(manifest.key_seed, op.code, index),
                    payer=payer,
                    payee=payee,
                    amount=rng.randint(1, 50) * unit,
                    currency=manifest.currency,
                )
            )
        per_operator[op.url] = bodies
    return per_operator


def measure(
    manifest: Manifest,
    *,
    orders: int = 20_000,
    batch: int = 500,
    clients: int = 2,
    cpu: CpuSampler | None = None,
) -> dict[str, Any]:
    """Post the signed orders; `cpu`, if given, samples from the first request to the last
    answer (the signing before it is not the batch path's work)."""
    rng = random.Random(7)
    signed = _signed_orders(manifest, orders, rng)
    requests: list[tuple[str, bytes]] = []
    for url, bodies in signed.items():
        for first in range(0, len(bodies), batch):
            requests.append(
                (url, b'{"orders":[' + b",".join(bodies[first : first + batch]) + b"]}")
            )
    rng.shuffle(requests)
    latencies: list[float] = []
    accepted = refused = 0
    refusals: dict[str, int] = {}

    workers = clients * len(signed)
    http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=workers))

    def post(item: tuple[str, bytes]) -> dict[str, Any]:
        url, body = item
        started = time.perf_counter()
        response = http.post(
            f"{url}/v1/payments/batch",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    if cpu is not None:
        cpu.start()
    started = time.perf_counter()
    with http, ThreadPoolExecutor(max_workers=workers) as pool:
        for answer in pool.map(post, requests):
            accepted += answer["accepted"]
            refused += answer["refused"]
            for result in answer["results"]:
                if not result["ok"]:
                    code = result["problem"]["code"]
                    refusals[code] = refusals.get(code, 0) + 1
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.stop()
    judged = accepted + refused
    latencies.sort()
    return {
        "orders": judged,
        "batch": batch,
        "requests": len(requests),
        "seconds": round(elapsed, 2),
        "payments_per_s": round(judged / elapsed, 1) if elapsed else 0.0,
        "accepted": accepted,
        "refused": refused,
        "refusals": refusals,
        "request_ms": {
            "p50": round(statistics.median(latencies), 1) if latencies else 0.0,
            "p99": round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else 0.0,
        },
    }
