"""The session's own psycopg connection, for the set-based paths that skip SQLAlchemy's
statement compiling and row wrapping (`operators.payments.payment_sql`, `operators.wallets.states`,
the signed batch's key reads). Errors still go through SQLAlchemy's handling (`_reraise`), so
callers see the same `DBAPIError`s, retries on 40001/40P01 still happen, and a lost connection
still invalidates the pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from cbdc.errors import InsufficientFunds


@contextmanager
def raw(session: Session, what: str) -> Iterator[psycopg.Connection[Any]]:
    """The session's psycopg connection; a psycopg error is handed to SQLAlchemy, which wraps
    it (DBAPIError, with `orig`) and, for a lost connection, invalidates the pool, as for a
    statement it ran itself."""
    connection = session.connection()
    try:
        yield connection.connection.driver_connection  # type: ignore[misc]
    except psycopg.Error as exc:
        if exc.diag.constraint_name == "ck_accounts_non_negative":
            raise InsufficientFunds("an account would go negative") from None
        _reraise(connection, exc, what)
        raise


def _reraise(connection: Any, exc: psycopg.Error, what: str) -> None:
    handle = getattr(connection, "_handle_dbapi_exception", None)
    if handle is not None:
        handle(exc, what, {}, None, None)  # raises the wrapped error
