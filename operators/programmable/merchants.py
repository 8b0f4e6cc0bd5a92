"""Merchant categories, the operator's side (docs/programmable.md).

Staff register the category of a wallet of this operator: stored here and published to the
central bank's registry in the same request (synchronously: the local row is written first in
the request's transaction, then the central bank is called; if it cannot be reached the
request fails with 503 and the transaction rolls back, so nothing is half-done; a retry is
idempotent). The operator of a voucher holder reads a payee's category from the registry when
a voucher is spent (payees at any operator), through a short per-process cache
(CACHE_SECONDS): a category change is seen by other operators' payments within that time; a
payment racing the change is judged by the category it read (the change is not retroactive).
Payees of this operator are read from the local table, which is what the registry holds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso
from cbdc.http import RemoteError
from cbdc.merchants import check_category
from operators.context import OperatorContext
from operators.errors import InvalidWalletId
from operators.programmable import voucher_repository as vrepo
from operators.wallets.service import require_wallet

CACHE_SECONDS = 5.0
_cache: dict[tuple[str, str], tuple[float, str | None]] = {}
_lock = threading.Lock()


def set_category(
    session: Session, ctx: OperatorContext, *, wallet_id: str, category: str | None
) -> dict[str, Any]:
    """Register (None: remove) the wallet's merchant category here and at the central bank."""
    wallet = require_wallet(session, ctx, wallet_id)
    if category is not None:
        check_category(category)
    now = ctx.now()
    vrepo.set_category(session, wallet.id, category, now)
    ctx.central_bank.client.request(
        "PUT", f"/v1/registration/merchants/{wallet.id}", {"category": category}
    )
    return {
        "wallet_id": wallet.id,
        "category": category,
        "operator": ctx.code,
        "updated_at": iso(now),
    }


def category_of(session: Session, ctx: OperatorContext, wallet_id: str) -> str | None:
    """The payee's registered category (None: not a registered merchant)."""
    if not is_valid_wallet_id(wallet_id):
        raise InvalidWalletId(f"payee {wallet_id!r} is not a valid wallet id")
    if routing_code(wallet_id) == ctx.code:
        return vrepo.category_of(session, wallet_id)
    key = (ctx.code, wallet_id)
    with _lock:
        cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        entry = ctx.central_bank.client.request("GET", f"/v1/registration/merchants/{wallet_id}")
        category: str | None = entry["category"]
    except RemoteError as exc:
        if exc.code != "merchant_unknown":
            raise
        category = None
    with _lock:
        _cache[key] = (time.monotonic(), category)
    return category


def clear_cache() -> None:
    with _lock:
        _cache.clear()
