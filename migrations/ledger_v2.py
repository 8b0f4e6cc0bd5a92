"""Ledger v2: postings applied per statement instead of per row (shared by both databases).

Frozen once landed, like ledger_v1. What changes (decision 42 in docs/decisions.md):

  * one AFTER INSERT ... FOR EACH STATEMENT trigger with a transition table replaces the row
    trigger that updated `accounts.balance` and the deferred row trigger that re-summed each
    entry at COMMIT. It refuses the statement if the postings it inserts do not sum to zero per
    journal entry, then adds each account's total to its balance in one UPDATE.
  * so the legs of an entry must be written in one statement (cbdc.ledger does); since every
    statement is balanced per entry, every entry is balanced at every moment, not only at
    COMMIT. Non-negative balances stay a CHECK on `accounts`, now evaluated on each statement's
    result; unknown accounts stay a foreign key; postings stay immutable.

A batch of thousands of payments is thus two INSERTs and one UPDATE instead of thousands of
trigger calls, which is what the batch payment path and the scenario engine need.
"""

LEDGER_V2_UP = """
DROP TRIGGER trg_postings_balanced ON postings;
DROP TRIGGER trg_postings_apply ON postings;
DROP FUNCTION ledger_check_balanced();
DROP FUNCTION ledger_apply_posting();

CREATE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad_entry bigint;
    off_by    bigint;
BEGIN
    SELECT entry_id, sum(amount) INTO bad_entry, off_by
      FROM new_postings GROUP BY entry_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance (off by %)', bad_entry, off_by
            USING ERRCODE = 'check_violation';
    END IF;
    UPDATE accounts a SET balance = a.balance + d.total
      FROM (SELECT account_id, sum(amount) AS total FROM new_postings GROUP BY account_id) d
     WHERE a.id = d.account_id AND d.total <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_postings_apply AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_postings();
"""

LEDGER_V2_DOWN = """
DROP TRIGGER trg_postings_apply ON postings;
DROP FUNCTION ledger_apply_postings();

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
"""
