"""The central bank dashboard: one-time login links and the sessions they open.

`cbdc up` and `cbdc dashboard` ask for a login link (admin-signed
`POST /v1/admin/dashboard/logins`); the link's token is random (256 bits) and only its sha256
is stored here, valid 24 h and usable once: `GET /login` consumes it with one
`UPDATE ... WHERE used_at IS NULL AND expires_at > now RETURNING`, so two workers (or two tabs)
cannot both use it. The session it opens is also random, stored as its sha256, valid 12 h.
Both live in the database so every uvicorn worker sees them.

Revision ID: cb0010
Revises: cb0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "cb0010"
down_revision = "cb0009"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE dashboard_logins (
    token_hash  text PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT ck_dashboard_logins_token_hash CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_dashboard_logins_expiry CHECK (expires_at > created_at)
);

CREATE TABLE dashboard_sessions (
    id_hash     text PRIMARY KEY,
    login_hash  text NOT NULL REFERENCES dashboard_logins (token_hash) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT ck_dashboard_sessions_id_hash CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_dashboard_sessions_expiry CHECK (expires_at > created_at)
);
CREATE INDEX ix_dashboard_sessions_login_hash ON dashboard_sessions (login_hash);
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dashboard_sessions; DROP TABLE IF EXISTS dashboard_logins;")
