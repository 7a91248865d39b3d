// The official JavaScript LangGraph SDK against support-agent's graph endpoint.
// Run by tests/test_js_sdk.py with API_URL, API_KEY, EMAIL, ORDER_ID, BLOCKED_THREAD (a
// thread id whose session the test holds busy, so a run on it waits and can be cancelled) and
// WIDGET_KEY (a publishable key: its threads are the visitor's, see the end).
// Prints one JSON object with what it saw; the Python test asserts on it and on the database.
import { Client } from "@langchain/langgraph-sdk";

const env = process.env;
const client = new Client({ apiUrl: env.API_URL, apiKey: env.API_KEY });
const user = (content) => ({ messages: [{ role: "user", content }] });
const out = {};

async function collect(threadId, payload) {
  const events = [];
  for await (const part of client.runs.stream(threadId, "support_agent", payload)) {
    events.push({ event: part.event, data: part.data });
  }
  return events;
}
const lastValues = (events) => events.filter((e) => e.event === "values").at(-1).data;
const lastAi = (values) => values.messages.filter((m) => m.type === "ai").at(-1).content;

const thread = await client.threads.create({ metadata: { source: "js-sdk" } });
const id = thread.thread_id;
out.thread_id = id;

// turn 1: identify; every stream mode asked for arrives
const first = await collect(id, {
  input: user(`hi, my email is ${env.EMAIL}, zip code ${env.ZIP}`),
  streamMode: ["values", "updates", "messages-tuple"],
});
out.first_events = [...new Set(first.map((e) => e.event))];
out.first_reply = lastAi(lastValues(first));
out.streamed_ai = first
  .filter((e) => e.event === "messages" || e.event.startsWith("messages"))
  .map((e) => (Array.isArray(e.data) ? e.data[0] : e.data))
  .filter((m) => m && m.type === "ai")
  .map((m) => m.content);

// turn 2: a write is proposed; the run stops with values.__interrupt__
const second = await collect(id, {
  input: user(`please cancel order ${env.ORDER_ID}, I ordered it by mistake`),
  streamMode: ["values"],
});
const interrupted = lastValues(second);
out.interrupt = interrupted.__interrupt__?.[0]?.value?.action_requests?.[0] ?? null;

const state = await client.threads.getState(id);
out.state_next = state.next;
out.state_interrupts = state.tasks.flatMap((t) => t.interrupts).length;
const history = await client.threads.getHistory(id, { limit: 50 });
out.history_length = history.length;
out.history_thread_ids = [...new Set(history.map((h) => h.checkpoint.thread_id))];
out.thread_metadata = (await client.threads.get(id)).metadata;

// the approval: command.resume with a reviewer's decision
const approved = await client.runs.wait(id, "support_agent", {
  command: { resume: { decisions: [{ type: "approve" }] } },
});
out.approved_reply = lastAi(approved);
out.approved_interrupt = approved.__interrupt__ ?? null;

// cancel a run that waits for its busy session
const blocked = env.BLOCKED_THREAD;
await client.threads.create({ threadId: blocked, metadata: { source: "js-sdk" } });
const run = await client.runs.create(blocked, "support_agent", { input: user("hello?") });
await client.runs.cancel(blocked, run.run_id);
let status = "pending";
for (let i = 0; i < 50 && !["interrupted", "success", "error"].includes(status); i++) {
  status = (await client.runs.get(blocked, run.run_id)).status;
  if (status === "pending" || status === "running") await new Promise((ok) => setTimeout(ok, 100));
}
out.cancelled_status = status;
out.blocked_messages = ((await client.threads.getState(blocked)).values.messages ?? []).length;

// tenancy: the key never sees a thread of another tenant
try {
  await client.threads.get(env.OTHER_TENANT_THREAD);
  out.other_tenant = "visible";
} catch (err) {
  out.other_tenant = err.status ?? String(err);
}

// a widget key: the thread is its visitor's; the SDK sends the visitor token POST /threads
// issued as a default header, and a client without it does not see the thread
const anonymous = new Client({ apiUrl: env.API_URL, apiKey: env.WIDGET_KEY });
const mine = await anonymous.threads.create();
out.widget_token_issued = String(mine.visitor_token).startsWith("vt_");
const visitor = new Client({
  apiUrl: env.API_URL, apiKey: env.WIDGET_KEY,
  defaultHeaders: { "X-Visitor-Token": mine.visitor_token },
});
const hello = await visitor.runs.wait(mine.thread_id, "support_agent", { input: user("hello") });
out.widget_reply = lastAi(hello);
const mineState = await visitor.threads.getState(mine.thread_id);
out.widget_state_messages = (mineState.values.messages ?? []).length;
try {
  await anonymous.threads.getState(mine.thread_id);
  out.widget_without_token = "visible";
} catch (err) {
  out.widget_without_token = err.status ?? String(err);
}

console.log(JSON.stringify(out));
