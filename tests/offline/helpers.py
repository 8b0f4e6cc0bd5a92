"""Helpers for the operator side of offline payments: devices (simulated secure elements,
wallets/offline) registered, funded and synced through the service functions, as the scenario
engine calls them, or through the HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from cbdc.clock import utcnow
from cbdc.db import transaction
from operators.offline import devices, funding
from operators.offline import sync as offline_sync
from wallets.offline.secure_element import SecureElement


def now(network: Any, code: str = "BKA1") -> Any:
    return network.state(code).ctx.now() if network is not None else utcnow()


def register(network: Any, code: str, wallet: Any, name: str = "phone") -> SecureElement:
    """A new secure element, registered to `wallet` at operator `code` and installed."""
    se = SecureElement.generate("CNY")
    state = network.state(code)
    answer = transaction(
        state.factory,
        lambda s: devices.register_device(
            s, state.ctx, wallet_id=wallet.wallet_id, public_key=se.public_key, name=name
        ),
    )
    se.install(
        answer["certificate"], answer["operator_certificate"], answer["central_bank_public_key"]
    )
    return se


def fund(network: Any, code: str, se: SecureElement, amount: int) -> dict[str, Any]:
    state = network.state(code)
    answer: dict[str, Any] = transaction(
        state.factory,
        lambda s: funding.fund(
            s, state.ctx, device_id=se.device_id, amount=amount, nonce=uuid.uuid4().hex
        ),
    )
    se.apply_funding(answer["funding"])
    return answer


def sync(network: Any, code: str, se: SecureElement, *, apply: bool = True) -> dict[str, Any]:
    """Sync the device with its operator (as the API does: under `with_float`)."""
    state = network.state(code)
    batch = se.sync_batch(state.ctx.now())["batch"]
    answer: dict[str, Any] = state.with_float(
        lambda s: offline_sync.sync_device(
            s,
            state.ctx,
            device_id=se.device_id,
            sent=batch["sent"],
            received=batch["received"],
            counter=batch["counter"],
        )
    )
    if apply:
        se.apply_sync(answer)
    return answer


def balance(network: Any, code: str, wallet_id: str) -> int:
    with network.state(code).engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT a.balance FROM accounts a JOIN wallets w ON w.account_id = a.id "
                    "WHERE w.id = :w"
                ),
                {"w": wallet_id},
            ).scalar_one()
        )


def purse(network: Any, code: str, device_id: str) -> int:
    with network.state(code).engine.begin() as conn:
        return int(
            conn.execute(
                text("SELECT balance FROM accounts WHERE code = :c"), {"c": f"offline:{device_id}"}
            ).scalar_one()
        )


def device_row(network: Any, code: str, device_id: str) -> Any:
    with network.state(code).engine.begin() as conn:
        return conn.execute(
            text("SELECT * FROM offline_devices WHERE id = :d"), {"d": device_id}
        ).one()


def scalar(network: Any, code: str, sql: str, **params: Any) -> Any:
    with network.state(code).engine.begin() as conn:
        return conn.execute(text(sql), params).scalar()
