"""Typed answers of the operator's scheduled-payment routes (`WalletClient.schedule_payment`,
`cancel_schedule`, `schedule`, `schedules`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ScheduleExecution(_Model):
    n: int
    due_at: str
    executed_at: str
    outcome: str  # paid | refused
    payment_id: str
    payment_status: str  # the payment's: completed, pending_settlement, failed, ...
    failure: str | None = None


class Schedule(_Model):
    schedule_id: str
    status: str  # active | completed | cancelled
    payer: str
    payee: str
    amount: int
    currency: str
    first_at: str
    every: int | None
    count: int
    executed: int
    next_at: str | None
    memo: str | None = None
    created_at: str
    closed_at: str | None = None
    order: dict[str, Any]
    signature: str
    executions: list[ScheduleExecution] = []
    replayed: bool = False
