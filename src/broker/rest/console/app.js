// shardmq web console: one page, no dependencies. Reads the REST API of the
// broker that serves it (/v1/...); with ACL on, signs each request with the
// account's keys as RocketMQ 5 clients do (x-mq-date-time, HMAC-SHA1).
// Changes (dead-letter resend) are offered to admin accounts only.
"use strict";

const state = {
  session: null,
  timer: null,
  stats: null,
  // group -> [[ms, lag], ...] sampled while the console is open
  lagHistory: new Map(),
  // topic -> {t, total} for rates
  topicSeen: new Map(),
};
const REFRESH_MS = 3000;
const HISTORY_POINTS = 600;

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtInt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
const fmtUs = (us) => (us == null ? "–" : us >= 1000000 ? (us / 1e6).toFixed(2) + " s" : us >= 1000 ? (us / 1000).toFixed(2) + " ms" : us + " µs");
const fmtBytes = (b) => (b >= 1 << 30 ? (b / (1 << 30)).toFixed(2) + " GiB" : b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(1) + " KiB" : b + " B");
const fmtTime = (ms) => (ms > 0 ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "–");
const main = () => document.getElementById("main");
const enc = encodeURIComponent;

// ---- API ----------------------------------------------------------------

async function signHeaders() {
  const ak = sessionStorage.getItem("shardmq.ak");
  const sk = sessionStorage.getItem("shardmq.sk");
  if (!ak || !sk) return {};
  if (!window.crypto || !crypto.subtle) throw new Error("signing needs a secure context: open the console over https or on localhost");
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  const dt = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(sk), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(dt)));
  const hex = Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
  return { "x-mq-date-time": dt, authorization: `MQv2-HMAC-SHA1 Credential=${ak}, SignedHeaders=x-mq-date-time, Signature=${hex}` };
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(method, path, body) {
  const headers = await signHeaders();
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => null);
  if (r.status === 401) {
    showLogin();
  }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

function showLogin(message) {
  const dlg = document.getElementById("login");
  document.getElementById("login-error").textContent = message || "";
  if (!dlg.open) dlg.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  const f = ev.target;
  sessionStorage.setItem("shardmq.ak", f.ak.value.trim());
  sessionStorage.setItem("shardmq.sk", f.sk.value);
  try {
    await loadSession();
    route();
  } catch (e) {
    ev.preventDefault();
    document.getElementById("login-error").textContent = e.message;
  }
});

async function loadSession() {
  state.session = await api("GET", "/v1/session");
  const s = state.session;
  const who = s.acl ? (s.access_key ? `${esc(s.access_key)}${s.admin ? " (admin)" : " (read-only)"}` : "white-listed") : "ACL off";
  document.getElementById("session").innerHTML = `${esc(s.cluster)} / ${esc(s.broker)} · ${s.shards} shards · ${who}`;
}

const canChange = () => !!state.session?.admin;

// ---- charts (inline SVG) -------------------------------------------------

function histogramSvg(op, bounds) {
  // Cumulative counts at each bound -> per-bucket counts.
  const counts = op.buckets.map((c, i) => c - (i ? op.buckets[i - 1] : 0));
  const over = op.count - (op.buckets.length ? op.buckets[op.buckets.length - 1] : 0);
  const all = counts.concat([Math.max(0, over)]);
  const max = Math.max(1, ...all);
  const w = 16, h = 70, gap = 2;
  const bars = all.map((c, i) => {
    const bh = Math.round((c / max) * (h - 14));
    const label = i < bounds.length ? `≤ ${fmtUs(bounds[i])}` : `> ${fmtUs(bounds[bounds.length - 1])}`;
    return `<rect class="bar" x="${i * (w + gap)}" y="${h - 12 - bh}" width="${w}" height="${bh}"><title>${label}: ${c}</title></rect>`;
  });
  const width = all.length * (w + gap);
  return `<svg width="${width}" height="${h}" role="img" aria-label="${esc(op.op)} latency histogram">${bars.join("")}
    <line class="axis" x1="0" y1="${h - 12}" x2="${width}" y2="${h - 12}"/>
    <text x="0" y="${h - 1}">${fmtUs(bounds[0])}</text><text x="${width - 46}" y="${h - 1}">${fmtUs(bounds[bounds.length - 1])}+</text></svg>`;
}

function lineSvg(points, width = 640, height = 160) {
  if (points.length < 2) return `<p class="muted">Collecting samples (every ${REFRESH_MS / 1000} s while this page is open)…</p>`;
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const maxV = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => 40 + ((t - t0) / Math.max(1, t1 - t0)) * (width - 50);
  const y = (v) => height - 20 - (v / maxV) * (height - 30);
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  return `<svg width="${width}" height="${height}" role="img" aria-label="lag over time">
    <line class="axis" x1="40" y1="${height - 20}" x2="${width - 10}" y2="${height - 20}"/>
    <line class="axis" x1="40" y1="10" x2="40" y2="${height - 20}"/>
    <text x="2" y="14">${fmtInt(maxV)}</text><text x="2" y="${height - 22}">0</text>
    <text x="40" y="${height - 5}">${new Date(t0).toLocaleTimeString()}</text>
    <text x="${width - 70}" y="${height - 5}">${new Date(t1).toLocaleTimeString()}</text>
    <path class="line" d="${d}"/></svg>`;
}

// ---- data ------------------------------------------------------------------

async function refreshStats() {
  const s = await api("GET", "/v1/stats");
  state.stats = s;
  return s;
}

// A group's lag over every queue of the topics it consumes (what
// `shardmq admin consumer-progress` shows), kept for the lag chart.
async function groupProgress(group) {
  const p = await api("GET", `/v1/groups/${enc(group)}`);
  const h = state.lagHistory.get(group) || [];
  h.push([Date.now(), p.lag]);
  if (h.length > HISTORY_POINTS) h.shift();
  state.lagHistory.set(group, h);
  return p;
}

// ---- pages -----------------------------------------------------------------

async function pageCluster() {
  const s = await refreshStats();
  const totals = s.shards.reduce((a, sh) => {
    a.conns += sh.counters.connections_open;
    a.sends += sh.counters.sends;
    a.requests += Object.values(sh.counters.requests_by_code).reduce((x, y) => x + y, 0);
    return a;
  }, { conns: 0, sends: 0, requests: 0 });
  let html = `<h1>Cluster and shards</h1>
    <div class="cards">
      <div class="card"><div class="muted">Shards</div><div class="v" data-testid="shard-count">${s.shards.length}</div></div>
      <div class="card"><div class="muted">Open connections</div><div class="v">${fmtInt(totals.conns)}</div></div>
      <div class="card"><div class="muted">Requests</div><div class="v">${fmtInt(totals.requests)}</div></div>
      <div class="card"><div class="muted">Sends</div><div class="v" data-testid="sends-total">${fmtInt(totals.sends)}</div></div>
      <div class="card"><div class="muted">Alerts firing</div><div class="v ${s.alerts.some((a) => a.firing) ? "firing" : ""}">${s.alerts.filter((a) => a.firing).length}</div></div>
    </div>
    <table><thead><tr><th>Shard</th><th class="num">Connections</th><th class="num">Sends</th><th class="num">Send errors</th><th class="num">Bytes in</th><th class="num">Bytes out</th><th class="num">Queues</th><th class="num">Log written</th><th class="num">Log flushed</th><th>State</th></tr></thead><tbody>`;
  for (const sh of s.shards) {
    const g = sh.gauges, c = sh.counters;
    html += `<tr data-testid="shard-row-${sh.shard}"><td>${sh.shard}</td><td class="num">${fmtInt(c.connections_open)}</td><td class="num" data-testid="shard-sends-${sh.shard}">${fmtInt(c.sends)}</td><td class="num">${fmtInt(c.send_errors)}</td>
      <td class="num">${fmtBytes(c.bytes_in)}</td><td class="num">${fmtBytes(c.bytes_out)}</td><td class="num">${fmtInt(g.queues)}</td>
      <td class="num">${fmtBytes(g.log_write_offset)}</td><td class="num">${fmtBytes(g.log_flushed_offset)}</td>
      <td>${g.read_only_reason ? `<span class="error">read-only: ${esc(g.read_only_reason)}</span>` : '<span class="ok">writable</span>'}</td></tr>`;
  }
  html += `</tbody></table><h2>Latency per shard</h2><p class="muted">Percentiles since start; histograms of all requests (bars: requests per latency bucket). Refreshed every ${REFRESH_MS / 1000} s.</p>`;
  for (const sh of s.shards) {
    html += `<h2>Shard ${sh.shard}</h2><table><thead><tr><th>Operation</th><th class="num">Count</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">p99.9</th><th class="num">max</th><th>Histogram</th></tr></thead><tbody>`;
    for (const op of sh.ops.filter((o) => ["send", "pull", "flush", "cross_shard_hop"].includes(o.op))) {
      html += `<tr data-testid="op-${sh.shard}-${esc(op.op)}"><td>${esc(op.op)}</td><td class="num" data-testid="op-count-${sh.shard}-${esc(op.op)}">${fmtInt(op.count)}</td><td class="num">${fmtUs(op.p50_us)}</td><td class="num">${fmtUs(op.p90_us)}</td>
        <td class="num">${fmtUs(op.p99_us)}</td><td class="num">${fmtUs(op.p999_us)}</td><td class="num">${fmtUs(op.max_us)}</td><td><span class="hist">${histogramSvg(op, s.buckets_us)}</span></td></tr>`;
    }
    html += "</tbody></table>";
  }
  main().innerHTML = html;
}

async function pageTopics(param) {
  if (param) return pageTopic(param);
  const showAll = sessionStorage.getItem("shardmq.allTopics") === "1";
  const list = (await api("GET", "/v1/topics")).topics.filter((t) => showAll || t.kind === "normal");
  const status = await Promise.all(list.map((t) => api("GET", `/v1/topics/${enc(t.name)}`).catch(() => null)));
  const now = Date.now();
  let html = `<h1>Topics</h1><label style="flex-direction:row;gap:6px"><input type="checkbox" id="all-topics" ${showAll ? "checked" : ""}> show retry, DLQ and system topics</label>
    <table><thead><tr><th>Topic</th><th>Kind</th><th class="num">Read / write queues</th><th>Perm</th><th class="num">Messages</th><th class="num">Rate (msgs/s)</th><th>Last stored</th></tr></thead><tbody>`;
  list.forEach((t, i) => {
    const st = status[i];
    const total = st ? st.queues.reduce((a, q) => a + q.max_offset, 0) : null;
    const seen = state.topicSeen.get(t.name);
    let rate = "–";
    if (seen && total != null && now > seen.t) rate = ((total - seen.total) / ((now - seen.t) / 1000)).toFixed(1);
    if (total != null) state.topicSeen.set(t.name, { t: now, total });
    const last = st ? Math.max(0, ...st.queues.map((q) => q.last_update_ms)) : 0;
    html += `<tr data-testid="topic-row-${esc(t.name)}"><td><a class="link" href="#/topics/${enc(t.name)}">${esc(t.name)}</a></td><td>${esc(t.kind)}</td>
      <td class="num">${t.read_queues} / ${t.write_queues}</td><td>${t.perm & 4 ? "R" : "-"}${t.perm & 2 ? "W" : "-"}</td>
      <td class="num" data-testid="topic-messages-${esc(t.name)}">${st ? fmtInt(st.messages) : "–"}</td><td class="num">${rate}</td><td>${fmtTime(last)}</td></tr>`;
  });
  html += "</tbody></table>";
  main().innerHTML = html;
  document.getElementById("all-topics").addEventListener("change", (e) => {
    sessionStorage.setItem("shardmq.allTopics", e.target.checked ? "1" : "0");
    route();
  });
}

async function pageTopic(name) {
  const st = await api("GET", `/v1/topics/${enc(name)}`);
  let html = `<h1>Topic ${esc(name)}</h1><p><a class="link" href="#/topics">← all topics</a></p>
    <div class="cards"><div class="card"><div class="muted">Messages retained</div><div class="v" data-testid="topic-detail-messages">${fmtInt(st.messages)}</div></div>
    <div class="card"><div class="muted">Queues</div><div class="v">${st.read_queues} / ${st.write_queues}</div></div></div>
    <table><thead><tr><th class="num">Queue</th><th class="num">Min offset</th><th class="num">Max offset</th><th class="num">Messages</th><th>Last stored</th></tr></thead><tbody>`;
  for (const q of st.queues) {
    html += `<tr><td class="num">${q.queue_id}</td><td class="num">${fmtInt(q.min_offset)}</td><td class="num">${fmtInt(q.max_offset)}</td><td class="num">${fmtInt(q.messages)}</td><td>${fmtTime(q.last_update_ms)}</td></tr>`;
  }
  main().innerHTML = html + "</tbody></table>";
}

async function pageGroups(param) {
  if (param) return pageGroup(param);
  const [s, configured] = await Promise.all([refreshStats(), api("GET", "/v1/groups")]);
  const names = new Set(configured.groups.map((g) => g.name));
  for (const q of s.lag) if (!q.group.startsWith("%")) names.add(q.group);
  const cfg = new Map(configured.groups.map((g) => [g.name, g]));
  const sorted = [...names].sort();
  const progress = await Promise.all(sorted.map((g) => groupProgress(g).catch(() => null)));
  let html = `<h1>Consumer groups</h1>`;
  if (s.inconsistent_groups.length) {
    html += `<p class="warn" data-testid="inconsistent">⚠ Members subscribe differently in: ${s.inconsistent_groups.map(esc).join(", ")}</p>`;
  }
  html += `<table><thead><tr><th>Group</th><th class="num">Lag</th><th>Orderly</th><th class="num">Retry max</th><th>Subscriptions</th></tr></thead><tbody>`;
  sorted.forEach((g, i) => {
    const c = cfg.get(g);
    const lag = progress[i] ? progress[i].lag : null;
    const bad = s.inconsistent_groups.includes(g);
    html += `<tr data-testid="group-row-${esc(g)}"><td><a class="link" href="#/groups/${enc(g)}">${esc(g)}</a></td><td class="num" data-testid="group-lag-${esc(g)}">${fmtInt(lag)}</td>
      <td>${c ? (c.orderly ? "yes" : "no") : "–"}</td><td class="num">${c ? c.retry_max_times : "–"}</td><td>${bad ? '<span class="warn">⚠ inconsistent</span>' : '<span class="ok">consistent</span>'}</td></tr>`;
  });
  main().innerHTML = html + "</tbody></table>";
}

async function pageGroup(name) {
  const [s, prog, members] = await Promise.all([refreshStats(), groupProgress(name), api("GET", `/v1/groups/${enc(name)}/members`)]);
  const bad = s.inconsistent_groups.includes(name);
  let html = `<h1>Group ${esc(name)}</h1><p><a class="link" href="#/groups">← all groups</a></p>
    <div class="cards"><div class="card"><div class="muted">Lag</div><div class="v" data-testid="group-detail-lag">${fmtInt(prog.lag)}</div></div>
    <div class="card"><div class="muted">Online consumers</div><div class="v" data-testid="group-members">${members.online.length}</div></div>
    <div class="card"><div class="muted">Subscriptions</div><div class="v ${bad ? "warn" : "ok"}">${bad ? "inconsistent" : "consistent"}</div></div></div>`;
  if (bad) html += `<p class="warn">⚠ This group's members subscribe differently: each gets only the messages all of its rebalanced queues' subscriptions match.</p>`;
  html += `<h2>Lag over time</h2>${lineSvg(state.lagHistory.get(name) || [])}
    <h2>Members</h2><table><thead><tr><th>Client id</th><th>Address</th><th>Language</th><th class="num">Version</th></tr></thead><tbody>`;
  for (const m of members.online) html += `<tr><td>${esc(m.client_id)}</td><td>${esc(m.address)}</td><td>${esc(m.language)}</td><td class="num">${m.version}</td></tr>`;
  if (!members.online.length) html += `<tr><td colspan="4" class="muted">No consumer of this group is connected (REST and POP consumers do not stay connected).</td></tr>`;
  html += `</tbody></table><h2>Subscriptions</h2><table><thead><tr><th>Topic</th><th>Expression</th></tr></thead><tbody>`;
  for (const sub of members.subscriptions) html += `<tr><td>${esc(sub.topic)}</td><td>${esc(sub.expression)}</td></tr>`;
  html += `</tbody></table><h2>Per-queue progress</h2><table><thead><tr><th>Topic</th><th class="num">Queue</th><th class="num">Broker offset</th><th class="num">Consumer offset</th><th class="num">Lag</th><th>Last consumed</th></tr></thead><tbody>`;
  for (const q of prog.queues) {
    html += `<tr><td>${esc(q.topic)}</td><td class="num">${q.queue_id}</td><td class="num">${fmtInt(q.broker_offset)}</td><td class="num">${fmtInt(q.consumer_offset)}</td><td class="num">${fmtInt(q.lag)}</td><td>${fmtTime(q.last_consumed_ms)}</td></tr>`;
  }
  main().innerHTML = html + "</tbody></table>";
}

function messagesTable(msgs, withSelect) {
  let html = `<table><thead><tr>${withSelect ? "<th></th>" : ""}<th>Message id</th><th>Topic</th><th>Tags</th><th>Keys</th><th>Stored</th><th class="num">Queue / offset</th><th>Body</th></tr></thead><tbody>`;
  msgs.forEach((m, i) => {
    const preview = m.body_encoding === "text" ? m.body.slice(0, 80) : `(base64) ${m.body.slice(0, 60)}`;
    html += `<tr data-testid="message-row">${withSelect ? `<td><input type="checkbox" class="pick" value="${esc(m.message_id)}"></td>` : ""}
      <td><a class="link" data-detail="${i}">${esc(m.message_id)}</a></td><td>${esc(m.origin_topic || m.topic)}</td><td>${esc(m.tags)}</td><td>${esc((m.keys || []).join(" "))}</td>
      <td>${fmtTime(m.store_time_ms)}</td><td class="num">${m.queue_id} / ${m.queue_offset}</td><td data-testid="message-body">${esc(preview)}${m.body.length > 80 ? "…" : ""}</td></tr>`;
  });
  if (!msgs.length) html += `<tr><td colspan="${withSelect ? 8 : 7}" class="muted" data-testid="no-messages">No messages.</td></tr>`;
  return html + "</tbody></table><div id=\"detail\"></div>";
}

function wireDetails(msgs) {
  for (const a of main().querySelectorAll("a[data-detail]")) {
    a.addEventListener("click", () => {
      const m = msgs[Number(a.dataset.detail)];
      document.getElementById("detail").innerHTML = `<h2>Message ${esc(m.message_id)}</h2>
        <table><tbody>${Object.entries(m).filter(([k]) => k !== "body" && k !== "attributes").map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(Array.isArray(v) ? v.join(" ") : v)}</td></tr>`).join("")}
        ${Object.entries(m.attributes || {}).map(([k, v]) => `<tr><th>attribute ${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</tbody></table>
        <pre data-testid="message-full-body">${esc(m.body)}</pre>`;
    });
  }
}

async function pageMessages() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  main().innerHTML = `<h1>Find messages</h1>
    <form class="inline" id="find"><label>Topic <input name="topic" required value="${esc(q.get("topic") || "")}"></label>
    <label>Search by <select name="by"><option value="key" ${q.get("by") !== "id" ? "selected" : ""}>key</option><option value="id" ${q.get("by") === "id" ? "selected" : ""}>message id</option></select></label>
    <label>Key or id <input name="value" required value="${esc(q.get("value") || "")}"></label><button type="submit">Search</button></form><div id="results"></div>`;
  document.getElementById("find").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    location.hash = `#/messages?topic=${enc(f.topic.value)}&by=${f.by.value}&value=${enc(f.value.value)}`;
  });
  if (q.get("topic") && q.get("value")) {
    const r = await api("GET", `/v1/messages?topic=${enc(q.get("topic"))}&${q.get("by") === "id" ? "id" : "key"}=${enc(q.get("value"))}`);
    document.getElementById("results").innerHTML = `<p class="muted" data-testid="found-count">${r.messages.length} found</p>` + messagesTable(r.messages, false);
    wireDetails(r.messages);
  }
}

async function pageDlq(group) {
  const groups = (await api("GET", "/v1/groups")).groups.map((g) => g.name);
  main().innerHTML = `<h1>Dead letters</h1>
    <form class="inline" id="pick"><label>Group <input name="group" list="groups" required value="${esc(group || "")}"></label>
    <datalist id="groups">${groups.map((g) => `<option value="${esc(g)}">`).join("")}</datalist><button type="submit">Show</button></form><div id="dlq"></div>`;
  document.getElementById("pick").addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/dlq/${enc(ev.target.group.value)}`;
  });
  if (!group) return;
  const r = await api("GET", `/v1/groups/${enc(group)}/dlq?max=1000`);
  const box = document.getElementById("dlq");
  box.innerHTML = `<p class="muted"><span data-testid="dlq-count">${r.messages.length}</span> dead letter(s) in ${esc(r.topic)}</p>` + messagesTable(r.messages, true) +
    (canChange() ? `<button id="resend" disabled>Resend selected to their topic</button> <span id="resend-result"></span>` : `<p class="muted">Read-only: resending needs an admin account.</p>`);
  wireDetails(r.messages);
  const btn = document.getElementById("resend");
  if (!btn) return;
  const picks = () => [...box.querySelectorAll("input.pick:checked")].map((c) => c.value);
  box.addEventListener("change", () => (btn.disabled = picks().length === 0));
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      const res = await api("POST", `/v1/groups/${enc(group)}/dlq/resend`, { message_ids: picks() });
      document.getElementById("resend-result").innerHTML = `<span class="ok" data-testid="resend-result">Resent ${res.resent.length}: ${res.resent.map((x) => `${esc(x.message_id)} → ${esc(x.topic)}`).join(", ")}</span>`;
    } catch (e) {
      document.getElementById("resend-result").innerHTML = `<span class="error">${esc(e.message)}</span>`;
    }
  });
}

async function pageAlerts() {
  const s = await refreshStats();
  let html = `<h1>Alerts</h1><p class="muted">Rules are managed with <code>shardmq admin alert add|rm</code>; evaluated by the broker.</p>
    <table><thead><tr><th>Rule</th><th>Metric</th><th>Severity</th><th class="num">Threshold</th><th class="num">Value</th><th>State</th><th>Since</th><th class="num">Notifications</th></tr></thead><tbody>`;
  for (const a of s.alerts) {
    html += `<tr data-testid="alert-row-${esc(a.name)}"><td>${esc(a.name)}</td><td>${esc(a.metric)}</td><td>${esc(a.severity)}</td><td class="num">${a.threshold}</td>
      <td class="num">${a.value == null ? "–" : a.value}</td><td data-testid="alert-state-${esc(a.name)}" class="${a.firing ? "firing" : "ok"}">${a.firing ? "FIRING" : "ok"}</td>
      <td>${fmtTime(a.firingSince)}</td><td class="num">${a.notifications}</td></tr>`;
  }
  if (!s.alerts.length) html += `<tr><td colspan="8" class="muted">No alert rules.</td></tr>`;
  main().innerHTML = html + "</tbody></table>";
}

// ---- routing -----------------------------------------------------------------

const PAGES = { cluster: pageCluster, topics: pageTopics, groups: pageGroups, messages: pageMessages, dlq: pageDlq, alerts: pageAlerts };
const LIVE = new Set(["cluster", "topics", "groups", "alerts"]);

async function route() {
  clearTimeout(state.timer);
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  const name = PAGES[page] ? page : "cluster";
  const param = rest.length ? decodeURIComponent(rest.join("/")) : null;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  const run = async () => {
    try {
      if (!state.session) await loadSession();
      await PAGES[name](param);
      document.body.dataset.loaded = name;
    } catch (e) {
      if (e.status !== 401) main().innerHTML = `<p class="error" data-testid="page-error">${esc(e.message)}</p>`;
      document.body.dataset.loaded = "error";
    }
    const focused = document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName);
    if (LIVE.has(name) && location.hash.replace(/^#\/?/, "").split("?")[0] === path && !focused) {
      state.timer = setTimeout(run, REFRESH_MS);
    }
  };
  await run();
}

window.addEventListener("hashchange", route);
route();
