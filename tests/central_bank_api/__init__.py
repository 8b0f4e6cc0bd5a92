"""The central bank's API, called as an operator (signed envelopes, signed responses): issuance,
redemption with change, splitting, RTGS settlement, double-spend and ownership refusals,
idempotency, roles, and the central bank's own audit."""
