"""Compliance area: AML monitoring and reports, the regulator's disclosure orders and log.

aml (rules, alerts, reports), repository (their SQL), disclosure (orders, the hash-chained log,
anchors), jobs (outbox handlers), api (routes)."""
