"""HTTP routes of the central bank. Routes only: auth, parse, call the service, return."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from cbdc.clock import parse_iso
from cbdc.errors import ValidationFailed
from cbdc.web.auth import Principal, StrictJSONRoute, request_hash, require_role
from central_bank.analysis import anchors
from central_bank.analysis import service as analysis
from central_bank.analysis.schemas import AML_REPORT_MAX_BYTES, AmlReport, DisclosureAnchorIn
from central_bank.certification import repository as certification_repo
from central_bank.certification import service as certification
from central_bank.certification.schemas import FundReserves, OperatorOut, RegisterOperator, SetQuota
from central_bank.clearing import cycles, obligations, payments, rtgs, stats, submissions
from central_bank.clearing.schemas import (
    AcknowledgeObligation,
    ClearingSubmission,
    PayObligation,
    SettleBatchRequest,
)
from central_bank.operations import Idempotency
from central_bank.registration import service as registration
from central_bank.registration.schemas import (
    IssueRequest,
    RedeemRequest,
    SettleRequest,
    SplitRequest,
)
from central_bank.schemas import Info
from central_bank.state import CentralBankState, get_state

router = APIRouter(route_class=StrictJSONRoute)
State = Annotated[CentralBankState, Depends(get_state)]


async def _auth(request: Request) -> Principal:
    return await request.app.state.cb.auth(request)  # type: ignore[no-any-return]


Caller = Annotated[Principal, Depends(_auth)]
# Longer than operators accept from their callers: operators prefix keys they forward.
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=200)]


RequestHash = Annotated[str, Depends(request_hash)]


@router.get("/health", tags=["public"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/info", response_model=Info, tags=["public"])
def info(state: State) -> Info:
    return Info(
        currency=state.cb.currency,
        currency_decimals=state.decimals,
        public_key=state.cb.key.public_key,
    )


# ------------------------------------------------------------------ certification (admin)


@router.post("/v1/admin/operators", status_code=201, response_model=OperatorOut, tags=["admin"])
def register_operator(body: RegisterOperator, caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: OperatorOut.model_validate(
            certification.register_operator(s, state.cb, **body.model_dump()), from_attributes=True
        ),
    )


@router.put("/v1/admin/operators/{code}/quota", response_model=OperatorOut, tags=["admin"])
def set_quota(code: str, body: SetQuota, caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: OperatorOut.model_validate(
            certification.set_quota(s, code=code, quota=body.quota), from_attributes=True
        ),
    )


@router.post("/v1/admin/operators/{code}/reserves", tags=["admin"])
def fund_reserves(
    code: str, body: FundReserves, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: certification.fund_reserves(
            s,
            state.cb,
            operator=certification.require_operator(s, code),
            amount=body.amount,
            idem=Idempotency(key, h),
        ),
    )


@router.get("/v1/admin/audit", tags=["admin"])
def audit(caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(caller, analysis.audit)


@router.get("/v1/operators", response_model=list[OperatorOut], tags=["certification"])
def list_operators(caller: Caller, state: State) -> Any:
    """The directory of operator certificates (any authenticated party)."""
    return state.uow.run(
        caller,
        lambda s: [
            OperatorOut.model_validate(o, from_attributes=True)
            for o in certification_repo.list_operators(s)
        ],
    )


@router.get("/v1/operators/me", tags=["operator"])
def my_position(caller: Caller, state: State) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: certification.operator_position(
            s, certification.require_operator(s, caller.subject)
        ),
    )


# ------------------------------------------------------------------ issuance (operator)


@router.post("/v1/issuance", status_code=201, tags=["operator"])
def issue(body: IssueRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.issue_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            amount=body.amount,
            idem=Idempotency(key, h),
        ),
    )


@router.post("/v1/redemption", tags=["operator"])
def redeem(body: RedeemRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.redeem_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            serials=body.serials,
            amount=body.amount,
            idem=Idempotency(key, h),
        ),
    )


@router.post("/v1/tokens/split", tags=["operator"])
def split(body: SplitRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    if any(amount <= 0 for amount in body.outputs):
        raise ValidationFailed("outputs: every output must be positive")
    return state.uow.run(
        caller,
        lambda s: registration.split_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            serials=body.serials,
            outputs=body.outputs,
            idem=Idempotency(key, h),
        ),
    )


@router.get("/v1/tokens/{serial}", tags=["registration"])
def token_status(serial: str, caller: Caller, state: State) -> Any:
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: registration.token_status(
            s,
            serial=serial,
            operator=certification.require_operator(s, caller.subject)
            if caller.role == "operator"
            else None,
        ),
    )


# ------------------------------------------------------------------ registration / settlement


@router.post("/v1/settlements", status_code=201, tags=["registration"])
def settle(body: SettleRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.settle(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            payee_code=body.payee_operator,
            amount=body.amount,
            serials=body.serials,
            reference=body.reference,
            idem=Idempotency(key, h),
        ),
    )


@router.post("/v1/settlements/batch", status_code=201, tags=["registration"])
def settle_batch(
    body: SettleBatchRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    """Batched gross settlement: the inputs are spent once, each item settles gross and final
    to its payee operator with its own signed receipt and minted token(s), or is refused on
    its own (`status: refused` with a problem `code`); the change comes back once. Idempotent
    on the Idempotency-Key (the same signed answer again) and per item on its `reference`
    (an item settled before is answered from its stored receipt, never settled twice)."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: rtgs.settle_batch(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            reference=body.reference,
            serials=body.serials,
            items=[item.model_dump() for item in body.items],
            idem=Idempotency(key, h),
        ),
    )


# ------------------------------------------------------------------ clearing (net settlement)


@router.post("/v1/clearing/submissions", status_code=201, tags=["clearing"])
def submit_for_clearing(
    body: ClearingSubmission, caller: Caller, state: State, h: RequestHash
) -> Any:
    """An operator submits cross-operator payments to one payee operator for the next clearing
    cycle. Idempotent on `submission_id`. No money moves until the cycle's obligations are
    paid."""
    require_role(caller, "operator")
    answer = state.uow.run(
        caller,
        lambda s: submissions.submit(
            s,
            operator=certification.require_operator(s, caller.subject),
            submission=body.model_dump(),
            request_hash=h,
        ),
    )
    state.close_if_full()
    return answer


@router.get("/v1/clearing/obligations", tags=["clearing"])
def list_obligations(
    caller: Caller,
    state: State,
    actionable: bool = False,
    cycle: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Pair settlement obligations: an operator sees only those it is party to (`actionable`:
    those it still has to pay, or apply and acknowledge); the admin sees all."""
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: {
            "obligations": obligations.list_obligations(
                s,
                operator=certification.require_operator(s, caller.subject)
                if caller.role == "operator"
                else None,
                actionable=actionable,
                cycle_id=cycle,
                limit=limit,
            )
        },
    )


@router.get("/v1/clearing/obligations/{obligation_id}", tags=["clearing"])
def obligation_detail(
    obligation_id: str,
    caller: Caller,
    state: State,
    items: bool = True,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=obligations.MAX_ITEMS_PAGE)] = obligations.MAX_ITEMS_PAGE,
) -> Any:
    """One obligation as its party sees it: the signed pair-settlement receipt once settled,
    the tokens minted to the caller, and (a page of) the items addressed to the caller."""
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: obligations.detail(
            s,
            operator=certification.require_operator(s, caller.subject)
            if caller.role == "operator"
            else None,
            obligation_id=obligation_id,
            items=items,
            offset=offset,
            limit=limit,
        ),
    )


@router.post("/v1/clearing/obligations/{obligation_id}/pay", tags=["clearing"])
def pay_obligation(
    obligation_id: str,
    body: PayObligation,
    caller: Caller,
    state: State,
    key: IdemKey,
    h: RequestHash,
) -> Any:
    """The debtor pays the net with vault tokens: the central bank spends them, mints the net
    to the creditor and the change to the debtor, and signs the pair-settlement receipt."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: payments.pay(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            obligation_id=obligation_id,
            serials=body.serials,
            idem=Idempotency(key, h),
        ),
    )


@router.post("/v1/clearing/obligations/{obligation_id}/ack", tags=["clearing"])
def acknowledge_obligation(
    obligation_id: str, body: AcknowledgeObligation, caller: Caller, state: State
) -> Any:
    """A party has applied the settled pair (and names the payments it is sending back)."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: obligations.acknowledge(
            s,
            operator=certification.require_operator(s, caller.subject),
            obligation_id=obligation_id,
            returned=body.returned,
        ),
    )


@router.post("/v1/admin/clearing/close", tags=["admin"])
def close_clearing_cycle(caller: Caller, state: State) -> Any:
    """Close a clearing cycle now (besides the timer and the item threshold)."""
    require_role(caller, "admin")
    return state.uow.run(
        caller, lambda s: {"cycle": cycles.close_cycle(s, state.cb, trigger="admin")}
    )


@router.get("/v1/stats/clearing", tags=["analysis"])
def clearing_stats(
    caller: Caller,
    state: State,
    after_cycle: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Per clearing cycle and operator pair: gross both ways and net; per operator: liquidity
    used by net settlement against what RTGS would have needed."""
    require_role(caller, "admin", "regulator")
    return state.uow.run(
        caller,
        lambda s: {
            "position": stats.clearing_position(s),
            "operators": stats.liquidity_stats(s),
            "cycles": stats.cycle_stats(s, after_cycle=after_cycle, limit=limit),
        },
    )


@router.post("/v1/registration/disclosure-anchors", tags=["registration"])
def register_disclosure_anchor(body: DisclosureAnchorIn, caller: Caller, state: State) -> Any:
    """An operator registers the head of its disclosure log after entry `seq`, signed with its
    key. The same (seq, hash) again is accepted; another hash for an anchored seq is refused
    (409 `disclosure_anchor_conflict`) and recorded for the audit."""
    require_role(caller, "operator")
    registration = state.uow.run(
        caller,
        lambda s: anchors.register(
            s,
            operator=certification.require_operator(s, caller.subject),
            seq=body.seq,
            head=body.hash,
            signature=body.signature,
            key=state.cb.key,
        ),
    )
    return registration.answer()  # raises the 409 once the conflict is recorded


@router.get("/v1/disclosure-anchors", tags=["registration"])
def list_disclosure_anchors(
    caller: Caller,
    state: State,
    operator: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{4}$")] = None,
) -> Any:
    """Every operator's anchored disclosure-log heads (and refused conflicting ones), for the
    audit and the regulator; each anchor with its `link` in the operator's anchor chain, signed
    by the central bank's key (central_bank/analysis/anchors.py)."""
    require_role(caller, "admin", "regulator")
    return state.uow.run(caller, lambda s: anchors.listing(s, operator=operator, key=state.cb.key))


# ------------------------------------------------------------------ analysis centre


@router.get("/v1/stats/money-supply", tags=["analysis"])
def money_supply(caller: Caller, state: State) -> Any:
    """Network totals for every caller; `by_operator` lists every operator's circulation and
    reserves for the admin and the regulator, and only its own line for an operator."""
    require_role(caller, "admin", "operator", "regulator")
    only = caller.subject if caller.role == "operator" else None
    return state.uow.run(caller, lambda s: analysis.money_supply(s, only_operator=only))


AML_MAX_FUTURE = timedelta(minutes=5)  # clock skew between an operator and the central bank
AML_MAX_AGE = timedelta(days=400)  # an AML rule looks back days or weeks, not years


class AmlReportOutOfRange(ValidationFailed):
    code = "aml_report_time_out_of_range"
    title = "AML report's occurred_at is too far in the future or the past"


def _bounded_occurred_at(occurred_at: str, now: datetime) -> None:
    """A report dated year 9999 would head the regulator's alerts forever: occurred_at is at
    most AML_MAX_FUTURE ahead of the central bank's clock and at most AML_MAX_AGE old."""
    try:
        at = parse_iso(occurred_at)
    except ValueError:
        return  # refused as not ISO 8601 by analysis.receive_report
    if at > now + AML_MAX_FUTURE or at < now - AML_MAX_AGE:
        raise AmlReportOutOfRange(
            f"occurred_at: must lie between {AML_MAX_AGE.days} days ago and "
            f"{int(AML_MAX_FUTURE.total_seconds() // 60)} minutes from now"
        )


class AmlReportTooLarge(ValidationFailed):
    code = "aml_report_too_large"
    title = "AML report is larger than the analysis centre accepts"


async def _bounded_aml_report(request: Request, _: Caller) -> None:
    """After authentication (a refusal to an unauthenticated caller would not be signed)."""
    if len(await request.body()) > AML_REPORT_MAX_BYTES:
        raise AmlReportTooLarge(f"body: an AML report is at most {AML_REPORT_MAX_BYTES} bytes")


@router.post("/v1/analysis/reports", tags=["analysis"], dependencies=[Depends(_bounded_aml_report)])
def receive_aml_report(body: AmlReport, caller: Caller, state: State) -> Any:
    """An operator reports an AML alert, pseudonymously: wallet id, rule, amount, time and the
    rule's own `details` (counts, amounts, windows; see central_bank/analysis/schemas.py).
    Anything else, more than `AML_REPORT_MAX_BYTES`, or an `occurred_at` more than 5 minutes
    ahead or more than 400 days old (`aml_report_time_out_of_range`), is refused with 422."""
    require_role(caller, "operator")
    _bounded_occurred_at(body.occurred_at, state.clock())
    return state.uow.run(
        caller,
        lambda s: analysis.receive_report(
            s, operator=certification.require_operator(s, caller.subject), report=body.model_dump()
        ),
    )


@router.get("/v1/analysis/alerts", tags=["analysis"])
def list_aml_alerts(
    caller: Caller,
    state: State,
    rule: str | None = None,
    operator: str | None = None,
    wallet: str | None = None,
    since: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """AML alerts for the regulator (and the central bank's own analysts), filterable.
    `totals_by_rule` counts all alerts received, whatever the filters."""
    require_role(caller, "regulator", "admin")
    try:
        since_at = parse_iso(since) if since else None
    except ValueError:
        raise ValidationFailed("since: must be ISO 8601 with a time zone") from None
    return state.uow.run(
        caller,
        lambda s: {
            "alerts": analysis.list_alerts(
                s, rule=rule, operator=operator, wallet=wallet, since=since_at, limit=limit
            ),
            "totals_by_rule": analysis.alert_summary(s),
        },
    )
