"""Load tests and benchmarks: the Locust suite, wallet seeding, the raw PostgreSQL baseline and
the `cbdc bench` runner."""
