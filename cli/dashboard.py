"""`cbdc dashboard`: a fresh one-time login link to the central bank's dashboard (its `/`).

The link is asked for with the admin key of the data directory (admin-signed
`POST /v1/admin/dashboard/logins`); it works once, for 24 hours, and opens a 12-hour session.
`cbdc up` prints one right after the network starts, with each operator's wallet page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.settings import NetworkConfig
from cli.console import console, read_key

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="network data directory (default .cbdc)")
]


def login_link(config: NetworkConfig, admin_key: SigningKey | None = None) -> dict[str, Any]:
    """A new one-time login link {"token", "url", "expires_at"} from the running central bank,
    asked for with `admin_key` (default: the data directory's admin key file)."""
    cb = config.central_bank
    admin = SignedClient(
        httpx.Client(base_url=cb.url, timeout=10),
        key=admin_key or SigningKey.load(Path(cb.admin_key_file)),
        key_id="admin",
        server_public_key=cb.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )
    return dict(admin.request("POST", "/v1/admin/dashboard/logins"))


def print_login_link(link: dict[str, Any]) -> None:
    """On a line of its own, never wrapped or shortened: the link is copied or clicked whole."""
    console.print(
        "Central bank dashboard: one-time login link (use once, within 24 h; "
        "`cbdc dashboard` prints another):",
        markup=False,
    )
    console.print(link["url"], soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer, network: Callable[[Path | None], NetworkConfig]) -> None:
    @app.command()
    def dashboard(data_dir: DataDir = None) -> None:
        """Print a fresh one-time login link to the central bank's dashboard."""
        config = network(data_dir)
        key_file = Path(config.central_bank.admin_key_file)
        admin_key = read_key(SigningKey.load, key_file, "the admin key (it asks for the link)")
        try:
            link = login_link(config, admin_key)
        except (RemoteError, RemoteUnavailable) as exc:
            console.print(
                f"[red]The central bank at {config.central_bank.url} did not give a login "
                f"link: {exc}.[/] Is the network running (`cbdc up`)?",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        print_login_link(link)
