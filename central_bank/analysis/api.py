"""Routes of the analysis centre: the audit, the money supply, AML reports and alerts, and
the anchors of operators' disclosure logs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from cbdc.clock import parse_iso
from cbdc.errors import ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.analysis import anchors
from central_bank.analysis import service as analysis
from central_bank.analysis.schemas import AML_REPORT_MAX_BYTES, AmlReport, DisclosureAnchorIn
from central_bank.certification import service as certification
from central_bank.web import Caller, State

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/v1/admin/audit", tags=["admin"])
def audit(caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(caller, analysis.audit)


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
            s,
            operator=certification.require_operator(s, caller.subject),
            report=body.model_dump(),
            now=state.clock(),
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
            now=state.clock(),
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
    return state.uow.run(
        caller, lambda s: anchors.listing(s, operator=operator, key=state.cb.key, now=state.clock())
    )
