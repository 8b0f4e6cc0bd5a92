"""GET /metrics on in-process apps: the bearer token, the request histogram by route template,
payments by outcome, the scrape-time gauges, and many apps in one process."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from cbdc.http import RemoteError
from cbdc.web.metrics import ServiceMetrics
from operators import repository as repo
from tests.conftest import InProcessNetwork, in_process_network
from tests.helpers import assert_problem, signed_payment

TOKEN = "test-metrics-token-" + uuid.uuid4().hex
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metered(pg_url: str) -> Iterator[InProcessNetwork]:
    """The in-process network of tests/conftest.py, its services given a metrics token."""
    yield from in_process_network(pg_url, metrics_token=TOKEN)


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


# ------------------------------------------------------------------ auth


def test_metrics_need_the_bearer_token(metered: InProcessNetwork) -> None:
    for client in (metered.cb, metered.operator_http["BKA1"]):
        missing = client.get("/metrics")
        assert_problem(missing, 401, "metrics_unauthorized")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for wrong in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, "Bearer nope"):
            assert_problem(
                client.get("/metrics", headers={"Authorization": wrong}),
                401,
                "metrics_unauthorized",
            )
        # a signed envelope is not the metrics token either
        assert_problem(
            client.get("/metrics", headers={"CBDC-Key-Id": "admin"}), 401, "metrics_unauthorized"
        )
        assert "cbdc_http_request_duration_seconds_count" in names(scrape(client))
        # the scheme is case-insensitive (RFC 9110)
        ok = client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert ok.status_code == 200


def test_metrics_are_off_without_a_token(network: InProcessNetwork) -> None:
    for client in (network.cb, network.operator_http["BKA1"]):
        assert_problem(client.get("/metrics"), 404, "metrics_disabled")
        assert_problem(
            client.get("/metrics", headers={"Authorization": "Bearer x"}), 404, "metrics_disabled"
        )
        # the rest of the service is unchanged
        assert client.get("/health").json() == {"status": "ok"}


# ------------------------------------------------------------------ requests


def test_request_histogram_is_by_route_template(metered: InProcessNetwork) -> None:
    op = metered.operator_http["BKA1"]
    alice = metered.open_wallet("BKA1")
    bob = metered.open_wallet("BKA1")
    before = scrape(op)
    wallet_route = {"method": "GET", "route": "/v1/wallets/{wallet_id}", "status": "200"}
    alice.balance()
    bob.balance()
    alice.balance()
    assert op.get("/no/such/path").status_code == 404
    assert op.request("BREW", "/health").status_code == 405
    after = scrape(op)

    count = "cbdc_http_request_duration_seconds_count"
    assert value(after, count, **wallet_route) - value(before, count, **wallet_route) == 3
    bucket = "cbdc_http_request_duration_seconds_bucket"
    assert value(after, bucket, **wallet_route, le="+Inf") == value(after, count, **wallet_route)
    assert value(after, "cbdc_http_request_duration_seconds_sum", **wallet_route) > 0
    assert value(after, count, method="GET", route="unmatched", status="404") >= 1
    # an unknown method is not a label value a client can mint
    assert value(after, count, method="OTHER", route="/health", status="405") == 1
    routes = {dict(labels).get("route") for name, labels in after if name == count}
    assert not any(alice.wallet_id in str(r) or bob.wallet_id in str(r) for r in routes), routes
    assert "/v1/wallets" in routes  # the wallets were opened (POST) through the same histogram
    # the scrape itself is a request like any other
    assert value(after, count, method="GET", route="/metrics", status="200") >= 1

    # the central bank's signed responses are timed too
    cb_after = scrape(metered.cb)
    assert value(cb_after, count, method="POST", route="/v1/admin/operators", status="201") == 2


# ------------------------------------------------------------------ payments


def test_payments_are_counted_by_path_and_outcome(metered: InProcessNetwork) -> None:
    op = metered.operator_http["BKA1"]
    alice = metered.open_wallet("BKA1", load=100_00)
    bob = metered.open_wallet("BKA1")
    dave = metered.open_wallet("BKB1")

    first = signed_payment(alice, bob.wallet_id, 10_00)
    assert not alice.submit(first).replayed
    assert alice.submit(first).replayed  # a resend of the same signed order
    with pytest.raises(RemoteError) as refused:
        alice.pay(bob.wallet_id, 95_00)  # 80.00 left
    assert refused.value.code == "insufficient_funds"
    alice.pay(dave.wallet_id, 5_00)  # across operators: settled within the request (RTGS)

    batch = [
        signed_payment(alice, bob.wallet_id, 1_00),
        signed_payment(alice, bob.wallet_id, 1_000_00),  # more than she has
        signed_payment(alice, dave.wallet_id, 2_00),  # across operators: queued for the worker
    ]
    batch.append(batch[0])  # the same signed order twice: one payment and a replay
    answer = metered.operator("BKA1").pay_batch(batch)
    assert [r["ok"] for r in answer["results"]] == [True, False, True, True]

    samples = scrape(op)
    total = "cbdc_payments_total"
    assert value(samples, total, path="single", outcome="completed", code="") == 2
    assert value(samples, total, path="single", outcome="replayed", code="") == 1
    assert value(samples, total, path="single", outcome="refused", code="insufficient_funds") == 1
    assert value(samples, total, path="batch", outcome="completed", code="") == 1
    assert value(samples, total, path="batch", outcome="pending_settlement", code="") == 1
    assert value(samples, total, path="batch", outcome="replayed", code="") == 1
    assert value(samples, total, path="batch", outcome="refused", code="insufficient_funds") == 1
    assert sum(v for (name, _), v in samples.items() if name == total) == 8
    # the payee's operator made no payments; the central bank has no payment counter at all
    assert "cbdc_payments_total" not in names(scrape(metered.operator_http["BKB1"]))
    assert "cbdc_payments_total" not in names(scrape(metered.cb))


def test_orders_refused_before_posting_are_counted_with_their_code(
    metered: InProcessNetwork,
) -> None:
    alice = metered.open_wallet("BKA1", load=10_00)
    bob = metered.open_wallet("BKA1")
    orders = [signed_payment(alice, bob.wallet_id, 1_00) for _ in range(3)]
    for order in orders:
        order["order"]["currency"] = "USD"  # refused at the first check, each alone
    answer = metered.operator("BKA1").pay_batch(orders)
    assert answer["refused"] == 3
    code = answer["results"][0]["problem"]["code"]
    samples = scrape(metered.operator_http["BKA1"])
    assert value(samples, "cbdc_payments_total", path="batch", outcome="refused", code=code) == 3


# ------------------------------------------------------------------ scrape-time gauges


def test_queue_depth_and_pool_gauges(metered: InProcessNetwork) -> None:
    alice = metered.open_wallet("BKA1", load=100_00)
    dave = metered.open_wallet("BKB1")
    metered.operator("BKA1").pay_batch(
        [signed_payment(alice, dave.wallet_id, 1_00), signed_payment(alice, dave.wallet_id, 2_00)]
    )  # the batch's cross-operator orders wait in the outbox, as one RTGS batch job per payee
    # operator, for the worker (not running here)

    samples = scrape(metered.operator_http["BKA1"])
    state = metered.state("BKA1")
    pending = state.uow.run(None, repo.outbox_counts).get("pending", 0)
    assert pending >= 1
    depth = "cbdc_settlement_queue_depth"
    assert value(samples, depth, queue="outbox_pending") == pending
    assert (depth, frozenset({("queue", "net_items_open")})) in samples
    assert (depth, frozenset({("queue", "net_items_submitted")})) in samples
    assert value(samples, "cbdc_service_info", service="operator", name="BKA1") == 1

    metered.run_jobs()
    assert value(scrape(metered.operator_http["BKA1"]), depth, queue="outbox_pending") == 0

    for client in (metered.cb, metered.operator_http["BKA1"]):
        samples = scrape(client)
        assert value(samples, "cbdc_db_pool_size") == 8
        assert value(samples, "cbdc_db_pool_max_overflow") >= 8
        assert value(samples, "cbdc_db_pool_checked_out") >= 0
        assert value(samples, "cbdc_db_pool_checked_in") >= 1
        assert ("cbdc_db_pool_overflow", frozenset()) in samples
        assert "process_cpu_seconds_total" in names(samples)
    cb_samples = scrape(metered.cb)
    for queue in (
        "clearing_submissions_waiting",
        "clearing_items_waiting",
        "clearing_obligations_pending",
    ):
        assert value(cb_samples, depth, queue=queue) == 0
    assert value(cb_samples, "cbdc_service_info", service="central_bank", name="central_bank") == 1


def test_a_failing_queue_count_leaves_the_rest_of_the_scrape() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("database down")

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    metrics = ServiceMetrics(service="operator", name="X", engine=engine, queue_depths=broken)
    text = metrics.render().decode()
    assert "cbdc_db_pool_size" in text and "cbdc_settlement_queue_depth" not in text


# ------------------------------------------------------------------ many apps, one process


def test_many_apps_in_one_process_neither_clash_nor_leak() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    refs = []
    for i in range(300):
        metrics = ServiceMetrics(
            service="operator",
            name=f"X{i}",
            engine=engine,
            queue_depths=lambda: {"outbox_pending": 0},
            payments=True,
        )
        metrics.observe_request("GET", "/health", 200, 0.001)
        metrics.count_payments("single", "completed")
        text = metrics.render().decode()
        # each app counts only its own requests
        assert (
            'cbdc_http_request_duration_seconds_count{method="GET",route="/health",'
            'status="200"} 1.0' in text
        )
        refs.append(weakref.ref(metrics))
    del metrics
    gc.collect()
    assert sum(1 for r in refs if r() is not None) == 0
