"""GET /metrics on a real network whose services run two uvicorn workers each: the token file
that `Network.prepare` writes, and counts summed over the workers (Prometheus multiprocess)."""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cbdc.settings import NetworkConfig, Settings, network_file
from orchestration.network import Network, metrics_dir
from tests.e2e.conftest import drop_databases, free_port_base

WORKERS = 2


@pytest.fixture(scope="module")
def two_worker_network(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    settings = Settings(
        database_url=pg_url,
        data_dir=tmp_path_factory.mktemp("metrics-network"),
        port=free_port_base(2),
        operators=1,
        workers=WORKERS,
    )
    prefix = f"e2e_{uuid.uuid4().hex[:10]}"
    network = Network(settings, db_prefix=prefix)
    try:
        network.prepare()
        network.start()
        yield network
    finally:
        network.stop(stop_database=False)
        drop_databases(pg_url, prefix)


def _token(network: Network) -> str:
    assert network.config is not None
    token = network.config.metrics_token()
    assert token
    return token


def _request_counts(url: str, token: str, route: str) -> float:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return sum(
        s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "cbdc_http_request_duration_seconds_count" and s.labels["route"] == route
    )


def test_the_token_file_is_private_and_named_in_the_network_file(
    two_worker_network: Network,
) -> None:
    path = two_worker_network.metrics_token_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = NetworkConfig.load(network_file(two_worker_network.data_dir))
    assert config.metrics_token_file == str(path)
    assert config.metrics_token() == path.read_text() == _token(two_worker_network)

    # prepared again (`cbdc up` on the same data directory): the same token
    before = path.read_text()
    two_worker_network._metrics_token()
    assert path.read_text() == before


def test_metrics_refuse_a_missing_or_wrong_token(two_worker_network: Network) -> None:
    assert two_worker_network.config is not None
    urls = [two_worker_network.config.central_bank.url] + [
        node.url for node in two_worker_network.config.operators
    ]
    for url in urls:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
            assert response.status_code == 401, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "metrics_unauthorized"
        good = {"Authorization": f"Bearer {_token(two_worker_network)}"}
        response = httpx.get(f"{url}/metrics", headers=good, timeout=10)
        assert response.status_code == 200
        assert "cbdc_db_pool_size" in response.text
        assert "cbdc_settlement_queue_depth" in response.text
        assert "process_resident_memory_bytes" in response.text


def test_counts_are_summed_over_the_workers(two_worker_network: Network) -> None:
    assert two_worker_network.config is not None
    node = two_worker_network.config.operators[0]
    token = _token(two_worker_network)
    files = metrics_dir(two_worker_network.data_dir, f"operator_{node.code}")
    already = _request_counts(node.url, token, "/health")  # start-up health checks

    def health(_: int) -> None:
        # a connection per request, so the kernel hands them to either worker
        assert httpx.get(f"{node.url}/health", timeout=10).status_code == 200

    sent = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(20):  # until both workers have answered some (nearly always at once)
            list(pool.map(health, range(100)))
            sent += 100
            if len(_worker_files(files)) >= WORKERS:
                break
    assert len(_worker_files(files)) >= WORKERS, list(files.iterdir())

    # A worker records a request just after answering it: wait for the last few.
    deadline = time.monotonic() + 10
    while _request_counts(node.url, token, "/health") < already + sent:
        assert time.monotonic() < deadline, "requests missing from /metrics"
        time.sleep(0.05)
    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(10):
        assert _request_counts(node.url, token, "/health") == already + sent


def _worker_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("histogram_*.db"))
