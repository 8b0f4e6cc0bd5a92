"""Tier 1: the central bank service (issuance, certification, registration, analysis)."""
