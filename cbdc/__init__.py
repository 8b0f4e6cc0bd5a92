"""Shared kernel of the CBDC simulator: money, signatures, settings, database, embedded
PostgreSQL, the network orchestration and the `cbdc` command line."""

__version__ = "0.1.0"
