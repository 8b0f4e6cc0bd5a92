"""Offline ("dual offline") payments, the operator side: devices, purses, sync, adjudication.

devices (registration, the device view, staff totals), funding (fund, defund), adjudication (the
one judge of our devices' transfers: duplicates, counter reuse, overspend, loss booking,
settlement to the payee), sync (a device's signed log), forwarding (claims of payments from other
operators' devices, and the interop side that accepts them), revocations (the central bank's
list), jobs (outbox handlers), repository (SQL), schemas and api (routes), errors. The protocol
and its threat model: docs/offline.md; the messages: cbdc/offline.py."""
