"""Outages answered as outages (issue #12): while a service's database cannot be reached, every
route answers 503 problem+json `database_unavailable` with Retry-After (never 500), the
micro-batched payment path answers every waiting request, background work waits and goes on,
and everything works again once the database is back, without a restart. The wallet SDK sends
the same signed order again through the outage; signed reads get a new envelope each try.

The outage here: the service's database stops accepting connections and its open ones are
terminated (what a restart of the server looks like to the service, for one database only).
tests/e2e/test_database_crash.py crashes a whole server under concurrent payments.
"""
