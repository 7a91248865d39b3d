"""Hybrid retrieval over a tenant's resolution records, knowledge documents and offers."""
