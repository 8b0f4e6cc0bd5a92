"""Deferred net settlement: cross-operator payments netted per operator pair and settled
through the central bank's clearing house in cycles. Only the net moves tokens; payees are
credited when the pair is applied; payees who cannot take the money get it returned by RTGS;
every step is idempotent; payments keep flowing while cycles close; the mode can switch
mid-stream. Every scenario checks the cross-tier conservation of money after each cycle."""
