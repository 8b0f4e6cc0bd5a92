"""Errors of scheduled payments (stable problem codes, docs/api.md). A refused execution keeps
the code the payment was refused with (`insufficient_funds`, `daily_limit_exceeded`, ...)."""

from __future__ import annotations

from cbdc.errors import Conflict, NotFound, ValidationFailed


class UnknownSchedule(NotFound):
    code = "unknown_schedule"
    title = "No such schedule at this operator"


class ScheduleTimeInvalid(ValidationFailed):
    code = "schedule_time_invalid"
    title = "first_at must be in the future and at most 366 days ahead"


class ScheduleIntervalInvalid(ValidationFailed):
    code = "schedule_interval_invalid"
    title = "every must be null (one-off) or between 60 seconds and 366 days"


class ScheduleCountInvalid(ValidationFailed):
    code = "schedule_count_invalid"
    title = "count must be 1 to 1000, and 1 for a one-off"


class ScheduleClosed(Conflict):
    code = "schedule_closed"
    title = "The schedule has completed all its executions"


class ScheduleAuthorityInvalid(Conflict):
    """An execution whose stored schedule order no longer verifies against the payer's key:
    never paid (recorded as refused with this code)."""

    code = "schedule_authority_invalid"
    title = "The schedule's signed order does not verify against the payer's key"
