"""Scheduled payments (operators/programmable, docs/programmable.md): a payer's signed standing
order to pay a payee `amount` at `first_at`, then every `every_seconds` (or once), `count` times
at most. Nothing is locked: each execution is an ordinary `payment` order of the payer posted by
the batch path, with the nonce `sched:<schedule id>:<n>` (unique per wallet like every nonce),
so the n-th execution happens once, whatever runs it and however often.

`schedules`: one row per schedule, idempotent on the payer's nonce; `next_at` is the next due
time while `active`, NULL once `completed` (after `count` executions) or `cancelled`.
`schedule_executions`: one row per execution, paid (its order) or refused (its problem code;
the refused order is kept too, under the same nonce, like any refused order).

Revision ID: op0014
Revises: op0013
Create Date: 2026-12-07
"""

from alembic import op

revision = "op0014"
down_revision = "op0013"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE schedules (
    id             uuid PRIMARY KEY,
    payer          varchar(20) NOT NULL REFERENCES wallets (id),
    payee          text NOT NULL,
    amount         bigint NOT NULL,
    first_at       timestamptz NOT NULL,
    every_seconds  integer,
    count          integer NOT NULL,
    executed       integer NOT NULL DEFAULT 0,
    next_at        timestamptz,
    status         text NOT NULL DEFAULT 'active',
    memo           text,
    nonce          text NOT NULL,
    body           jsonb NOT NULL,
    signature      text NOT NULL,
    order_hash     text NOT NULL,
    created_at     timestamptz NOT NULL,
    closed_at      timestamptz,
    CONSTRAINT ck_schedules_amount CHECK (amount > 0),
    CONSTRAINT ck_schedules_every CHECK (
        every_seconds IS NULL OR every_seconds BETWEEN 60 AND 366 * 86400),
    CONSTRAINT ck_schedules_count CHECK (
        count BETWEEN 1 AND 1000 AND (every_seconds IS NOT NULL OR count = 1)),
    CONSTRAINT ck_schedules_executed CHECK (executed BETWEEN 0 AND count),
    CONSTRAINT ck_schedules_status CHECK (status IN ('active', 'completed', 'cancelled')),
    CONSTRAINT ck_schedules_next CHECK ((status = 'active') = (next_at IS NOT NULL)),
    CONSTRAINT ck_schedules_done CHECK ((status = 'completed') = (executed = count)),
    CONSTRAINT uq_schedules_nonce UNIQUE (payer, nonce)
);
CREATE INDEX ix_schedules_due ON schedules (next_at) WHERE status = 'active';
CREATE INDEX ix_schedules_payer ON schedules (payer, created_at);

CREATE TABLE schedule_executions (
    schedule_id  uuid NOT NULL REFERENCES schedules (id),
    n            integer NOT NULL,
    due_at       timestamptz NOT NULL,
    executed_at  timestamptz NOT NULL,
    outcome      text NOT NULL,
    order_id     uuid NOT NULL REFERENCES orders (id),
    failure      text,
    PRIMARY KEY (schedule_id, n),
    CONSTRAINT ck_schedule_executions_outcome CHECK (outcome IN ('paid', 'refused')),
    CONSTRAINT ck_schedule_executions_failure CHECK ((outcome = 'refused') = (failure IS NOT NULL))
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE schedule_executions")
    op.execute("DROP TABLE schedules")
