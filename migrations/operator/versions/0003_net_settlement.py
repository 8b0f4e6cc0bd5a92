"""Deferred net settlement at the operator (operators/settlement/netting.py).

`net_items`: one row per cross-operator payment made under mode "net", from the payment's
transaction until the pair settlement that carries it is applied (open -> submitted ->
settled, or refunded when the central bank refuses its submission). `net_obligations`: this
operator's view of each pair settlement it is party to (paid, applied, delivered), with the
liquidity it used. Orders waiting for settlement are indexed for the audit.

Revision ID: op0003
Revises: op0002
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0003"
down_revision = "op0002"
branch_labels = None
depends_on = None


UP = """
CREATE TABLE net_items (
    id             bigserial PRIMARY KEY,
    order_id       uuid NOT NULL REFERENCES orders (id),
    peer           varchar(8) NOT NULL,
    payee_wallet   text NOT NULL,
    payer_alias    text NOT NULL,
    amount         bigint NOT NULL,
    status         text NOT NULL DEFAULT 'open',
    submission_id  uuid,
    obligation_id  uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz,
    CONSTRAINT uq_net_items_order UNIQUE (order_id),
    CONSTRAINT ck_net_items_amount CHECK (amount > 0),
    CONSTRAINT ck_net_items_status
        CHECK (status IN ('open', 'submitted', 'settled', 'refunded')),
    CONSTRAINT ck_net_items_submission CHECK ((status = 'open') = (submission_id IS NULL)),
    CONSTRAINT ck_net_items_obligation CHECK ((status = 'settled') = (obligation_id IS NOT NULL))
);
CREATE INDEX ix_net_items_open ON net_items (peer, created_at, id) WHERE status = 'open';
CREATE INDEX ix_net_items_in_flight ON net_items (status)
    WHERE status IN ('open', 'submitted');
CREATE INDEX ix_net_items_submission ON net_items (submission_id)
    WHERE submission_id IS NOT NULL;
CREATE INDEX ix_net_items_obligation ON net_items (obligation_id)
    WHERE obligation_id IS NOT NULL;

-- An item only moves forward (open -> submitted -> settled | refunded), and what was paid to
-- whom never changes.
CREATE FUNCTION net_item_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       OR NEW.order_id <> OLD.order_id OR NEW.peer <> OLD.peer
       OR NEW.payee_wallet <> OLD.payee_wallet OR NEW.payer_alias <> OLD.payer_alias
       OR NEW.amount <> OLD.amount
       OR (OLD.submission_id IS NOT NULL AND NEW.submission_id IS DISTINCT FROM OLD.submission_id)
       OR (OLD.status IN ('settled', 'refunded') AND NEW.status <> OLD.status)
       OR (OLD.status = 'submitted' AND NEW.status = 'open') THEN
        RAISE EXCEPTION 'net item % cannot change this way', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_net_items_guard BEFORE UPDATE OR DELETE ON net_items
    FOR EACH ROW EXECUTE FUNCTION net_item_guard();

CREATE TABLE net_obligations (
    obligation_id  uuid PRIMARY KEY,
    cycle_id       bigint NOT NULL,
    peer           varchar(8) NOT NULL,
    role           text NOT NULL,
    net            bigint NOT NULL,
    gross_out      bigint NOT NULL,
    gross_in       bigint NOT NULL,
    items_out      integer NOT NULL,
    items_in       integer NOT NULL,
    status         text NOT NULL DEFAULT 'pending',
    shortfall      bigint NOT NULL DEFAULT 0,
    returned       text[] NOT NULL DEFAULT '{}',
    receipt        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    paid_at        timestamptz,
    applied_at     timestamptz,
    delivered_at   timestamptz,
    CONSTRAINT ck_net_obligations_role CHECK (role IN ('debtor', 'creditor', 'even')),
    CONSTRAINT ck_net_obligations_status
        CHECK (status IN ('pending', 'paid', 'applied', 'delivered')),
    CONSTRAINT ck_net_obligations_net CHECK (
        net = abs(gross_out - gross_in) AND gross_out >= 0 AND gross_in >= 0
        AND shortfall >= 0),
    CONSTRAINT ck_net_obligations_side CHECK (
        CASE role WHEN 'debtor' THEN gross_out > gross_in
                  WHEN 'creditor' THEN gross_out < gross_in
                  ELSE gross_out = gross_in END)
);
CREATE INDEX ix_net_obligations_open ON net_obligations (created_at)
    WHERE status <> 'delivered';

CREATE INDEX ix_orders_pending_settlement ON orders (id) WHERE status = 'pending_settlement';
"""

DOWN = """
DROP INDEX IF EXISTS ix_orders_pending_settlement;
DROP TABLE IF EXISTS net_obligations;
DROP TABLE IF EXISTS net_items;
DROP FUNCTION IF EXISTS net_item_guard();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
