"""Outbox jobs of compliance: AML reports to the central bank's analysis centre, and anchors
of the disclosure log's head."""

from __future__ import annotations

import logging

from cbdc.disclosure_log import sign_anchor
from cbdc.http import RemoteError
from operators.jobs import JobHandler, JobRunner
from operators.models import OutboxJob

log = logging.getLogger(__name__)


def run_aml_report(runner: JobRunner, job: OutboxJob) -> None:
    try:
        runner.ctx.central_bank.report_alert(job.payload)
    except RemoteError as exc:
        log.error("AML report %s refused: %s", job.reference, exc)
        runner.fail(job, str(exc))
        return
    runner.finish(job)


def run_disclosure_anchor(runner: JobRunner, job: OutboxJob) -> None:
    """Register the disclosure log's head after entry `seq` with the central bank, signed
    with this operator's key. Idempotent there: the same (seq, hash) again is accepted."""
    seq, head = int(job.payload["seq"]), str(job.payload["hash"])
    signature = sign_anchor(runner.ctx.key, runner.ctx.code, seq, head)
    try:
        runner.ctx.central_bank.register_disclosure_anchor(seq=seq, head=head, signature=signature)
    except RemoteError as exc:
        if exc.status in (401, 403):  # e.g. while suspended: the anchor is still owed
            runner.later(job, min(60.0, 0.5 * 2 ** min(job.attempts, 7)), str(exc))
            return
        # 409: another head is anchored for this seq (the log was rewritten, or the
        # central bank's record was): the central bank flags it, the audit reports it.
        log.error("disclosure anchor #%s refused: %s", seq, exc)
        runner.fail(job, str(exc))
        return
    runner.finish(job)


JOBS: dict[str, JobHandler] = {
    "aml_report": run_aml_report,
    "disclosure_anchor": run_disclosure_anchor,
}
