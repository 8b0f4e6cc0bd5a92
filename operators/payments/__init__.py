"""Payments area: signed payment orders and the set-based payment path.

orders (signed order checks, refused orders, receipts, status), batch (`pay_many`: every payment
goes through it), payment_sql (its raw psycopg SQL), microbatch (single payments share a
transaction), signed_batch (`POST /v1/payments/batch`), bulk (onboarding and exchange for the
scenario engine and load tests), fast_path (the raw ASGI front door for payments), api (routes)."""
