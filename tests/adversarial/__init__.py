"""Adversarial review: interleavings and inputs the other suites do not exercise.

Every test asserts the CORRECT behaviour. A failing test documents a bug in the product (see
the docstring of each test for the interleaving and what goes wrong); a passing test documents
a property that was checked and holds.

Interleavings are forced deterministically, not by timing: a repository function is wrapped so
that, at the exact point of interest inside one transaction, another complete transaction runs
(or two threads meet at a barrier); a job is "claimed twice" by expiring its lease between two
claims, which is what happens when a runner's lease runs out while it is still working.
"""
