"""Programmable money: escrow and scheduled payments (docs/programmable.md)."""
