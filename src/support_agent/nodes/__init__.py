"""The support graph's nodes, one module each, in graph order.

``identify`` → ``load_360`` → ``classify_intent`` → ``retrieve_resolutions`` → ``rank_actions`` →
``policy_check`` → ``respond_or_escalate`` → ``write_memory``. Each module exports one async node
function of the same name (imported from its module: ``support_agent.nodes.identify.identify``).
"""
