"""Issue #12 finding 5: a disclosure log a database superuser cannot quietly rewrite.

The attack: as a superuser in the operator's database, `SET session_replication_role = replica`
(the append-only triggers stop firing), rewrite an entry and recompute every hash after it, so
the hash chain verifies again. What catches it: the regulator's signature on every logged order
(checked by the operator's verify endpoint, `cbdc audit` and `cbdc regulator log`), and the heads
each operator anchors at the central bank after every disclosure (compared by the audit and the
regulator), besides the regulator's own anchor file.
"""
