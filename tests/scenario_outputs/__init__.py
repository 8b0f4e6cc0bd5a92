"""The scenario engine's output side on synthetic runs: the run folder, the report, comparisons
and the `cbdc scenario list|compare` commands. No database involved."""
