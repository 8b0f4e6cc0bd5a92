"""Tier 1: the central bank service, one package per centre of the design.

    certification/  operators, their certificates and keys, quotas, reserves, positions
    registration/   the token registry: issuance, redemption, split, token status, RTGS
                    settlement; `mint_tokens` and `lock_spendable_inputs` for clearing
    clearing/       deferred net settlement (submissions, cycles, obligations, payments,
                    stats) and RTGS batches (rtgs)
    analysis/       AML reports, money supply, the audit, disclosure-log anchors

Each centre has its router (api.py), services, queries (repository.py) and wire types
(schemas.py). At the root: app.py (the FastAPI app; includes the routers), state.py (engine,
keys, auth, the one clock), web.py (what the routers share, /health, /v1/info), context.py
(`CentralBank`: key and currency terms), operations.py (idempotent operator requests),
models.py, errors.py, schemas.py (shared wire types). A centre imports only centres below it:
analysis > clearing > registration > certification.
"""
