"""Locust user classes, re-exported by `loadtest/locustfile.py`."""
