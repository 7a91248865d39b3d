"""Deterministic, auditable policy: the hard rules every proposed action is checked against."""
