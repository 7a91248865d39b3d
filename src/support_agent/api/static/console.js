/*
 * support-agent: the human agents' console. Signs in with an agent (or secret) key kept in
 * sessionStorage; follows the handoff queue live (server-sent events over fetch, since
 * EventSource cannot send the key), shows a handoff's full panel, the customer's four memory
 * layers and sentiment trend, the conversation live, and resolves the handoff. Every value from
 * the server is set as text, never as HTML. No key ever goes in a URL. What the customer said
 * about themselves (L4 customerClaims) is shown as "customer says (date)", never as a fact. A
 * feed that ends with an UNAUTHORIZED error (the key was revoked) or answers 401 signs out.
 */
(function () {
  "use strict";
  var KEY = "sa_console_key";
  var key = sessionStorage.getItem(KEY);
  var current = null;       // the handoff shown
  var conversation = null;  // AbortController of the live conversation feed
  var $ = function (id) { return document.getElementById(id); };

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({ Authorization: "Bearer " + key }, options.headers || {});
    return fetch(path, options);
  }

  function text(el, value) { el.textContent = value == null || value === "" ? "—" : String(value); return el; }
  function make(tag, cls, value) { var el = document.createElement(tag); if (cls) el.className = cls; if (value !== undefined) text(el, value); return el; }
  function money(v) { return v == null ? null : "$" + Number(v).toLocaleString(undefined, { maximumFractionDigits: 0 }); }
  function pct(v) { return v == null ? null : Math.round(Number(v) * 100) + "%"; }
  function short(v) {
    if (v == null) return "—";
    var s = typeof v === "string" ? v : JSON.stringify(v);
    return s.length > 220 ? s.slice(0, 217) + "…" : s;
  }

  function Revoked() { this.name = "Revoked"; }

  // Server-sent events from a fetch response (with the key), until aborted.
  async function follow(path, onEvent, signal) {
    var r = await api(path, { signal: signal });
    if (r.status === 401) throw new Revoked();
    if (!r.ok) throw new Error("feed " + path + ": " + r.status);
    var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) return;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, cut), ev = "message", data = "";
        buffer = buffer.slice(cut + 2);
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) ev = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
        });
        if (!data) continue;
        var parsed = JSON.parse(data);
        if (ev === "error" && parsed.error && parsed.error.code === "UNAUTHORIZED") throw new Revoked();
        onEvent(ev, parsed);
      }
    }
  }

  async function keepFollowing(path, onEvent, signal, onState) {
    for (var attempt = 0; !signal.aborted; attempt++) {
      try { onState && onState("live"); await follow(path, onEvent, signal); attempt = 0; }
      catch (err) {
        if (signal.aborted) return;
        if (err instanceof Revoked) { signOut("This key was revoked or is no longer valid."); return; }
        onState && onState("reconnecting…");
      }
      await new Promise(function (ok) { setTimeout(ok, Math.min(5000, 500 * (attempt + 1))); });
    }
  }

  function renderQueue(queue) {
    var list = $("queue-list");
    list.textContent = "";
    text($("queue-count"), queue.data.length);
    queue.data.forEach(function (h) {
      var item = make("li");
      var b = make("button");
      b.type = "button";
      b.dataset.id = h.id;
      if (current && current.id === h.id) b.setAttribute("aria-current", "true");
      var header = h.header || {};
      var name = make("div", "name", header.name || "unidentified customer");
      if (header.tier) name.appendChild(make("span", "badge tier", header.tier));
      if (header.vip) name.appendChild(make("span", "badge vip", "VIP"));
      b.appendChild(name);
      b.appendChild(make("div", "meta", h.reason + " · " + new Date(h.createdAt).toLocaleTimeString()));
      b.addEventListener("click", function () { show(h.id); });
      item.appendChild(b);
      list.appendChild(item);
    });
  }

  function trend(points) {
    var box = $("trend");
    box.textContent = "";
    if (!points.length) { text($("trend-note"), "No finished conversations with a sentiment yet."); return; }
    var w = 260, h = 80, pad = 8, ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    svg.setAttribute("role", "img");
    var x = function (i) { return points.length === 1 ? w / 2 : pad + i * (w - 2 * pad) / (points.length - 1); };
    var y = function (s) { return pad + (1 - (s + 1) / 2) * (h - 2 * pad); };
    var zero = document.createElementNS(ns, "line");
    zero.setAttribute("class", "zero"); zero.setAttribute("x1", 0); zero.setAttribute("x2", w);
    zero.setAttribute("y1", y(0)); zero.setAttribute("y2", y(0)); svg.appendChild(zero);
    var path = document.createElementNS(ns, "path");
    path.setAttribute("class", "line-path");
    path.setAttribute("d", points.map(function (p, i) { return (i ? "L" : "M") + x(i) + " " + y(p.sentiment); }).join(" "));
    svg.appendChild(path);
    points.forEach(function (p, i) {
      var c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", x(i)); c.setAttribute("cy", y(p.sentiment)); c.setAttribute("r", 3);
      var t = document.createElementNS(ns, "title");
      t.textContent = p.at.slice(0, 10) + " " + p.channel + ": " + p.sentiment;
      c.appendChild(t); svg.appendChild(c);
    });
    var label = "Sentiment over " + points.length + " conversations, from " +
      points[0].sentiment + " to " + points[points.length - 1].sentiment;
    svg.setAttribute("aria-label", label);
    box.appendChild(svg);
    text($("trend-note"), label + " (−1 negative … +1 positive).");
  }

  // The customer's own claims: their word, marked with its source and date, never a fact.
  function claims(dl, list) {
    dl.appendChild(make("dt", null, "customer says"));
    if (!list || !list.length) { dl.appendChild(make("dd", null, "nothing")); return; }
    list.slice().reverse().slice(0, 8).forEach(function (c) {
      var dd = make("dd", "claim");
      dd.appendChild(make("span", "says", "customer says" + (c.at ? " (" + String(c.at).slice(0, 10) + ")" : "") + ": "));
      dd.appendChild(make("q", null, c.text));
      dl.appendChild(dd);
    });
  }

  function layer(title, value) {
    var el = make("div", "layer");
    el.appendChild(make("h3", null, title));
    var dl = make("dl");
    if (Array.isArray(value)) {
      value.slice(0, 5).forEach(function (e, i) {
        dl.appendChild(make("dt", null, (e.createdAt || "").slice(0, 10) + " " + (e.channel || "") || "#" + (i + 1)));
        dl.appendChild(make("dd", null, short(e.summary || e)));
      });
      if (!value.length) dl.appendChild(make("dd", null, "none yet"));
    } else if (value && typeof value === "object") {
      Object.keys(value).slice(0, 12).forEach(function (k) {
        if (k === "personalDetails") {  // the same claims as customerClaims, as text
          if (!value.customerClaims && value[k]) claims(dl, [{ text: value[k] }]);
          return;
        }
        if (k === "customerClaims") { claims(dl, value[k]); return; }
        dl.appendChild(make("dt", null, k));
        dl.appendChild(make("dd", null, short(value[k])));
      });
    } else dl.appendChild(make("dd", null, "not available"));
    el.appendChild(dl);
    return el;
  }

  async function show(id) {
    var r = await api("/api/tenants/me/handoffs/" + encodeURIComponent(id));
    if (!r.ok) return;
    var h = await r.json();
    current = h;
    document.querySelectorAll("#queue-list button").forEach(function (b) {
      b.setAttribute("aria-current", b.dataset.id === id ? "true" : "false");
    });
    var p = h.panel, head = p.header || {};
    $("empty").hidden = true; $("panel").hidden = false;
    text($("customer-name"), head.name || "unidentified customer");
    text($("customer-tier"), head.tier);
    $("customer-vip").hidden = !head.vip;
    text($("stat-tenure"), head.tenure_days == null ? null : head.tenure_days + " days");
    text($("stat-clv"), money(head.clv));
    text($("stat-churn"), pct(head.churn_risk));
    text($("stat-sentiment"), head.sentiment == null ? null : Number(head.sentiment).toFixed(2));
    text($("stat-verified"), head.verified ? "yes" : "no");
    text($("stat-channel"), p.channel);
    text($("summary"), p.summary);
    var issue = p.current_issue;
    text($("current-issue"), issue ? (issue.subject_label || "issue") + ": " + (issue.description || "") +
      " (contact #" + (issue.contacts || 1) + ")" : null);
    var pending = p.pending_action;
    text($("pending-action"), pending ? pending.action + " " + short((pending.target || {}).label || "") : null);
    var tried = $("tried"); tried.textContent = "";
    (p.tried || []).forEach(function (t) { tried.appendChild(make("li", null, t)); });
    var timeline = $("timeline"); timeline.textContent = "";
    (p.timeline || []).slice(0, 12).forEach(function (t) {
      timeline.appendChild(make("li", null, (t.at || "").slice(0, 16).replace("T", " ") + " · " + t.kind +
        (t.channel ? " (" + t.channel + ")" : "") + ": " + (t.summary || "in progress") + (t.outcome ? " → " + t.outcome : "")));
    });
    var checks = $("verification"); checks.textContent = "";
    (h.verification_attempts || []).slice(0, 10).forEach(function (a) {
      checks.appendChild(make("li", null, (a.at || "").slice(0, 16).replace("T", " ") + " · " + a.result +
        " (" + (a.factors || []).join(" + ").replace(/_/g, " ") + ", " + a.channel + ")"));
    });
    if (!(h.verification_attempts || []).length) checks.appendChild(make("li", "meta", "No verification attempts."));
    var res = $("resolutions"), record = $("record");
    res.textContent = ""; record.length = 1;
    (p.suggested_resolutions || []).forEach(function (s) {
      var row = make("div", "res");
      row.appendChild(make("span", null, s.title));
      row.appendChild(make("span", "rate", pct(s.success_rate) + " success"));
      res.appendChild(row);
      var opt = make("option", null, s.title); opt.value = s.id; record.appendChild(opt);
    });
    if (!(p.suggested_resolutions || []).length) res.appendChild(make("p", "meta", "No past resolution matches."));
    var chips = $("quick-actions"); chips.textContent = "";
    (p.quick_actions || []).forEach(function (a) {
      chips.appendChild(make("span", "chip", a.action + (a.target && a.target.label ? ": " + a.target.label : "")));
    });
    var memory = $("memory"); memory.textContent = "";
    var trendBox = $("trend"); trendBox.textContent = ""; text($("trend-note"), "");
    if (head.customer_id) {
      var profile = await api("/api/tenants/me/customers/" + encodeURIComponent(head.customer_id));
      if (profile.ok) {
        var m = (await profile.json()).memory || {};
        memory.appendChild(layer("L1 identity", m.l1_identity));
        memory.appendChild(layer("L2 history", m.l2_history));
        memory.appendChild(layer("L3 episodes", m.l3_episodes));
        memory.appendChild(layer("L4 preferences and mood", m.l4_prefs_mood));
      }
      var s = await api("/api/tenants/me/customers/" + encodeURIComponent(head.customer_id) + "/sentiment");
      if (s.ok) trend((await s.json()).data);
    } else {
      var said = make("div", "layer");
      said.appendChild(make("h3", null, "Customer says (their word, not on file)"));
      var saidList = make("dl"); claims(saidList, (p.customer_says || []).slice().reverse());
      said.appendChild(saidList); memory.appendChild(said);
      memory.appendChild(layer("Panel memory", p.memory));
      text($("trend-note"), "Unverified customer: no history to chart.");
    }
    var resolved = h.status === "resolved";
    text($("resolve-status"), resolved ? "Resolved: " + h.resolution + " (satisfaction " + h.satisfaction + "/5)" : "Open");
    $("resolve").hidden = resolved;
    followConversation(p.session_id);
  }

  function followConversation(sessionId) {
    if (conversation) conversation.abort();
    conversation = new AbortController();
    var box = $("conversation"); box.textContent = "";
    keepFollowing("/api/tenants/me/sessions/" + encodeURIComponent(sessionId) + "/messages/stream",
      function (ev, m) {
        if (ev !== "message") return;
        var line = make("div", "line " + m.role, (m.role === "customer" ? "Customer: " : "Agent: ") + m.content);
        line.dataset.seq = m.seq;
        box.appendChild(line); box.scrollTop = box.scrollHeight;
      }, conversation.signal);
  }

  $("resolve").addEventListener("submit", async function (e) {
    e.preventDefault();
    if (!current) return;
    var body = { resolution: $("resolution").value.trim(), satisfaction: Number($("satisfaction").value),
                 issue_resolved: $("issue-resolved").checked };
    if ($("record").value) body.resolution_record_id = $("record").value;
    var r = await api("/api/tenants/me/handoffs/" + encodeURIComponent(current.id) + "/resolve", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!r.ok) { text($("resolve-status"), "Could not resolve: " + ((await r.json()).error || {}).message); return; }
    $("resolution").value = "";
    await show(current.id);
  });

  var feeds = [];  // AbortControllers of the open feeds

  function signOut(message) {
    feeds.forEach(function (f) { f.abort(); }); feeds = [];
    if (conversation) { conversation.abort(); conversation = null; }
    sessionStorage.removeItem(KEY); key = null;
    text($("signin-error"), message);
    $("signin").hidden = false; $("app").hidden = true;
  }

  async function start() {
    var probe = await api("/api/tenants/me/handoffs?status=open&limit=1");
    if (!probe.ok) {
      signOut(probe.status === 403 ? "This key cannot open the console (use an agent key)." : "Invalid key.");
      return;
    }
    $("signin").hidden = true; $("app").hidden = false;
    text($("who"), "signed in · key " + key.slice(0, 6) + "…");
    var queueFeed = new AbortController();
    feeds.push(queueFeed);
    keepFollowing("/api/tenants/me/handoffs/stream", function (ev, data) {
      if (ev === "queue") renderQueue(data);
    }, queueFeed.signal, function (state) { text($("queue-state"), state); });
  }

  $("signin").addEventListener("submit", function (e) {
    e.preventDefault();
    key = $("agent-key").value.trim();
    sessionStorage.setItem(KEY, key);
    start();
  });
  if (key) start();
})();
