"""HTTP routes of an operator service. Routes only: auth, parse, call the service, return."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from cbdc.envelope import operator_audience
from cbdc.errors import (
    BadSignature,
    DomainError,
    Forbidden,
    IdempotencyMismatch,
    ValidationFailed,
)
from cbdc.policy import WalletClass
from cbdc.web.auth import Principal, StrictJSONRoute, request_hash, require_role
from operators import repository as repo
from operators.compliance import disclosure
from operators.compliance import repository as aml_repo
from operators.errors import InvalidWalletId, OrderExpired, UnknownWallet, WrongOperator
from operators.exchange import service as exchange
from operators.payments import fast_path as payments_http
from operators.payments import orders, signed_batch
from operators.schemas import (
    CashLoad,
    ChangeClass,
    DepositCredit,
    InboundSettlementBatchIn,
    InboundSettlementIn,
    OpenWallet,
    SignedDisclosureOrder,
    SignedLoad,
    SignedPayment,
    SignedPaymentBatch,
    SignedUnload,
)
from operators.settlement import delivery as settlement
from operators.settlement import netting, rtgs_inbound
from operators.state import OperatorState, get_state
from operators.vault import service as vault
from operators.wallets import service

router = APIRouter(route_class=StrictJSONRoute)
State = Annotated[OperatorState, Depends(get_state)]


async def _auth(request: Request) -> Principal:
    return await request.app.state.operator.auth(request)  # type: ignore[no-any-return]


Caller = Annotated[Principal, Depends(_auth)]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=100)]


RequestHash = Annotated[str, Depends(request_hash)]


def _wallet_or_staff(caller: Principal, wallet_id: str) -> None:
    if caller.role == "staff":
        return
    if caller.role == "wallet" and caller.subject == wallet_id:
        return
    raise Forbidden("only the wallet's own key or operator staff may do this")


# Refusals that say nothing about the order's own fate: not recorded against its nonce.
NOT_RECORDED = (
    BadSignature,
    IdempotencyMismatch,
    OrderExpired,
    InvalidWalletId,
    WrongOperator,
    UnknownWallet,
)


@contextmanager
def _refusals_recorded(
    state: OperatorState, kind: str, order: dict[str, Any], signature: str
) -> Iterator[None]:
    """A signed order that is refused (4xx) keeps its nonce, with the refusal as its outcome."""
    try:
        yield
    except DomainError as exc:
        if exc.status < 500 and exc.code not in signed_batch.UNRECORDED_REFUSALS:
            failure = exc.code
            state.uow.run(
                None,
                lambda s: orders.record_refused_order(
                    s, state.ctx, kind=kind, order=order, signature=signature, failure=failure
                ),
            )
        raise


@router.get("/health", tags=["public"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/info", tags=["public"])
def info(state: State) -> dict[str, Any]:
    ctx = state.ctx
    return {
        "service": "operator",
        "operator": ctx.code,
        "audience": operator_audience(ctx.code),  # what signed requests here must name
        "name": ctx.name,
        "public_key": ctx.key.public_key,
        "certificate": state.certificate(),
        "central_bank_public_key": ctx.central_bank_public_key,
        "currency": ctx.currency,
        "currency_decimals": ctx.decimals,
        "settlement_mode": ctx.settlement_mode,
        "balance_cap_overflow": ctx.policy.overflow,
        "wallet_classes": {
            c.name: {
                "identification": lim.identification,
                "evidence": list(ctx.policy.required_evidence(c)),
                "balance_cap": lim.balance_cap,
                "single_payment": lim.single_payment,
                "daily": lim.daily,
                "annual": lim.annual,
            }
            for c, lim in ctx.policy.classes.items()
        },
    }


# ------------------------------------------------------------------ wallets


@router.post("/v1/wallets", status_code=201, tags=["wallets"])
def open_wallet(body: OpenWallet, caller: Caller, state: State) -> Any:
    """Open a wallet on the evidence its class needs (see `evidence` in GET /v1/info).
    Self-service, signed with the new wallet's own key (`CBDC-Key-Id: new-wallet`): class IV
    on a phone number, III and II with name, resident ID number and (II) own bank account.
    Class I is opened at the counter: signed with the operator's staff key."""
    require_role(caller, "new-wallet", "staff")
    return state.uow.run(
        caller,
        lambda s: service.open_wallet(
            s,
            state.ctx,
            public_key=body.public_key,
            wallet_class=WalletClass.parse(body.wallet_class),
            customer=body.customer.model_dump() if body.customer else None,
            customer_id=body.customer_id,
            by_staff=caller.role == "staff",
        ),
    )


@router.get("/v1/wallets/{wallet_id}", tags=["wallets"])
def get_wallet(wallet_id: str, caller: Caller, state: State) -> Any:
    _wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.wallet_view(
            s, state.ctx, service.require_wallet(s, state.ctx, wallet_id)
        ),
    )


@router.post("/v1/wallets/{wallet_id}/class", tags=["wallets"])
def change_class(wallet_id: str, body: ChangeClass, caller: Caller, state: State) -> Any:
    """Upgrade (with the evidence the new class needs) or downgrade a wallet. Signed by the
    wallet's key, or by staff (needed for class I: identity verified in person)."""
    _wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.change_class(
            s,
            state.ctx,
            wallet_id=wallet_id,
            wallet_class=WalletClass.parse(body.wallet_class),
            customer=body.customer.model_dump() if body.customer else None,
            by_staff=caller.role == "staff",
        ),
    )


@router.get("/v1/wallets/{wallet_id}/history", tags=["wallets"])
def wallet_history(
    wallet_id: str,
    caller: Caller,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    _wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.history(s, state.ctx, wallet_id=wallet_id, limit=limit, before=before),
    )


@router.post("/v1/wallets/{wallet_id}/load", tags=["exchange"])
def load(wallet_id: str, body: SignedLoad, state: State) -> Any:
    """Deposit -> wallet, authorised by the order's signature (nonce = idempotency key)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    with _refusals_recorded(state, "load", order, body.signature):
        result = state.with_float(
            lambda s: exchange.load(s, state.ctx, order=order, signature=body.signature)
        )
    state.wake_worker()
    return result


@router.post("/v1/wallets/{wallet_id}/unload", tags=["exchange"])
def unload(wallet_id: str, body: SignedUnload, state: State) -> Any:
    """Wallet -> deposit, authorised by the order's signature (nonce = idempotency key)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    with _refusals_recorded(state, "unload", order, body.signature):
        result = state.uow.run(
            None, lambda s: exchange.unload(s, state.ctx, order=order, signature=body.signature)
        )
    state.wake_worker()
    return result


# ------------------------------------------------------------------ payments


@router.post("/v1/payments", status_code=201, tags=["payments"])
async def pay(body: SignedPayment, state: State) -> Any:
    """A payment order signed by the payer's wallet key. Same-operator payments complete at
    once; cross-operator payments settle through the central bank (RTGS: within the request;
    if the central bank or the payee's operator is unreachable the answer says
    `pending_settlement` and the outbox finishes the job later; net settlement: the answer is
    `pending_settlement` and the payment settles, netted, in the next clearing cycle).
    Concurrent payments share a transaction (`operators.payments.microbatch`); each is judged alone.
    (A well-formed body is answered by `operators.payments.fast_path` in front of this route, with
    the same work: `payments_http.pay_one`.)"""
    return await payments_http.pay_one(
        state, body.order.model_dump(exclude_unset=True), body.signature
    )


@router.post("/v1/payments/batch", tags=["payments"])
def pay_batch(body: SignedPaymentBatch, state: State) -> Any:
    """Up to 1000 signed payment orders (any payers of this operator) in one transaction:
    accounts locked once in ascending order, each order checked exactly as a single payment
    and refused alone if it must be. Cross-operator orders are queued for settlement (the
    background worker settles them); poll GET /v1/payments/{id}. The answer lists one result
    per order: `{"ok": true, "receipt": ...}` or `{"ok": false, "problem": {...}}`."""
    items = [(o.order.model_dump(exclude_unset=True), o.signature) for o in body.orders]
    return payments_http.pay_batch(state, items)


@router.get("/v1/payments/{payment_id}", tags=["payments"])
def payment_status(payment_id: str, caller: Caller, state: State) -> Any:
    require_role(caller, "wallet", "staff")
    return state.uow.run(
        caller,
        lambda s: orders.payment_status(
            s,
            state.ctx,
            payment_id=payment_id,
            wallet_id=caller.subject if caller.role == "wallet" else None,
        ),
    )


# ------------------------------------------------------------------ interop


@router.post("/v1/interop/settlements", tags=["interop"])
def receive_settlement(body: InboundSettlementIn, caller: Caller, state: State) -> Any:
    """Another operator delivers a settlement the central bank has signed."""
    require_role(caller, "operator")
    result = state.uow.run(
        caller,
        lambda s: settlement.receive(
            s, state.ctx, payer_operator=caller.subject, body=body.model_dump()
        ),
    )
    state.wake_worker()
    return result


@router.post("/v1/interop/settlements/batch", tags=["interop"])
def receive_settlement_batch(body: InboundSettlementBatchIn, caller: Caller, state: State) -> Any:
    """Another operator delivers settlements the central bank settled in one batch: one
    transaction credits every item; the answer has, per item, its outcome (`credited`,
    `returning`, or `rejected` with a reason while the others go on) and whether it was seen
    before (`replayed`)."""
    require_role(caller, "operator")
    result = state.uow.run(
        caller,
        lambda s: rtgs_inbound.receive_batch(
            s,
            state.ctx,
            payer_operator=caller.subject,
            items=[item.model_dump() for item in body.items],
        ),
    )
    state.wake_worker()
    return result


# ------------------------------------------------------------------ staff


@router.post("/v1/admin/customers/{customer_id}/deposit", tags=["staff"])
def credit_deposit(
    customer_id: int,
    body: DepositCredit,
    caller: Caller,
    state: State,
    key: IdemKey,
    h: RequestHash,
) -> Any:
    """Simulated bank money arriving in a customer's deposit account (salary, transfer...)."""
    require_role(caller, "staff")
    return state.uow.run(
        caller,
        lambda s: exchange.credit_deposit(
            s,
            state.ctx,
            customer_id=customer_id,
            amount=body.amount,
            key_id=caller.key_id,
            idem_key=key,
            request_hash=h,
        ),
    )


@router.post("/v1/admin/wallets/{wallet_id}/cash-load", tags=["staff"])
def cash_load(
    wallet_id: str, body: CashLoad, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    """Banknotes handed over the counter, loaded into the wallet."""
    require_role(caller, "staff")
    return state.with_float(
        lambda s: exchange.cash_load(
            s,
            state.ctx,
            wallet_id=wallet_id,
            amount=body.amount,
            key_id=caller.key_id,
            idem_key=key,
            request_hash=h,
        ),
        principal=caller,  # the nonce is kept even when the cash load is refused
    )


@router.get("/v1/admin/audit", tags=["staff"])
def audit(caller: Caller, state: State) -> Any:
    """This operator's side of the cross-tier invariants."""
    require_role(caller, "staff")
    from operators import audit as audit_mod

    return state.uow.run(caller, lambda s: audit_mod.operator_audit(s, state.ctx))


RUN_JOBS_SECONDS = 10.0


@router.post("/v1/admin/jobs/run", tags=["staff"])
def run_jobs(caller: Caller, state: State) -> Any:
    """Run due outbox jobs and the water-mark check now; under net settlement also submit
    every open item and do what the clearing house asks (pay, apply); report what is left
    (`net`: payments and obligations of net settlement not finished here). Runs jobs for at
    most `RUN_JOBS_SECONDS`, so a large backlog (after a load test) is worked off over several
    calls instead of outlasting the caller's timeout; `outbox.pending` says what is left."""
    require_role(caller, "staff")
    state.uow.run(caller, lambda s: None)
    if state.worker is not None:
        state.worker.check_water_marks()
    if netting.is_active(state.runner):
        netting.sync(state.runner, force=True)
    ran = 0
    deadline = time.monotonic() + RUN_JOBS_SECONDS
    while time.monotonic() < deadline:
        n = state.runner.run_due()
        ran += n
        if n == 0:
            break
    counts = state.uow.run(None, repo.outbox_counts)
    net = state.uow.run(None, netting.outstanding)
    return {"ran": ran, "outbox": counts, "net": net}


@router.post("/v1/admin/vault/issue", tags=["staff"])
def request_issuance(body: CashLoad, caller: Caller, state: State, key: IdemKey) -> Any:
    """Ask the central bank for issuance of `amount` into the vault float now."""
    require_role(caller, "staff")
    reference = state.uow.run(
        caller, lambda s: vault.queue_issuance(s, body.amount, reference=f"issue:{key}")
    )
    state.runner.run_reference(reference)
    return state.uow.run(
        None, lambda s: {"reference": reference, **vault.job_outcome(s, reference)}
    )


@router.post("/v1/admin/vault/redeem", tags=["staff"])
def request_redemption(body: CashLoad, caller: Caller, state: State, key: IdemKey) -> Any:
    """Return `amount` of vault float to the central bank now (reserves are credited back)."""
    require_role(caller, "staff")
    reference = state.uow.run(
        caller, lambda s: vault.queue_redemption(s, body.amount, reference=f"redeem:{key}")
    )
    state.runner.run_reference(reference)
    return state.uow.run(
        None, lambda s: {"reference": reference, **vault.job_outcome(s, reference)}
    )


@router.get("/v1/admin/vault", tags=["staff"])
def vault_position(caller: Caller, state: State) -> Any:
    require_role(caller, "staff")
    return state.uow.run(caller, lambda s: vault.vault_position(s, state.ctx))


# ------------------------------------------------------------------ regulator


@router.post("/v1/regulator/disclosures", tags=["regulator"])
def disclose(body: SignedDisclosureOrder, state: State) -> Any:
    """Release a wallet's identity escrow (sealed to the regulator) against a disclosure order
    signed by the regulator's key. The order is appended to the hash-chained disclosure log
    before anything is released; a replayed order is refused. With `as_of` the identity in
    force at that time is released, else every version with its validity period."""
    order = body.order.model_dump(exclude_unset=True)  # the fields signed, `as_of` if given
    released = state.uow.run(
        None, lambda s: disclosure.disclose(s, state.ctx, order=order, signature=body.signature)
    )
    # Register the log's new head with the central bank now; if it cannot be reached, the
    # outbox job queued with the entry is retried by the worker.
    state.run_job_now(disclosure.anchor_reference(released["log"]["seq"]))
    state.wake_worker()
    return released


@router.get("/v1/regulator/disclosure-log", tags=["regulator"])
def disclosure_log(caller: Caller, state: State) -> Any:
    """The whole disclosure log, for the regulator (or staff) to verify the chain itself."""
    require_role(caller, "regulator", "staff")
    return state.uow.run(caller, lambda s: {"entries": disclosure.log_rows(s)})


@router.get("/v1/admin/disclosure-log/verify", tags=["staff"])
def verify_disclosure_log(caller: Caller, state: State) -> Any:
    """The log's hash chain and the regulator's signature on every logged order."""
    require_role(caller, "staff", "regulator")
    return state.uow.run(caller, lambda s: disclosure.verify_log(s, state.ctx))


@router.get("/v1/admin/aml/alerts", tags=["staff"])
def aml_alerts(
    caller: Caller,
    state: State,
    rule: str | None = None,
    wallet: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """AML alerts raised at this operator (also reported to the analysis centre)."""
    require_role(caller, "staff")
    return state.uow.run(
        caller,
        lambda s: {"alerts": aml_repo.list_alerts(s, rule=rule, wallet_id=wallet, limit=limit)},
    )
