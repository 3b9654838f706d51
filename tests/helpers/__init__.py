"""Builders shared by the tests (tiny models, synthetic datasets)."""
