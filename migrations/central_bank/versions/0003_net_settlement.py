"""Deferred net settlement: the central bank as clearing house (central_bank/clearing/).

Operators submit cross-operator payments per payee operator (`clearing_submissions`, their
`clearing_items`); no money moves then. A clearing cycle (`clearing_cycles`) takes every
submission not yet in a cycle and makes one obligation per operator pair
(`clearing_obligations`): gross both ways and the bilateral net, which the debtor pays with
tokens (an `operations` row of kind `net_settlement`).

The database keeps what was cleared from changing: items are immutable, a submission enters
one cycle once, an obligation's amounts and parties never change and it is settled once.

Revision ID: cb0003
Revises: cb0002
Create Date: 2026-11-21
"""

from alembic import op

revision = "cb0003"
down_revision = "cb0002"
branch_labels = None
depends_on = None


UP = """
ALTER TABLE operations DROP CONSTRAINT ck_operations_kind;
ALTER TABLE operations ADD CONSTRAINT ck_operations_kind CHECK (kind IN (
    'issuance', 'redemption', 'split', 'settlement', 'reserve_funding', 'net_settlement'));

CREATE TABLE clearing_cycles (
    id           bigserial PRIMARY KEY,
    trigger      text NOT NULL,
    submissions  integer NOT NULL,
    items        integer NOT NULL,
    gross        bigint NOT NULL,
    net          bigint NOT NULL,
    closed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_clearing_cycles_trigger
        CHECK (trigger IN ('timer', 'admin', 'max_items', 'manual')),
    CONSTRAINT ck_clearing_cycles_amounts
        CHECK (submissions > 0 AND items > 0 AND gross > 0 AND net >= 0 AND net <= gross)
);

-- One per operator pair and cycle; operator_a is the one with the smaller routing code.
CREATE TABLE clearing_obligations (
    id               uuid PRIMARY KEY,
    cycle_id         bigint NOT NULL REFERENCES clearing_cycles (id),
    operator_a_id    integer NOT NULL REFERENCES operators (id),
    operator_b_id    integer NOT NULL REFERENCES operators (id),
    gross_ab         bigint NOT NULL,
    gross_ba         bigint NOT NULL,
    items_ab         integer NOT NULL,
    items_ba         integer NOT NULL,
    digest_ab        text NOT NULL,
    digest_ba        text NOT NULL,
    net              bigint NOT NULL,
    debtor_id        integer REFERENCES operators (id),
    creditor_id      integer REFERENCES operators (id),
    status           text NOT NULL DEFAULT 'pending',
    operation_id     uuid REFERENCES operations (id),
    receipt          jsonb,
    creditor_tokens  jsonb,
    settled_at       timestamptz,
    a_ack            jsonb,
    b_ack            jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_clearing_obligations_pair UNIQUE (cycle_id, operator_a_id, operator_b_id),
    CONSTRAINT ck_clearing_obligations_pair CHECK (operator_a_id <> operator_b_id),
    CONSTRAINT ck_clearing_obligations_gross CHECK (
        gross_ab >= 0 AND gross_ba >= 0 AND gross_ab + gross_ba > 0
        AND items_ab >= 0 AND items_ba >= 0),
    CONSTRAINT ck_clearing_obligations_net CHECK (net = abs(gross_ab - gross_ba)),
    CONSTRAINT ck_clearing_obligations_parties CHECK (coalesce(
        CASE WHEN gross_ab > gross_ba
                 THEN debtor_id = operator_a_id AND creditor_id = operator_b_id
             WHEN gross_ab < gross_ba
                 THEN debtor_id = operator_b_id AND creditor_id = operator_a_id
             ELSE debtor_id IS NULL AND creditor_id IS NULL END, false)),
    CONSTRAINT ck_clearing_obligations_status CHECK (status IN ('pending', 'settled')),
    CONSTRAINT ck_clearing_obligations_settled CHECK (
        (status = 'settled') = (receipt IS NOT NULL AND settled_at IS NOT NULL)
        AND (operation_id IS NULL OR status = 'settled')
        AND (status = 'pending' OR net = 0 OR operation_id IS NOT NULL)),
    CONSTRAINT ck_clearing_obligations_acks CHECK (
        status = 'settled' OR (a_ack IS NULL AND b_ack IS NULL))
);
CREATE INDEX ix_clearing_obligations_cycle ON clearing_obligations (cycle_id);
-- What a party still has to do (pay, or apply and acknowledge) is found through these.
CREATE INDEX ix_clearing_obligations_a_open ON clearing_obligations (operator_a_id)
    WHERE a_ack IS NULL;
CREATE INDEX ix_clearing_obligations_b_open ON clearing_obligations (operator_b_id)
    WHERE b_ack IS NULL;
CREATE INDEX ix_clearing_obligations_pending ON clearing_obligations (created_at)
    WHERE status = 'pending';

CREATE TABLE clearing_submissions (
    id                 uuid PRIMARY KEY,
    operator_id        integer NOT NULL REFERENCES operators (id),
    payee_operator_id  integer NOT NULL REFERENCES operators (id),
    request_hash       text NOT NULL,
    items              integer NOT NULL,
    gross              bigint NOT NULL,
    digest             text NOT NULL,
    response           jsonb NOT NULL,
    cycle_id           bigint REFERENCES clearing_cycles (id),
    obligation_id      uuid REFERENCES clearing_obligations (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_clearing_submissions_pair CHECK (operator_id <> payee_operator_id),
    CONSTRAINT ck_clearing_submissions_amounts CHECK (items > 0 AND gross > 0),
    CONSTRAINT ck_clearing_submissions_cycle CHECK ((cycle_id IS NULL) = (obligation_id IS NULL))
);
CREATE INDEX ix_clearing_submissions_unassigned ON clearing_submissions (created_at)
    WHERE cycle_id IS NULL;
CREATE INDEX ix_clearing_submissions_obligation ON clearing_submissions (obligation_id);

-- One row per payment. `reference` is the payer operator's payment id: a payment can be
-- cleared once only (unique per payer operator).
CREATE TABLE clearing_items (
    submission_id  uuid NOT NULL REFERENCES clearing_submissions (id),
    seq            integer NOT NULL,
    operator_id    integer NOT NULL REFERENCES operators (id),
    reference      text NOT NULL,
    payee_wallet   text NOT NULL,
    payer_alias    text NOT NULL,
    amount         bigint NOT NULL,
    PRIMARY KEY (submission_id, seq),
    CONSTRAINT uq_clearing_items_reference UNIQUE (operator_id, reference),
    CONSTRAINT ck_clearing_items_amount CHECK (amount > 0)
);
CREATE TRIGGER trg_clearing_items_immutable BEFORE UPDATE OR DELETE ON clearing_items
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

-- A submission is assigned to a cycle (and its pair's obligation) once; nothing else changes.
CREATE FUNCTION clearing_submission_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.cycle_id IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.operator_id <> OLD.operator_id
       OR NEW.payee_operator_id <> OLD.payee_operator_id OR NEW.items <> OLD.items
       OR NEW.gross <> OLD.gross OR NEW.request_hash <> OLD.request_hash
       OR NEW.digest <> OLD.digest THEN
        RAISE EXCEPTION 'clearing submission % is immutable once cleared', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_clearing_submissions_guard BEFORE UPDATE OR DELETE ON clearing_submissions
    FOR EACH ROW EXECUTE FUNCTION clearing_submission_guard();

-- An obligation's parties and amounts never change; it is settled once; each side's
-- acknowledgement is written once.
CREATE FUNCTION clearing_obligation_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       OR NEW.id <> OLD.id OR NEW.cycle_id <> OLD.cycle_id
       OR NEW.operator_a_id <> OLD.operator_a_id OR NEW.operator_b_id <> OLD.operator_b_id
       OR NEW.gross_ab <> OLD.gross_ab OR NEW.gross_ba <> OLD.gross_ba
       OR NEW.items_ab <> OLD.items_ab OR NEW.items_ba <> OLD.items_ba
       OR NEW.digest_ab <> OLD.digest_ab OR NEW.digest_ba <> OLD.digest_ba
       OR NEW.net <> OLD.net
       OR NEW.debtor_id IS DISTINCT FROM OLD.debtor_id
       OR NEW.creditor_id IS DISTINCT FROM OLD.creditor_id
       OR (OLD.status = 'settled' AND (
              NEW.status <> OLD.status
              OR NEW.receipt IS DISTINCT FROM OLD.receipt
              OR NEW.operation_id IS DISTINCT FROM OLD.operation_id
              OR NEW.creditor_tokens IS DISTINCT FROM OLD.creditor_tokens
              OR NEW.settled_at IS DISTINCT FROM OLD.settled_at))
       OR (OLD.a_ack IS NOT NULL AND NEW.a_ack IS DISTINCT FROM OLD.a_ack)
       OR (OLD.b_ack IS NOT NULL AND NEW.b_ack IS DISTINCT FROM OLD.b_ack) THEN
        RAISE EXCEPTION 'clearing obligation % cannot change this way', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_clearing_obligations_guard BEFORE UPDATE OR DELETE ON clearing_obligations
    FOR EACH ROW EXECUTE FUNCTION clearing_obligation_guard();
"""

DOWN = """
DROP TABLE IF EXISTS clearing_items;
DROP TABLE IF EXISTS clearing_submissions;
DROP FUNCTION IF EXISTS clearing_submission_guard();
DROP TABLE IF EXISTS clearing_obligations;
DROP FUNCTION IF EXISTS clearing_obligation_guard();
DROP TABLE IF EXISTS clearing_cycles;
ALTER TABLE operations DROP CONSTRAINT ck_operations_kind;
ALTER TABLE operations ADD CONSTRAINT ck_operations_kind CHECK (kind IN (
    'issuance', 'redemption', 'split', 'settlement', 'reserve_funding'));
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
