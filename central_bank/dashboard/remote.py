"""What the dashboard reads from the operators themselves: each operator's `/metrics`
(payments by outcome, settlement queues; bearer token of the network) and its disclosure log
(`GET /v1/regulator/disclosure-log`, signed with the central bank's key under key id
`central-bank`, which operators accept for that route only).

Where the operators are comes from the network file (`sources_from_network`, used by
`central_bank.app.app_from_env`). An app built without one (tests, embedding) has no sources:
the dashboard then shows the central bank's own data and every operator as not reachable.
Each answer is cached about a second per process, so many open dashboards (or several
workers) do not multiply the load on the operators; every call has a short timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.settings import NetworkConfig

# `cbdc_payments_total` outcomes that count as payments made (accepted orders; `failed`: the
# settlement was refused after the order was accepted). `replayed` (a retry answered again)
# and `refused` (the order was refused) are not payments.
PAYMENT_OUTCOMES = ("completed", "pending_settlement", "failed")
TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0


@dataclass
class RemoteSources:
    """How to reach the operators: base URLs by operator code and the metrics bearer token.
    `http_for` lets tests hand in in-process transports (one httpx.Client per operator)."""

    urls: dict[str, str]
    metrics_token: str | None
    central_bank_url: str | None = None
    http_for: Callable[[str], httpx.Client] | None = None
    timeout: float = TIMEOUT_SECONDS
    cache_seconds: float = CACHE_SECONDS
    _clients: dict[str, httpx.Client] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str, str], tuple[float, Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client(self, code: str) -> httpx.Client | None:
        if code not in self.urls:
            return None
        with self._lock:
            http = self._clients.get(code)
            if http is None:
                http = (
                    self.http_for(code)
                    if self.http_for is not None
                    else httpx.Client(base_url=self.urls[code], timeout=self.timeout)
                )
                self._clients[code] = http
            return http

    def cached(self, kind: str, code: str, fetch: Callable[[], Any]) -> Any:
        key = (kind, code)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        value = fetch()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value


def sources_from_network(network: NetworkConfig) -> RemoteSources:
    return RemoteSources(
        urls={node.code: node.url for node in network.operators},
        metrics_token=network.metrics_token(),
        central_bank_url=network.central_bank.url,
    )


def parse_metrics(text: str) -> dict[str, Any]:
    """Payments by outcome and settlement queue depths from an operator's `/metrics` text."""
    outcomes: dict[str, int] = {}
    queues: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cbdc_payments_total":
                outcome = sample.labels.get("outcome", "")
                outcomes[outcome] = outcomes.get(outcome, 0) + int(sample.value)
            elif sample.name == "cbdc_settlement_queue_depth":
                queues[sample.labels.get("queue", "")] = int(sample.value)
    return {
        "payments_total": sum(outcomes.get(o, 0) for o in PAYMENT_OUTCOMES),
        "refused_total": outcomes.get("refused", 0),
        "payments_by_outcome": outcomes,
        "queues": queues,
    }


def operator_metrics(sources: RemoteSources | None, code: str) -> dict[str, Any]:
    """{"reachable", "metrics": parse_metrics(...) | None, "error"}."""
    http = None if sources is None else sources.client(code)
    if sources is None or http is None:
        return {"reachable": False, "metrics": None, "error": "no network configuration"}
    if sources.metrics_token is None:
        return {"reachable": False, "metrics": None, "error": "metrics are off in this network"}
    token = sources.metrics_token

    def fetch() -> dict[str, Any]:
        try:
            answer = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            if answer.status_code != 200:
                return {"reachable": False, "metrics": None, "error": f"HTTP {answer.status_code}"}
        except httpx.HTTPError as exc:
            return {"reachable": False, "metrics": None, "error": type(exc).__name__}
        try:
            metrics = parse_metrics(answer.text)
        except Exception as exc:  # whatever an operator serves, the dashboard answers
            return {
                "reachable": True,
                "metrics": None,
                "error": f"bad metrics ({type(exc).__name__})",
            }
        return {"reachable": True, "metrics": metrics, "error": None}

    return sources.cached("metrics", code, fetch)  # type: ignore[no-any-return]


def disclosure_log(
    sources: RemoteSources | None, code: str, *, key: SigningKey
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The operator's disclosure-log rows, fetched with the central bank's key, or (None, why)."""
    http = None if sources is None else sources.client(code)
    if sources is None or http is None:
        return None, "no network configuration"

    def fetch() -> tuple[list[dict[str, Any]] | None, str | None]:
        client = SignedClient(
            http, key=key, key_id="central-bank", audience=operator_audience(code)
        )
        try:
            rows = client.request("GET", "/v1/regulator/disclosure-log")["entries"]
        except RemoteError as exc:
            return None, f"{exc.status} {exc.code}"
        except (RemoteUnavailable, httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            return None, f"unreachable ({type(exc).__name__})"
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return None, "malformed answer (not a list of log rows)"
        return rows, None

    return sources.cached("disclosure", code, fetch)  # type: ignore[no-any-return]
