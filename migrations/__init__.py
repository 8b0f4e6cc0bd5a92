"""Alembic migrations, one script location per database: `central_bank/` and `operator/`."""
