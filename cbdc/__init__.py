"""The kernel of the CBDC simulator: what every tier shares (money, crypto, envelopes, tokens,
ledger, db, embedded PostgreSQL, settings, policy, clock, ...). It imports nothing above it;
`cbdc.web` holds the services' FastAPI/Starlette layer, which the wallet SDK never loads."""

__version__ = "0.1.0"
