"""Ledger v3: a posting's references checked once per statement instead of per row (shared by
both databases).

Frozen once landed, like ledger_v1 and ledger_v2. What changes (decision 52 in
docs/decisions.md):

  * the foreign keys from `postings` to `accounts` and to `journal_entries` go. A foreign key
    runs one lookup per inserted row and takes a KEY SHARE lock on the referenced row, which
    for a journal entry inserted a moment earlier in the same transaction rewrites that row's
    header: about 6.6 of the 15 µs a posting cost, measured on this machine.
  * the statement trigger that applies postings (ledger v2) checks the same thing per
    statement: every entry a statement posts to exists, and every account it touches exists
    (the balance UPDATE reports how many rows it changed; accounts whose legs net to zero in
    the statement are looked up). It raises foreign_key_violation as the constraint did.
  * what the constraints also did, keep a referenced row from going away: journal entries
    were already immutable (no UPDATE or DELETE); accounts with postings can no longer be
    deleted and an account's id cannot change; none of the three tables can be truncated.
"""

LEDGER_V3_UP = """
ALTER TABLE postings DROP CONSTRAINT postings_account_id_fkey;
ALTER TABLE postings DROP CONSTRAINT postings_entry_id_fkey;

CREATE OR REPLACE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad_entry bigint;
    off_by    bigint;
    wanted    bigint;
    changed   bigint;
    missing   bigint;
BEGIN
    SELECT entry_id, sum(amount) INTO bad_entry, off_by
      FROM new_postings GROUP BY entry_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance (off by %)', bad_entry, off_by
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.entry_id INTO missing
      FROM (SELECT DISTINCT entry_id FROM new_postings) n
     WHERE NOT EXISTS (SELECT 1 FROM journal_entries j WHERE j.id = n.entry_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'posting to unknown journal entry %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    UPDATE accounts a SET balance = a.balance + d.total
      FROM (SELECT account_id, sum(amount) AS total FROM new_postings GROUP BY account_id) d
     WHERE a.id = d.account_id AND d.total <> 0;
    GET DIAGNOSTICS changed = ROW_COUNT;
    SELECT count(*) FILTER (WHERE d.total <> 0),
           min(d.account_id) FILTER (WHERE d.total = 0
                                       AND NOT EXISTS (SELECT 1 FROM accounts a
                                                        WHERE a.id = d.account_id))
      INTO wanted, missing
      FROM (SELECT account_id, sum(amount) AS total FROM new_postings GROUP BY account_id) d;
    IF changed <> wanted THEN
        SELECT min(n.account_id) INTO missing
          FROM (SELECT DISTINCT account_id FROM new_postings) n
         WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = n.account_id);
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'posting to unknown account %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM postings WHERE account_id = OLD.id) THEN
        RAISE EXCEPTION 'account % has postings (% refused)', OLD.id, TG_OP
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_accounts_keep_posted BEFORE DELETE OR UPDATE OF id ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
CREATE TRIGGER trg_accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_journal_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
"""

LEDGER_V3_DOWN = """
DROP TRIGGER trg_postings_no_truncate ON postings;
DROP TRIGGER trg_journal_no_truncate ON journal_entries;
DROP TRIGGER trg_accounts_no_truncate ON accounts;
DROP TRIGGER trg_accounts_keep_posted ON accounts;
DROP FUNCTION ledger_guard_account();

CREATE OR REPLACE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
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

ALTER TABLE postings ADD CONSTRAINT postings_entry_id_fkey
    FOREIGN KEY (entry_id) REFERENCES journal_entries(id);
ALTER TABLE postings ADD CONSTRAINT postings_account_id_fkey
    FOREIGN KEY (account_id) REFERENCES accounts(id);
"""
