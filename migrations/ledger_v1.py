"""Double-entry ledger DDL shared by the first migration of both databases.

Frozen: migrations that have landed must not change, so a later ledger change goes into a new
migration (and, if shared, a new `ledger_v2` module), never here.

Design (after django-hordak): `accounts` hold a cached `balance`; `journal_entries` group
immutable `postings`. The database, not Python, enforces:
  * every posting updates its account's balance (row trigger), atomically with the insert;
  * balances never go negative unless the account is a contra/source account
    (`CHECK (allow_negative OR balance >= 0)`);
  * the postings of a journal entry sum to zero (deferred constraint trigger, checked at COMMIT);
  * postings are never updated or deleted.
"""

LEDGER_UP = """
CREATE TABLE journal_entries (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    reference   text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE postings (
    id          bigserial PRIMARY KEY,
    entry_id    bigint NOT NULL REFERENCES journal_entries (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    amount      bigint NOT NULL,
    CONSTRAINT ck_postings_nonzero CHECK (amount <> 0)
);
CREATE INDEX ix_postings_entry_id ON postings (entry_id);
CREATE INDEX ix_postings_account_id ON postings (account_id, id);

CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'posting to unknown account %', NEW.account_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER trg_postings_apply AFTER INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting();

CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER trg_postings_immutable BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_journal_immutable BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT coalesce(sum(amount), 0) INTO total FROM postings WHERE entry_id = NEW.entry_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance (off by %)', NEW.entry_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER trg_postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

CREATE TABLE request_nonces (
    key_id   text NOT NULL,
    nonce    text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, nonce)
);
"""

ACCOUNTS_UP = """
CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    kind            text NOT NULL,
    balance         bigint NOT NULL DEFAULT 0,
    allow_negative  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_accounts_non_negative CHECK (allow_negative OR balance >= 0)
);
CREATE INDEX ix_accounts_kind ON accounts (kind);
"""

LEDGER_DOWN = """
DROP TABLE IF EXISTS request_nonces;
DROP TABLE IF EXISTS postings;
DROP TABLE IF EXISTS journal_entries;
DROP TABLE IF EXISTS accounts;
DROP FUNCTION IF EXISTS ledger_check_balanced();
DROP FUNCTION IF EXISTS ledger_forbid_change();
DROP FUNCTION IF EXISTS ledger_apply_posting();
"""
