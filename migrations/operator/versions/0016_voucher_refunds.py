"""Voucher payments given back (operators/programmable/voucher_refunds.py): a voucher payment
the payee's operator returns, or the central bank or the clearing house refuses, is refunded
into the holder's voucher while its programme is active (event `refund`: the voucher's `spent`
goes down by the amount), or to the programme's issuer once it has expired (event
`refund_expired`: `spent` down, `returned` up, as if expiry had returned it). Unsigned (nonce
NULL: the refund is no order of the holder); `order_id` is the refunded payment, at most one
refund event per payment.

Revision ID: op0016
Revises: op0015
Create Date: 2026-12-09
"""

from alembic import op

revision = "op0016"
down_revision = "op0015"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE voucher_events DROP CONSTRAINT ck_voucher_events_kind;
ALTER TABLE voucher_events ADD CONSTRAINT ck_voucher_events_kind
    CHECK (kind IN ('grant', 'payment', 'expiry', 'refund', 'refund_expired'));
ALTER TABLE voucher_events DROP CONSTRAINT ck_voucher_events_signed;
ALTER TABLE voucher_events ADD CONSTRAINT ck_voucher_events_signed
    CHECK ((kind IN ('grant', 'payment')) = (nonce IS NOT NULL));
ALTER TABLE voucher_events ADD CONSTRAINT ck_voucher_events_refund_of
    CHECK (kind NOT IN ('refund', 'refund_expired') OR order_id IS NOT NULL);
CREATE UNIQUE INDEX uq_voucher_events_refund ON voucher_events (order_id)
    WHERE kind IN ('refund', 'refund_expired');
"""

DOWNGRADE = """
DROP INDEX uq_voucher_events_refund;
ALTER TABLE voucher_events DROP CONSTRAINT ck_voucher_events_refund_of;
ALTER TABLE voucher_events DROP CONSTRAINT ck_voucher_events_signed;
ALTER TABLE voucher_events ADD CONSTRAINT ck_voucher_events_signed
    CHECK ((kind = 'expiry') = (nonce IS NULL));
ALTER TABLE voucher_events DROP CONSTRAINT ck_voucher_events_kind;
ALTER TABLE voucher_events ADD CONSTRAINT ck_voucher_events_kind
    CHECK (kind IN ('grant', 'payment', 'expiry'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
