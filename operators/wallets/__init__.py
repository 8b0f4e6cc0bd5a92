"""Wallets area: customers and their wallets, identity, class changes, limits, history.

service (open, change class, sweep to deposit, view, history), limits (class limits, spend
counters), identity / identity_history / identity_repository (evidence, encrypted identity and
its versions, the blind evidence index), states (wallets read many at a time, as of the lock),
repository (customers, wallets and their orders), api (routes)."""
