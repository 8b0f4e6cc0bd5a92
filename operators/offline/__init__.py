"""Offline ("dual offline") payments, the operator side: devices, purses, sync, adjudication."""
