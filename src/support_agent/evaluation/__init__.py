"""Offline evaluation runs that need the whole agent (conversations on τ²-bench retail tasks)."""
