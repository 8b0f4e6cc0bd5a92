"""Ledger v2: postings applied and checked per statement (see migrations/ledger_v2.py); orders
placed by the scenario engine for its simulated customers carry no signature, body or hash
(a CHECK keeps the three together); payments are
indexed by payee for the fan-in rule.

Revision ID: op0002
Revises: op0001
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v2 import LEDGER_V2_DOWN, LEDGER_V2_UP

revision = "op0002"
down_revision = "op0001"
branch_labels = None
depends_on = None


ORDERS_UP = """
ALTER TABLE orders ALTER COLUMN signature DROP NOT NULL;
ALTER TABLE orders ALTER COLUMN body DROP NOT NULL;
ALTER TABLE orders ALTER COLUMN order_hash DROP NOT NULL;
ALTER TABLE orders ADD CONSTRAINT ck_orders_signed_or_simulated
    CHECK ((signature IS NULL) = (body IS NULL) AND (signature IS NULL) = (order_hash IS NULL));
-- Balances and spend counters are updated in place on every payment: leave room on each page
-- so those updates stay on the page (HOT) instead of touching every index.
ALTER TABLE accounts SET (fillfactor = 80);
ALTER TABLE wallets SET (fillfactor = 70);
CREATE INDEX ix_orders_payee_time ON orders (counterparty, created_at) WHERE kind = 'payment';
"""

ORDERS_DOWN = """
DROP INDEX ix_orders_payee_time;
ALTER TABLE accounts RESET (fillfactor);
ALTER TABLE wallets RESET (fillfactor);
ALTER TABLE orders DROP CONSTRAINT ck_orders_signed_or_simulated;
DELETE FROM orders WHERE signature IS NULL;
ALTER TABLE orders ALTER COLUMN signature SET NOT NULL;
ALTER TABLE orders ALTER COLUMN body SET NOT NULL;
ALTER TABLE orders ALTER COLUMN order_hash SET NOT NULL;
"""


def upgrade() -> None:
    op.execute(LEDGER_V2_UP)
    op.execute(ORDERS_UP)


def downgrade() -> None:
    op.execute(ORDERS_DOWN)
    op.execute(LEDGER_V2_DOWN)
