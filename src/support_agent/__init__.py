"""support-agent: a customer-support agent with a memory of every customer.

The package is organised by what it holds: ``graph.py`` wires the LangGraph state graph,
``nodes/`` holds one module per node, ``crm/`` the systems of record, ``memory_store/`` the hot
tier and long-term memory, ``policy/`` the deterministic policy engine, ``intents/`` the intent
classifier and ``api/`` the FastAPI service.
"""

__version__ = "0.1.0"
