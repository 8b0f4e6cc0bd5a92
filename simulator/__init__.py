"""Scenario engine: issuance and circulation scenarios on the real two-tier ledger."""
