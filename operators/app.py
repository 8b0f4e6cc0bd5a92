"""The operator FastAPI application.

`create_app(config)` for tests and embedding; `app_from_env()` is the uvicorn factory used by
`cbdc up`: it reads the network file (CBDC_NETWORK_FILE) and its own routing code
(CBDC_OPERATOR_CODE).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cbdc.crypto import SigningKey, b64d
from cbdc.settings import NetworkConfig
from cbdc.web import metrics
from cbdc.web.app import add_front_door, base_app
from operators import api
from operators.compliance import api as compliance_api
from operators.context import WaterMarks
from operators.exchange import api as exchange_api
from operators.offline import api as offline_api
from operators.payments import api as payments_api
from operators.payments.fast_path import PaymentsFastPath
from operators.programmable import escrow_api, schedules_api, voucher_api
from operators.settlement import api as settlement_api
from operators.state import OperatorConfig, OperatorState
from operators.vault import api as vault_api
from operators.wallets import api as wallets_api
from operators.web import api as web_api

DESCRIPTION = """Tier 2 of the two-tier CBDC: an authorised operator. It holds a **vault** of
central-bank-signed tokens, runs customer **wallets** in classes I-IV of controllable anonymity
(limits from the policy file), **exchanges** deposits and cash for digital currency, and posts
**payments** within the operator and, through the central bank's registration centre, across
operators. Customer money moves only on orders signed by the wallet's Ed25519 key; reads are
signed envelopes (CBDC-Key-Id `wallet:<id>`); staff use the operator's key. `/metrics`
(Prometheus) wants the network's bearer token."""


def create_app(config: OperatorConfig) -> FastAPI:
    state = OperatorState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        state.stop()

    app = base_app(f"CBDC operator {config.code}", DESCRIPTION)
    app.router.lifespan_context = lifespan
    app.state.operator = state
    # One router per area, and the service-wide routes (health, info, audit, jobs).
    app.include_router(api.router)
    app.include_router(wallets_api.router)
    app.include_router(exchange_api.router)
    app.include_router(payments_api.router)
    app.include_router(settlement_api.router)
    app.include_router(vault_api.router)
    app.include_router(compliance_api.router)
    app.include_router(offline_api.router)
    app.include_router(escrow_api.router)
    app.include_router(schedules_api.router)
    app.include_router(voucher_api.router)
    app.include_router(web_api.router)  # the wallet page at /, its files, QR codes
    metrics.install(app, state.metrics, token=config.metrics_token)  # last: times the rest
    # POST /v1/payments and /v1/payments/batch with a well-formed body are answered in front of
    # the framework (the routes above still document them, and answer every bad body).
    add_front_door(app, lambda stack: PaymentsFastPath(stack, owner=app, state=state))
    return app


def config_from_network(network: NetworkConfig, code: str) -> OperatorConfig:
    node = network.operator(code)
    return OperatorConfig(
        database_url=node.database_url,
        code=node.code,
        name=node.name,
        key=SigningKey.load(Path(node.key_file)),
        central_bank_url=network.central_bank.url,
        central_bank_public_key=network.central_bank.public_key,
        peers={o.code: o.url for o in network.operators if o.code != code},
        policy_file=network.policy_file,
        currency=network.currency,
        currency_decimals=network.currency_decimals,
        water_marks=WaterMarks(node.vault_low_water, node.vault_target, node.vault_high_water),
        settlement_mode=network.settlement_mode,
        net_interval_seconds=network.net_interval_seconds,
        net_max_items=network.net_max_items,
        data_key=b64d(Path(node.data_key_file).read_text().strip()),
        regulator_signing_key=network.regulator.signing_public_key,
        regulator_sealing_key=network.regulator.sealing_public_key,
        metrics_token=network.metrics_token(),
        demo_deposits=network.demo_deposits,
    )


def app_from_env() -> FastAPI:
    # A service process: the event loop and the payment batchers share the GIL, and the batcher
    # gives it up at every database round trip. Hand it back sooner than the default 5 ms, or
    # each round trip of a batch can wait behind request parsing for a whole switch interval.
    sys.setswitchinterval(float(os.environ.get("CBDC_SWITCH_INTERVAL", "0.0005")))
    network = NetworkConfig.load(Path(os.environ["CBDC_NETWORK_FILE"]))
    return create_app(config_from_network(network, os.environ["CBDC_OPERATOR_CODE"]))
