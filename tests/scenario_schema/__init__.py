"""Scenario files: loading, derived values and error messages (pure unit tests, no database)."""
