"""The support graph's nodes, one module each, in graph order."""

from support_agent.nodes.classify_intent import classify_intent
from support_agent.nodes.identify import identify
from support_agent.nodes.load_360 import load_360
from support_agent.nodes.policy_check import policy_check
from support_agent.nodes.rank_actions import rank_actions
from support_agent.nodes.respond_or_escalate import respond_or_escalate
from support_agent.nodes.retrieve_resolutions import retrieve_resolutions
from support_agent.nodes.write_memory import write_memory

__all__ = [
    "identify",
    "load_360",
    "classify_intent",
    "retrieve_resolutions",
    "rank_actions",
    "policy_check",
    "respond_or_escalate",
    "write_memory",
]
