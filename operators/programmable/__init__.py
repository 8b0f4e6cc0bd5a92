"""Programmable payments, the operator side (docs/programmable.md): escrow (escrows: value a
payer locks for a payee until a deadline, in an account of its own) and scheduled payments
(schedules: ordinary payments made at set times on the payer's signed schedule).

An area above payments, settlement, wallets and vault, imported only by the composition
(operators.app, operators.state, operators.audit). Escrow: escrows (the rules), escrow_repository
(SQL), escrow_jobs (the deadline sweep), escrow_schemas and escrow_api (routes), errors.
Schedules: schedules*.py, schedule_errors.py."""
