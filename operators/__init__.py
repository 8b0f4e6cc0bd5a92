"""Tier 2: an operator (commercial bank) service: vault, customers, wallets, payments,
exchange (load/unload), settlement with other operators through the central bank."""
