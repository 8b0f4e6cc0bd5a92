"""The central bank as clearing house: deferred net settlement between operators.

    submit       an operator hands in cross-operator payments it made, for one payee
                 operator (`clearing_submissions`, `clearing_items`); idempotent on the
                 submission id; no money moves
    close_cycle  every submission not yet in a cycle goes into a new cycle; per unordered
                 operator pair the gross both ways and the bilateral net become an obligation:
                 the debtor owes the creditor the net (a net of 0 is settled at once)
    pay          the debtor pays the net with vault tokens: inputs spent, the net minted to the
                 creditor and the change to the debtor, circulation:debtor -net /
                 circulation:creditor +net (`net_settlement`), a signed pair-settlement receipt
                 listing both directions' gross, item digests, the net and the token serials
    detail/ack   each party fetches the settled pair (the items addressed to it and its
                 tokens), applies it in one transaction of its own and acknowledges it, naming
                 the payments it is sending back (those go back by RTGS)

Only the net moves at the central bank; the gross never does. The central bank's invariants
are unchanged: live tokens of A == circulation:A, and net settlements sum to zero.
"""
