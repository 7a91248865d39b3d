"""The HTTP API: chat widget and human agents' console endpoints."""
