"""Leave room on the pages of `accounts` and `wallets` for in-place (HOT) updates.

Every posting statement updates the balance of each account it touches, and every payment the
payer's spend counters. Neither column is indexed, so PostgreSQL can update the row in place
(a heap-only tuple, no index entries) when its page has free space; with the default fill
factor of 100 pages are full and every update writes a new entry in each of the table's
indexes. Measured on this machine: a posting cost about 22 µs with the default and about 17 µs
with accounts at fill factor 50 (docs/benchmarks.md, issue #4). Pages already full keep their
density until the table is rewritten (VACUUM FULL); new pages get the room.

Revision ID: op0005
Revises: op0004
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0005"
down_revision = "op0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts SET (fillfactor = 50)")
    op.execute("ALTER TABLE wallets SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE wallets RESET (fillfactor)")
    op.execute("ALTER TABLE accounts RESET (fillfactor)")
