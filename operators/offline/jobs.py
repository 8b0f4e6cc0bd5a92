"""Outbox jobs of the offline area: revocations reported to the central bank
(`offline_revoke`, operators/offline/revocations.py) and claims forwarded to the payer's
operator (`offline_forward`, operators/offline/forwarding.py)."""

from __future__ import annotations

from operators.jobs import JobHandler, job_table
from operators.offline.forwarding import JOBS as FORWARD_JOBS
from operators.offline.revocations import JOBS as REVOCATION_JOBS

JOBS: dict[str, JobHandler] = job_table(REVOCATION_JOBS, FORWARD_JOBS)
