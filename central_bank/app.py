"""The central bank FastAPI application.

`create_app(config)` for tests and embedding; `app_from_env()` is the uvicorn factory used by
`cbdc up`, reading the network file named by CBDC_NETWORK_FILE.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cbdc.crypto import SigningKey
from cbdc.db import transaction
from cbdc.outages import log_failure
from cbdc.settings import NetworkConfig
from cbdc.web import metrics
from cbdc.web.app import base_app, sign_responses
from cbdc.web.auth import prune_nonces
from central_bank import web
from central_bank.analysis.api import router as analysis_router
from central_bank.certification.api import router as certification_router
from central_bank.clearing.api import router as clearing_router
from central_bank.dashboard.api import router as dashboard_router
from central_bank.dashboard.remote import sources_from_network
from central_bank.registration.api import router as registration_router
from central_bank.registration.merchants_api import router as merchants_router
from central_bank.state import CentralBankConfig, CentralBankState

DESCRIPTION = """Tier 1 of the two-tier CBDC: the **issuance database** of signed tokens and the
three centres: **certification** (operators and their keys), **registration** (who owns each
token; double spends refused; RTGS settlement between operators with signed receipts, and
deferred net settlement as a clearing house) and
**analysis** (money supply). Every request except `/health` and `/v1/info` must be signed
(CBDC-Key-Id, CBDC-Timestamp, CBDC-Nonce, CBDC-Signature); responses to signed requests carry
CBDC-Response-Signature. `/metrics` (Prometheus) wants the network's bearer token instead."""


def create_app(config: CentralBankConfig) -> FastAPI:
    state = CentralBankState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def housekeeping() -> None:  # forget nonces older than the timestamp window
            while not stop.wait(60):
                with contextlib.suppress(Exception):
                    transaction(state.factory, prune_nonces)

        def clearing_timer() -> None:  # deferred net settlement: close a cycle every interval
            while not stop.wait(config.net_interval_seconds):
                try:
                    state.close_cycle("timer")
                except Exception as exc:  # retried at the next tick
                    log_failure(logging.getLogger(__name__), "closing a clearing cycle", exc)

        thread = threading.Thread(target=housekeeping, name="cb-housekeeping", daemon=True)
        thread.start()
        if config.clearing_timer:
            threading.Thread(target=clearing_timer, name="cb-clearing", daemon=True).start()
        yield
        stop.set()

    app = base_app("CBDC central bank", DESCRIPTION)
    app.router.lifespan_context = lifespan
    app.state.cb = state
    for router in (
        web.router,
        certification_router,
        registration_router,
        merchants_router,
        clearing_router,
        analysis_router,
        dashboard_router,
    ):
        app.include_router(router)
    sign_responses(app, config.key, consume_nonce=state.uow.consume_nonce)
    metrics.install(app, state.metrics, token=config.metrics_token)  # last: times the rest
    return app


def config_from_network(network: NetworkConfig) -> CentralBankConfig:
    node = network.central_bank
    return CentralBankConfig(
        database_url=node.database_url,
        key=SigningKey.load(Path(node.key_file)),
        admin_public_key=node.admin_public_key,
        currency=network.currency,
        currency_decimals=network.currency_decimals,
        max_token_amount=network.max_token_amount,
        regulator_public_key=network.regulator.signing_public_key,
        net_interval_seconds=network.net_interval_seconds,
        net_max_items=network.net_max_items,
        metrics_token=network.metrics_token(),
    )


def app_from_env() -> FastAPI:
    network = NetworkConfig.load(Path(os.environ["CBDC_NETWORK_FILE"]))
    app = create_app(config_from_network(network))
    app.state.dashboard_sources = sources_from_network(network)  # the dashboard's operators
    return app
