-- The faces (#12): key kinds, and the threads and runs of the LangGraph API (Agent Protocol).
--
-- A key's kind says what it may do: `secret` (server side: everything), `agent` (the human
-- agents' console: handoffs, memory reads, MCP, chat) and `widget` (publishable, embedded in a
-- web page: chat only, from the tenant's allowed origins).
ALTER TABLE api_keys ADD COLUMN kind text NOT NULL DEFAULT 'secret'
    CHECK (kind IN ('secret', 'agent', 'widget'));

-- A graph thread is a session (thread_id = session id). Its checkpoints live in LangGraph's
-- tables under "{tenant_id}:{thread_id}"; this row holds what the Agent Protocol adds: client
-- metadata (graph_id, assistant_id, anything the client sets) and the status.
CREATE TABLE graph_threads (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    thread_id   text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    status      text NOT NULL DEFAULT 'idle'
                CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, thread_id)
);
CREATE INDEX graph_threads_metadata ON graph_threads USING gin (metadata jsonb_path_ops);
CREATE INDEX graph_threads_updated ON graph_threads (tenant_id, updated_at DESC);

-- One run of the graph on a thread (one turn, or the answer to an interrupt).
CREATE TABLE graph_runs (
    run_id       uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    thread_id    text NOT NULL,
    assistant_id text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'success', 'error', 'interrupted')),
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, thread_id) REFERENCES graph_threads (tenant_id, thread_id)
        ON DELETE CASCADE
);
CREATE INDEX graph_runs_thread ON graph_runs (tenant_id, thread_id, created_at);
