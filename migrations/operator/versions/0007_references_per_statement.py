"""References of orders, net items and inbound settlements checked per statement.

As ledger v3 does for postings (migrations/ledger_v3.py, decision 52): the foreign keys from
`orders` (to its wallet and its journal entry), from `net_items` (to its order) and from
`inbound_settlements` (to its journal entry) each ran a lookup per inserted row and took a
KEY SHARE lock on the referenced row, rewriting the header of a wallet, entry or order that
the same batch had just written. Now one statement trigger per table checks the inserted rows'
references together and raises foreign_key_violation as the constraints did.

What the constraints also did, keep the referenced rows and the references themselves from
changing, is kept by triggers: an order's wallet and entry, and an inbound settlement's entry,
cannot change (a net item's order already could not, net_item_guard); a wallet with orders and
an order with a net item cannot be deleted or renumbered; neither table can be truncated.
Journal entries were already immutable.

Revision ID: op0007
Revises: op0006
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0007"
down_revision = "op0006"
branch_labels = None
depends_on = None


UP = """
ALTER TABLE orders DROP CONSTRAINT orders_wallet_id_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_entry_id_fkey;
ALTER TABLE net_items DROP CONSTRAINT net_items_order_id_fkey;
ALTER TABLE inbound_settlements DROP CONSTRAINT inbound_settlements_entry_id_fkey;

CREATE FUNCTION orders_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT n.wallet_id INTO missing FROM (SELECT DISTINCT wallet_id FROM new_orders) n
     WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = n.wallet_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'order for unknown wallet %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.entry_id INTO missing FROM new_orders n
     WHERE n.entry_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM journal_entries j WHERE j.id = n.entry_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'order for unknown journal entry %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_orders_refs AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_check_refs();

CREATE FUNCTION net_items_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.order_id INTO missing FROM new_items n
     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = n.order_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'net item for unknown order %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_net_items_refs AFTER INSERT ON net_items
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION net_items_check_refs();

CREATE FUNCTION inbound_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT n.entry_id INTO missing FROM new_inbound n
     WHERE n.entry_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM journal_entries j WHERE j.id = n.entry_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'inbound settlement for unknown journal entry %', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_inbound_refs AFTER INSERT ON inbound_settlements
    REFERENCING NEW TABLE AS new_inbound
    FOR EACH STATEMENT EXECUTE FUNCTION inbound_check_refs();

CREATE FUNCTION refs_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % cannot change (%)', TG_ARGV[0], TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER trg_orders_refs_fixed BEFORE UPDATE ON orders FOR EACH ROW
    WHEN (OLD.wallet_id IS DISTINCT FROM NEW.wallet_id
          OR OLD.entry_id IS DISTINCT FROM NEW.entry_id)
    EXECUTE FUNCTION refs_forbid_change('wallet or journal entry');
CREATE TRIGGER trg_inbound_refs_fixed BEFORE UPDATE ON inbound_settlements FOR EACH ROW
    WHEN (OLD.entry_id IS DISTINCT FROM NEW.entry_id)
    EXECUTE FUNCTION refs_forbid_change('journal entry');

CREATE FUNCTION wallets_keep_ordered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM orders WHERE wallet_id = OLD.id) THEN
        RAISE EXCEPTION 'wallet % has orders (% refused)', OLD.id, TG_OP
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_wallets_keep_ordered BEFORE DELETE ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_keep_ordered();
CREATE TRIGGER trg_wallets_keep_ordered_id BEFORE UPDATE OF id ON wallets FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION wallets_keep_ordered();

CREATE FUNCTION orders_keep_netted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM net_items WHERE order_id = OLD.id) THEN
        RAISE EXCEPTION 'order % has a net item (% refused)', OLD.id, TG_OP
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER trg_orders_keep_netted BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_keep_netted();
CREATE TRIGGER trg_orders_keep_netted_id BEFORE UPDATE OF id ON orders FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION orders_keep_netted();

CREATE TRIGGER trg_wallets_no_truncate BEFORE TRUNCATE ON wallets
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_orders_no_truncate BEFORE TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
"""

DOWN = """
DROP TRIGGER trg_orders_no_truncate ON orders;
DROP TRIGGER trg_wallets_no_truncate ON wallets;
DROP TRIGGER trg_orders_keep_netted_id ON orders;
DROP TRIGGER trg_orders_keep_netted ON orders;
DROP FUNCTION orders_keep_netted();
DROP TRIGGER trg_wallets_keep_ordered_id ON wallets;
DROP TRIGGER trg_wallets_keep_ordered ON wallets;
DROP FUNCTION wallets_keep_ordered();
DROP TRIGGER trg_inbound_refs_fixed ON inbound_settlements;
DROP TRIGGER trg_orders_refs_fixed ON orders;
DROP FUNCTION refs_forbid_change();
DROP TRIGGER trg_inbound_refs ON inbound_settlements;
DROP FUNCTION inbound_check_refs();
DROP TRIGGER trg_net_items_refs ON net_items;
DROP FUNCTION net_items_check_refs();
DROP TRIGGER trg_orders_refs ON orders;
DROP FUNCTION orders_check_refs();

ALTER TABLE inbound_settlements ADD CONSTRAINT inbound_settlements_entry_id_fkey
    FOREIGN KEY (entry_id) REFERENCES journal_entries(id);
ALTER TABLE net_items ADD CONSTRAINT net_items_order_id_fkey
    FOREIGN KEY (order_id) REFERENCES orders(id);
ALTER TABLE orders ADD CONSTRAINT orders_entry_id_fkey
    FOREIGN KEY (entry_id) REFERENCES journal_entries(id);
ALTER TABLE orders ADD CONSTRAINT orders_wallet_id_fkey
    FOREIGN KEY (wallet_id) REFERENCES wallets(id);
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
