"""Vault area: the central-bank tokens the operator holds, water marks, issuance and redemption.

service (verify, reserve, apply issuance and redemption, water marks), repository (vault
tokens), jobs (outbox handlers, the water-mark check), api (staff routes)."""
