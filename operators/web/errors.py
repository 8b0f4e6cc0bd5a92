"""Refusals of the web area."""

from __future__ import annotations

from cbdc.errors import DomainError


class DemoDepositsDisabled(DomainError):
    code = "demo_deposits_disabled"
    status = 403
    title = "Demo deposits are turned off on this network"
