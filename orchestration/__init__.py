"""Starting and stopping a network of service processes (`network`: embedded PostgreSQL, the
central bank, the operators) and the cross-service audit (`audit`). Used by the CLI, the load
tests, the scenarios and the tests; it sits above the tiers and below the CLI."""
