"""Tests of the system-wide revocation list of offline devices, and of the device SDK."""
