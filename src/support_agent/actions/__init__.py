"""Candidate actions of the agent and the account actions that write to the systems of record."""
