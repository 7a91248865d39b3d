/*
 * support-agent chat widget: one <script> tag embeds it in any page.
 *
 *   <script src="https://support.example.com/widget.js"
 *           data-key="pk_..."                    publishable widget key (chat only)
 *           data-channel="web"                   optional, default "chat"
 *           data-customer-token="eyJ..."         optional: the site's signed token (HS256 JWT,
 *                                                sub = customer id) for a logged-in customer
 *           data-title="Support"                 optional heading
 *           data-open="true"></script>           optional: start opened
 *
 * It talks to the graph endpoint (LangGraph API) of the server it was loaded from: a thread per
 * conversation, owned by this visitor (the server issues the thread id with a visitor token that
 * the widget sends back in the X-Visitor-Token header on every call on the thread; both are kept
 * in sessionStorage, this tab only, so a reload continues the conversation), runs streamed as
 * server-sent events (fetch + ReadableStream, since EventSource cannot POST), reconnection to a
 * dropped stream from the last event id, the confirmation of a proposed action as buttons (typing "yes"
 * works too), and the handoff state when a colleague takes over. Everything it shows is set as
 * text (never as HTML). Vanilla JavaScript, no build step; the UI lives in a shadow root so the
 * host page's CSS and the widget's never meet.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var api = (script.getAttribute("data-api") || new URL(script.src).origin).replace(/\/$/, "");
  var key = script.getAttribute("data-key") || "";
  var channel = script.getAttribute("data-channel") || "chat";
  var token = script.getAttribute("data-customer-token") || "";
  var title = script.getAttribute("data-title") || "Support";
  var storeKey = "sa_thread:" + api + ":" + key.slice(0, 12) + ":" + (token ? "t" : "a");
  var RECONNECTS = 5;

  var host = document.createElement("div");
  host.id = "support-agent-widget";
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" +
    ":host{all:initial;font:15px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330}" +
    ".launcher{position:fixed;right:20px;bottom:20px;border:0;border-radius:24px;padding:12px 18px;" +
    "background:#2747d1;color:#fff;font:inherit;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.2)}" +
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f5a623;outline-offset:2px}" +
    ".panel{position:fixed;right:20px;bottom:80px;width:360px;max-width:calc(100vw - 40px);height:520px;" +
    "max-height:calc(100vh - 120px);display:flex;flex-direction:column;background:#fff;border-radius:12px;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}" +
    ".panel[hidden]{display:none}" +
    "header{display:flex;align-items:center;justify-content:space-between;background:#2747d1;color:#fff;padding:10px 14px}" +
    "header h2{font-size:16px;margin:0}" +
    "header button{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.5);border-radius:6px;padding:2px 8px;font:inherit;font-size:13px;cursor:pointer}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7fb}" +
    ".msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}" +
    ".msg.customer{align-self:flex-end;background:#2747d1;color:#fff;border-bottom-right-radius:3px}" +
    ".msg.agent{align-self:flex-start;background:#fff;border:1px solid #dde1ee;border-bottom-left-radius:3px}" +
    ".msg.system{align-self:center;background:#fff4e0;border:1px solid #f0c36d;font-size:13px}" +
    ".msg.agent.streaming::after{content:'\\2026';opacity:.6}" +
    ".approval{align-self:stretch;background:#fff;border:2px solid #2747d1;border-radius:10px;padding:10px}" +
    ".approval p{margin:0 0 8px}" +
    ".approval button{margin-right:8px;border-radius:6px;padding:6px 12px;font:inherit;cursor:pointer;border:1px solid #2747d1}" +
    ".approval .yes{background:#2747d1;color:#fff}.approval .no{background:#fff;color:#2747d1}" +
    ".handoff{background:#e8f6ee;border-top:1px solid #9fd3b4;color:#145a32;padding:8px 12px;font-size:13px}" +
    ".handoff[hidden]{display:none}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #dde1ee;background:#fff}" +
    "textarea{flex:1;resize:none;border:1px solid #c5cbe0;border-radius:8px;padding:8px;font:inherit;height:40px}" +
    "form button{border:0;border-radius:8px;background:#2747d1;color:#fff;padding:0 14px;font:inherit;font-weight:600;cursor:pointer}" +
    "form button:disabled{opacity:.5;cursor:default}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    "</style>" +
    "<button class='launcher' type='button' aria-expanded='false' aria-controls='sa-panel'>Chat with us</button>" +
    "<section class='panel' id='sa-panel' role='dialog' aria-modal='false' aria-labelledby='sa-title' hidden>" +
    "<header><h2 id='sa-title'></h2><span><button type='button' class='new' title='Start a new conversation'>New</button> " +
    "<button type='button' class='close' aria-label='Close chat'>&#x2715;</button></span></header>" +
    "<div class='log' role='log' aria-live='polite' aria-relevant='additions text' aria-label='Conversation'></div>" +
    "<div class='handoff' role='status' hidden></div>" +
    "<form><label class='sr' for='sa-input'>Your message</label>" +
    "<textarea id='sa-input' rows='1' maxlength='4000' placeholder='Type your message…'></textarea>" +
    "<button type='submit'>Send</button></form></section>";

  var launcher = root.querySelector(".launcher");
  var panel = root.querySelector(".panel");
  var log = root.querySelector(".log");
  var banner = root.querySelector(".handoff");
  var form = root.querySelector("form");
  var input = root.querySelector("textarea");
  var send = root.querySelector("form button");
  root.querySelector("#sa-title").textContent = title;

  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(storeKey) || "null"); } catch (e) { saved = null; }
  var threadId = saved && saved.thread || null;
  var visitor = saved && saved.visitor || null;
  var busy = false;
  var bubbles = {}; // message id -> element (streamed replies)

  function headers(extra) {
    var h = { "Content-Type": "application/json", "X-Api-Key": key };
    if (visitor) h["X-Visitor-Token"] = visitor;
    for (var k in extra || {}) h[k] = extra[k];
    return h;
  }

  function forgetThread() {
    sessionStorage.removeItem(storeKey);
    threadId = null; visitor = null;
  }

  function add(role, text) {
    var el = document.createElement("div");
    el.className = "msg " + role;
    el.textContent = text;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    log.setAttribute("aria-busy", value ? "true" : "false");
    root.querySelectorAll(".approval button").forEach(function (b) { b.disabled = value; });
  }

  function open(value) {
    panel.hidden = !value;
    launcher.setAttribute("aria-expanded", value ? "true" : "false");
    if (value) input.focus(); else launcher.focus();
  }

  function showHandoff() {
    banner.hidden = false;
    banner.textContent =
      "A colleague is joining. They can see everything we have discussed, so you will not need to repeat yourself.";
    log.scrollTop = log.scrollHeight;
  }

  function clearApprovals() {
    root.querySelectorAll(".approval").forEach(function (el) { el.remove(); });
  }

  function showApproval(interrupt) {
    clearApprovals();
    var request = (interrupt.value && interrupt.value.action_requests || [])[0];
    if (!request) return;
    var card = document.createElement("div");
    card.className = "approval";
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", "Confirm the proposed action");
    var p = document.createElement("p");
    p.textContent = "Shall I go ahead? (" + (request.args && request.args.target_label || request.name) + ")";
    var yes = document.createElement("button");
    yes.type = "button"; yes.className = "yes"; yes.textContent = "Yes, go ahead";
    var no = document.createElement("button");
    no.type = "button"; no.className = "no"; no.textContent = "No, don't";
    yes.addEventListener("click", function () { decide("approve", yes.textContent); });
    no.addEventListener("click", function () { decide("reject", no.textContent); });
    card.appendChild(p); card.appendChild(yes); card.appendChild(no);
    log.appendChild(card);
    log.scrollTop = log.scrollHeight;
  }

  function render(values) {
    if (values.handoff) showHandoff();
    var interrupts = values.__interrupt__ || [];
    if (interrupts.length) showApproval(interrupts[0]); else clearApprovals();
  }

  function onMessageChunk(message) {
    if (!message || (message.type !== "AIMessageChunk" && message.type !== "ai")) return;
    var id = message.id || "current";
    var el = bubbles[id];
    if (!el) { el = bubbles[id] = add("agent", ""); el.classList.add("streaming"); }
    el.textContent = message.type === "ai" ? message.content : el.textContent + message.content;
    log.scrollTop = log.scrollHeight;
  }

  function finishReply(values) {
    var ai = (values.messages || []).filter(function (m) { return m.type === "ai"; });
    var last = ai[ai.length - 1];
    var shown = false;
    for (var id in bubbles) {
      bubbles[id].classList.remove("streaming");
      if (last && (id === last.id || id === "current")) { bubbles[id].textContent = last.content; shown = true; }
    }
    if (last && !shown && !Object.keys(bubbles).length) add("agent", last.content);
    bubbles = {};
    log.scrollTop = log.scrollHeight;
  }

  // Server-sent events from a fetch response: yields {event, data, id}.
  async function* sse(response) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        var ev = { event: "message", data: "", id: null };
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) ev.event = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) ev.data += line.slice(5).trim();
          else if (line.indexOf("id:") === 0) ev.id = line.slice(3).trim();
        });
        if (ev.data) yield ev;
      }
    }
  }

  async function ensureThread() {
    if (threadId) return threadId;
    var r = await fetch(api + "/threads", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ metadata: { source: "widget", channel: channel } }),
    });
    if (!r.ok) throw new Error("could not start a conversation (" + r.status + ")");
    var created = await r.json();
    threadId = created.thread_id;
    visitor = created.visitor_token || r.headers.get("X-Visitor-Token");
    sessionStorage.setItem(storeKey, JSON.stringify({ thread: threadId, visitor: visitor }));
    return threadId;
  }

  async function startRun(body) {
    var thread = await ensureThread();
    var response = await fetch(api + "/threads/" + thread + "/runs/stream",
                               { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if ((response.status === 404 || response.status === 403) && !body.command) {
      // the conversation is gone, or is not this visitor's or this signed-in customer's: start
      // a new one for this message
      forgetThread();
      thread = await ensureThread();
      response = await fetch(api + "/threads/" + thread + "/runs/stream",
                             { method: "POST", headers: headers(), body: JSON.stringify(body) });
    }
    return { thread: thread, response: response };
  }

  // Run one turn and follow its stream; rejoin it after a dropped connection.
  async function run(payload) {
    setBusy(true);
    var runId = null, lastId = null, ended = false, values = null, attempts = 0;
    try {
      var body = { assistant_id: "support_agent", stream_mode: ["values", "messages-tuple"],
                   context: { channel: channel } };
      if (token) body.context.customer_token = token;
      for (var k in payload) body[k] = payload[k];
      var started = await startRun(body);
      var thread = started.thread, response = started.response;
      while (!ended) {
        if (!response.ok) {
          var problem = await response.json().catch(function () { return {}; });
          if (response.status === 409 && problem.error && problem.error.code === "SESSION_ENDED") {
            forgetThread();
          }
          throw new Error(problem.error && problem.error.message || ("error " + response.status));
        }
        var where = response.headers.get("Content-Location");
        if (where && !runId) runId = where.split("/").pop();
        try {
          for await (var ev of sse(response)) {
            if (ev.id) lastId = ev.id;
            var data = JSON.parse(ev.data);
            if (ev.event === "metadata") runId = data.run_id;
            else if (ev.event === "messages") onMessageChunk(data[0]);
            else if (ev.event === "values") { values = data; render(data); }
            else if (ev.event === "error") add("system", "Sorry, something went wrong: " + data.message);
            else if (ev.event === "end") ended = true;
          }
          if (!ended) throw new Error("stream closed early");
        } catch (dropped) {
          if (ended || !runId || ++attempts > RECONNECTS) throw dropped;
          await new Promise(function (ok) { setTimeout(ok, 300 * attempts); });
          var h = headers(); if (lastId) h["Last-Event-ID"] = lastId;
          response = await fetch(api + "/threads/" + thread + "/runs/" + runId + "/stream", { headers: h });
        }
      }
      if (values) finishReply(values);
    } catch (err) {
      for (var id in bubbles) bubbles[id].classList.remove("streaming");
      bubbles = {};
      add("system", "We could not reach support: " + err.message + ". Please try again.");
    } finally {
      setBusy(false);
    }
  }

  function decide(type, label) {
    if (busy) return;
    add("customer", label);
    clearApprovals();
    run({ command: { resume: { decisions: [{ type: type }] } } });
  }

  async function restore() {
    if (!threadId) return;
    try {
      var r = await fetch(api + "/threads/" + threadId + "/state", { headers: headers() });
      if (r.status === 404) { forgetThread(); return; }
      var state = await r.json();
      (state.values.messages || []).forEach(function (m) {
        if (m.type === "human" && m.content.charAt(0) !== "(") add("customer", m.content);
        else if (m.type === "ai") add("agent", m.content);
      });
      render(state.values);
    } catch (err) { /* a fresh conversation starts on the next message */ }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    add("customer", text);
    run({ input: { messages: [{ role: "user", content: text }] } });
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  launcher.addEventListener("click", function () { open(panel.hidden); });
  root.querySelector(".close").addEventListener("click", function () { open(false); });
  root.querySelector(".new").addEventListener("click", function () {
    forgetThread();
    log.textContent = ""; banner.hidden = true; input.focus();
  });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") open(false); });

  restore();
  if (script.getAttribute("data-open") === "true") open(true);
})();
