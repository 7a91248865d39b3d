"""Customer memory: the Redis hot tier and long-term episodic memory in the LangGraph store."""
