"""Offline payments, the operator side (operators/offline)."""
