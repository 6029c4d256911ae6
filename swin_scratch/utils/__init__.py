"""Utilities: FLOP counting."""
