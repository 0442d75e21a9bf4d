"use strict";
// Vigil's dashboard: plain JavaScript over the HTTP API, no build step.
const $ = (s) => document.querySelector(s);
const main = $("#main");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (n) => Number(n || 0).toLocaleString();
// Go's zero time ("0001-01-01T00:00:00Z") means it never happened.
const when = (t) => (t && new Date(t).getUTCFullYear() > 1 ? new Date(t).toLocaleString() : "never");
// A name as people write it: without the DNS root's final dot.
const host = (n) => String(n || "").replace(/\.$/, "");
const say = (msg) => { $("#status").textContent = msg; };

let pendingLogin = null;
async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts });
  if (r.status === 401) {
    await login();
    return api(path, opts);
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function login() {
  if (pendingLogin) return pendingLogin;
  pendingLogin = new Promise((resolve, reject) => {
    const d = $("#login");
    $("#login-cancel").onclick = () => { d.close(); pendingLogin = null; reject(new Error("not logged in")); };
    $("#login-form").onsubmit = async (ev) => {
      ev.preventDefault();
      const r = await fetch("/api/v1/login", { method: "POST", body: new URLSearchParams({ token: $("#token").value }) });
      if (r.ok) { d.close(); pendingLogin = null; $("#token").value = ""; resolve(); }
      else say("Wrong token.");
    };
    d.showModal();
    $("#token").focus();
  });
  return pendingLogin;
}
const post = (path, method = "POST") => api(path, { method });

// chart draws queries and blocked lookups as bars, one per slot of the
// window (empty slots too, so a day of data is not a sliver at the edge),
// with the count scale on the left and times along the bottom. slots:
// {n, ms (one slot's length), key (a point's slot start as a string),
// label (a slot's axis label, or "" for none)}.
function chart(points, label, slots) {
  const W = 760, H = 200, left = 48, bottom = 22, top = 8, w = W - left - 8, h = H - top - bottom;
  const end = Math.floor(Date.now() / slots.ms) * slots.ms;
  const starts = Array.from({ length: slots.n }, (_, i) => end - (slots.n - 1 - i) * slots.ms);
  const byKey = new Map(points.map((p) => [slots.key(new Date(p.hour).getTime()), p]));
  const data = starts.map((t) => byKey.get(slots.key(t)) || { hour: new Date(t).toISOString(), queries: 0, blocked: 0 });
  const max = niceMax(Math.max(1, ...data.map((p) => p.queries)));
  const bw = w / slots.n, y = (v) => top + h - (v / max) * h;
  const bars = data.map((p, i) => {
    const x = left + i * bw, bwid = Math.max(bw - 2, 1);
    const tip = `${when(p.hour)}: ${fmt(p.queries)} queries, ${fmt(p.blocked)} blocked`;
    return `<g tabindex="0" aria-label="${esc(tip)}"><title>${esc(tip)}</title>` +
      `<rect class="q" x="${x}" y="${y(p.queries)}" width="${bwid}" height="${top + h - y(p.queries)}"></rect>` +
      `<rect class="b" x="${x}" y="${y(p.blocked)}" width="${bwid}" height="${top + h - y(p.blocked)}"></rect></g>`;
  }).join("");
  const ticks = [0, max / 2, max].map((v) => `<line class="grid" x1="${left}" x2="${left + w}" y1="${y(v)}" y2="${y(v)}"></line>` +
    `<text class="axis" x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`).join("");
  const times = starts.map((t, i) => slots.label(new Date(t), i) &&
    `<text class="axis" x="${left + i * bw + bw / 2}" y="${H - 6}" text-anchor="middle">${esc(slots.label(new Date(t), i))}</text>`).join("");
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}">${ticks}${bars}${times}</svg>
    <p class="legend"><span class="q">queries</span><span class="b">blocked</span></p>`;
}
// vendorColors gives each vendor a colour of its own, the same on every
// chart of the page.
const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const vendorColor = (vendors) => (v) => palette[Math.max(0, vendors.indexOf(v)) % palette.length];
// stacked draws a device's blocked lookups per day as bars stacked by
// vendor (days: [{day, vendors: {vendor: n}}], oldest first), with a count
// scale, day labels, a legend and a tooltip per piece.
function stacked(days, label) {
  const W = 760, H = 220, left = 48, bottom = 22, top = 8, w = W - left - 8, h = H - top - bottom;
  const totals = days.map((d) => Object.values(d.vendors).reduce((a, n) => a + n, 0));
  const vendors = [...new Set(days.flatMap((d) => Object.keys(d.vendors)))].sort();
  const color = vendorColor(vendors);
  const max = niceMax(Math.max(1, ...totals));
  const bw = w / Math.max(days.length, 1), y = (v) => top + h - (v / max) * h;
  const every = Math.ceil(days.length / 10);
  const bars = days.map((d, i) => {
    let acc = 0;
    const x = left + i * bw, bwid = Math.max(bw - 2, 1);
    const day = new Date(d.day).toLocaleDateString([], { timeZone: "UTC", month: "short", day: "numeric" });
    const tip = `${day}: ${fmt(totals[i])} blocked` + Object.entries(d.vendors).sort().map(([v, n]) => `, ${v || "(untagged)"} ${fmt(n)}`).join("");
    return `<g tabindex="0" aria-label="${esc(tip)}">` + Object.entries(d.vendors).sort().map(([v, n]) => {
      const y0 = y(acc), y1 = y(acc + n);
      acc += n;
      return `<rect x="${x}" y="${y1}" width="${bwid}" height="${y0 - y1}" fill="${color(v)}"><title>${esc(day)}: ${esc(v || "(untagged)")} ${fmt(n)}</title></rect>`;
    }).join("") + (i % every === every - 1 || days.length <= 10 ? `<text class="axis" x="${x + bw / 2}" y="${H - 6}" text-anchor="middle">${esc(day)}</text>` : "") + `</g>`;
  }).join("");
  const ticks = [0, max / 2, max].map((v) => `<line class="grid" x1="${left}" x2="${left + w}" y1="${y(v)}" y2="${y(v)}"></line>` +
    `<text class="axis" x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`).join("");
  return `<svg class="chart stacked" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}">${ticks}${bars}</svg>
    <p class="legend">${vendors.map((v) => `<span><i class="swatch" style="background:${color(v)}"></i>${esc(v || "(untagged)")}</span>`).join("")}</p>`;
}
// every says how regularly a name was looked up, from its times (newest
// first): the median gap, as "every 5 min"; "" for fewer than three.
function every(times) {
  if (times.length < 3) return "";
  const gaps = times.slice(1).map((t, i) => (new Date(times[i]) - new Date(t)) / 1000).sort((a, b) => a - b);
  const g = gaps[Math.floor(gaps.length / 2)];
  if (g < 90) return `every ${Math.max(1, Math.round(g))} s`;
  if (g < 5400) return `every ${Math.round(g / 60)} min`;
  if (g < 129600) return `every ${Math.round(g / 3600)} h`;
  return `every ${Math.round(g / 86400)} d`;
}
// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
}
const hourSlots = {
  n: 24, ms: 3600e3, key: (t) => String(Math.floor(t / 3600e3)),
  label: (d, i) => (i % 6 === 5 ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : ""),
};
const daySlots = {
  n: 7, ms: 86400e3, key: (t) => new Date(t).toISOString().slice(0, 10),
  label: (d) => d.toLocaleDateString([], { weekday: "short", day: "numeric" }),
};
const monthSlots = {
  n: 30, ms: 86400e3, key: (t) => new Date(t).toISOString().slice(0, 10),
  label: (d, i) => (i % 5 === 4 ? d.toLocaleDateString([], { month: "short", day: "numeric" }) : ""),
};
function byDay(points) {
  const days = new Map();
  for (const p of points) {
    const d = p.hour.slice(0, 10);
    const v = days.get(d) || { hour: d + "T00:00:00Z", queries: 0, blocked: 0 };
    v.queries += p.queries; v.blocked += p.blocked; days.set(d, v);
  }
  return [...days.values()];
}
// grouped folds log entries (newest first) asking the same name, type and
// rule into one, the newest, with how many there were.
function grouped(entries) {
  const seen = new Map();
  for (const e of entries) {
    const k = [e.qname, e.qtype, e.list, e.rule, e.reason].join("\u0000");
    if (seen.has(k)) {
      const g = seen.get(k);
      g.times++; g.first = e.time; g.all.push(e.time);
    } else seen.set(k, { ...e, times: 1, first: e.time, all: [e.time] });
  }
  return [...seen.values()];
}
const rows = (items, cells) => items.map((it) => `<tr>${cells(it).map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");

// storeBanner warns when the store cannot be written (a full or damaged
// disk): DNS and blocking go on, but nothing new is kept.
function storeBanner(st) {
  if (!st || (st.mode === "read-write" && !st.low_disk)) return "";
  const what = st.mode === "read-write" ? "the disk is almost full" : `the store is ${esc(st.mode)}`;
  return `<p class="blocked" role="alert" id="store-banner">Warning: ${what}; DNS and blocking go on, but list updates, the saved cache and hourly totals are not being kept${st.error ? ` (${esc(st.error)})` : ""}.</p>`;
}

async function overview() {
  const [s24, s7, s30, top, lists, stats, pause, health] = await Promise.all([
    api("/api/v1/series?since=24h"), api("/api/v1/series?since=7d"), api("/api/v1/series?since=30d"), api("/api/v1/top?since=24h&limit=10"),
    api("/api/v1/lists"), api("/api/v1/stats"), api("/api/v1/pause"), api("/api/v1/health"),
  ]);
  const permitted = stats.log_allowed ? await api("/api/v1/top?since=24h&limit=10&allowed=1").catch(() => null) : null;
  const cache = stats.cache || {};
  const lookups = (cache.hits || 0) + (cache.misses || 0);
  const hitRate = lookups ? `${((100 * cache.hits) / lookups).toFixed(1)}%` : "—";
  const types = Object.entries(stats.queries_by_type || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const typeTotal = types.reduce((a, [, n]) => a + n, 0);
  const q = s24.points.reduce((a, p) => a + p.queries, 0), b = s24.points.reduce((a, p) => a + p.blocked, 0);
  const ql = stats.querylog || {};
  const pausedDevices = Object.keys(pause.clients || {}).length, pausedGroups = Object.keys(pause.groups || {}).length;
  const pausedFor = [pausedDevices ? `${pausedDevices} device${pausedDevices > 1 ? "s" : ""}` : "",
    pausedGroups ? `${pausedGroups} group${pausedGroups > 1 ? "s" : ""}` : ""].filter(Boolean).join(" and ");
  const paused = pause.all ? `paused until ${when(pause.all)}` : lists.warning && !lists.rules ? "on, no rules" :
    pausedFor ? `on, paused for ${pausedFor}` : "on";
  main.innerHTML = `
    <h2>Overview</h2>${storeBanner(health.store)}
    <div class="cards">
      <div class="card"><div class="n" id="total-queries">${fmt(q)}</div><div class="l">queries, 24 h</div></div>
      <div class="card"><div class="n" id="total-blocked">${fmt(b)}</div><div class="l">blocked, 24 h</div></div>
      <div class="card"><div class="n">${q ? ((100 * b) / q).toFixed(1) : "0.0"}%</div><div class="l">blocked share</div></div>
      <div class="card"><div class="n" id="logged-blocked">${fmt(top.total)}</div><div class="l">blocked lookups logged, 24 h</div></div>
      <div class="card"><div class="n">${fmt(ql.queued)} / ${fmt(ql.dropped)}</div><div class="l">log queue / drops</div></div>
      <div class="card"><div class="n" id="cache-hit-rate">${hitRate}</div><div class="l">answered from the cache, since start</div></div>
      <div class="card"><div class="n" id="blocking-state">${esc(paused)}</div><div class="l">blocking</div>
        <button id="pause-all" class="secondary">Pause 5 min</button> <button id="resume-all" class="secondary">Resume</button></div>
    </div>
    <section><h3>Last 24 hours</h3>${chart(s24.points, "Queries and blocked lookups per hour, last 24 hours", hourSlots)}</section>
    <section><h3>Last 7 days</h3>${chart(byDay(s7.points), "Queries and blocked lookups per day, last 7 days", daySlots)}</section>
    <section><h3>Last 30 days</h3>${chart(byDay(s30.points), "Queries and blocked lookups per day, last 30 days", monthSlots)}</section>
    <section><h3>Top vendors contacted</h3><div class="scroll"><table id="top-vendors"><thead><tr><th scope="col">Vendor</th><th scope="col">Blocked</th></tr></thead>
      <tbody>${rows(top.vendors, (r) => [esc(r.key || "(untagged)"), fmt(r.count)])}</tbody></table></div></section>
    <section><h3>Top clients</h3><div class="scroll"><table id="top-clients"><thead><tr><th scope="col">Client</th><th scope="col">Blocked</th></tr></thead>
      <tbody>${rows(top.clients, (r) => [`<a href="#/device/${encodeURIComponent(r.key)}">${esc(r.key)}</a>`, fmt(r.count)])}</tbody></table></div></section>
    <section><h3>Top blocked names</h3><div class="scroll"><table id="top-names"><thead><tr><th scope="col">Name</th><th scope="col">Vendor</th><th scope="col">Blocked</th></tr></thead>
      <tbody>${rows(top.names, (r) => [esc(host(r.key)), esc(r.vendor), fmt(r.count)])}</tbody></table></div></section>
    ${permitted ? `<section><h3>Top permitted names</h3><div class="scroll"><table id="top-permitted"><thead><tr><th scope="col">Name</th><th scope="col">Lookups</th></tr></thead>
      <tbody>${rows(permitted.names, (r) => [esc(host(r.key)), fmt(r.count)])}</tbody></table></div></section>` : ""}
    <section><h3>Query types, since start</h3><div class="scroll"><table id="query-types"><thead><tr><th scope="col">Type</th><th scope="col">Queries</th><th scope="col">Share</th></tr></thead>
      <tbody>${rows(types, ([t, n]) => [esc(t), fmt(n), `<span class="bar" style="--w:${((100 * n) / typeTotal).toFixed(1)}%">${((100 * n) / typeTotal).toFixed(1)}%</span>`])}</tbody></table></div></section>
    <section><h3>Upstreams, since start</h3><div class="scroll"><table id="upstreams"><thead><tr><th scope="col">Upstream</th><th scope="col">Answered</th><th scope="col">Errors</th>
      <th scope="col">Mean</th><th scope="col" class="hide-narrow">95 % under</th></tr></thead>
      <tbody>${rows(stats.upstreams || [], (u) => [esc(u.upstream), fmt(u.answered), u.errors ? `<span class="blocked">${fmt(u.errors)}</span>` : "0",
        u.answered ? `${u.mean_ms.toFixed(1)} ms` : "—", `<span class="hide-narrow">${u.answered ? `${u.p95_ms} ms` : "—"}</span>`])}</tbody></table></div></section>
    <section><h3>List sources</h3>${listTable(lists)}</section>`;
  $("#pause-all").onclick = async () => { await post("/api/v1/pause?duration=5m"); say("Blocking paused for 5 minutes."); route(); };
  $("#resume-all").onclick = async () => { await post("/api/v1/resume"); say("Blocking resumed."); route(); };
}

function listTable(lists) {
  return `<div class="scroll"><table><thead><tr><th scope="col">List</th><th scope="col">Vendor</th><th scope="col">Status</th>
    <th scope="col">Entries</th><th scope="col" class="hide-narrow">Updated</th></tr></thead><tbody>${rows(lists.sources || [], (s) => [
    esc(s.list), esc(s.vendor), esc(s.status) + (s.error ? `<br><small>${esc(s.error)}</small>` : "") +
      (s.retrying ? `<br><small>retrying, next attempt ${esc(when(s.next_attempt))}</small>` : "") +
      (s.opt_in ? `<br><small>off for everyone, on for the groups that name it</small>` : "") +
      (s.breaks && s.breaks.length ? `<br><small class="breaks">${s.enabled === false ? "off; turning it on breaks" : s.opt_in ? "breaks there" : "breaks"} ${esc(s.breaks.join(", "))}</small>` : ""), fmt(s.entries),
    `<span class="hide-narrow">${esc(when(s.fetched_at))}</span>`])}</tbody></table></div>
    <p>${fmt(lists.rules)} rules in use.</p>${lists.warning ? `<p class="blocked" role="alert">Warning: ${esc(lists.warning)}</p>` : ""}`;
}

async function devices(params) {
  const maker = params.get("maker") || "", sort = params.get("sort") || "blocked";
  const q = new URLSearchParams({ since: "7d", sort });
  if (maker) q.set("hardware_vendor", maker);
  const c = await api(`/api/v1/devices?${q}`);
  const makerOf = (d) => d.hardware_vendor.randomized ? "<small>randomised MAC</small>" : esc(d.hardware_vendor.name || (d.mac ? "unregistered" : "—"));
  const key = (d) => d.name || d.addresses[0] || "";
  const named = { config: "configuration", user: "you", lease: "DHCP lease", ptr: "router's DNS", log: "log" };
  const hasGroups = (c.devices || []).some((d) => (d.groups || []).length);
  main.innerHTML = `<h2>Devices</h2><p>Every device seen over the last 7 days: its name and where it came from, its maker, and the vendors it called.</p>
    <form id="d-filter" class="inline"><label>Maker <input id="d-maker" value="${esc(maker)}" placeholder="e.g. Xiaomi"></label>
    <label>Sort <select id="d-sort">${["blocked", "name", "last_seen", "hardware_vendor"].map((s) =>
      `<option value="${s}"${s === sort ? " selected" : ""}>${esc(s.replace("_", " "))}</option>`).join("")}</select></label>
    <button type="submit">Show</button></form>
    <div class="scroll"><table id="devices"><thead><tr><th scope="col">Device</th><th scope="col">Maker</th><th scope="col">Blocked</th><th scope="col">Vendors</th>
    ${hasGroups ? `<th scope="col" class="hide-narrow">Groups</th>` : ""}<th scope="col" class="hide-narrow">Addresses</th><th scope="col" class="hide-narrow">Named by</th><th scope="col" class="hide-narrow">Last seen</th></tr></thead>
    <tbody>${rows(c.devices || [], (d) => [`<a href="#/device/${encodeURIComponent(key(d))}">${esc(key(d))}</a>`, makerOf(d),
      d.queries == null ? fmt(d.blocked) : `${fmt(d.blocked)} <small>of ${fmt(d.queries)}</small>`,
      Object.entries(d.vendors || {}).sort((a, b) => b[1] - a[1]).map(([v, n]) => `${esc(v || "(untagged)")} ${fmt(n)}`).join(", ") || "—",
      ...(hasGroups ? [`<span class="hide-narrow">${esc((d.groups || []).join(", ") || "—")}</span>`] : []),
      `<span class="hide-narrow">${esc(d.addresses.join(", "))}${d.mac ? `<br><small>${esc(d.mac)}</small>` : ""}</span>`,
      `<span class="hide-narrow">${esc(named[d.name_source] || "address only")}</span>`,
      `<span class="hide-narrow">${esc(d.last_seen ? when(d.last_seen) : "—")}</span>`])}</tbody></table></div>`;
  $("#devices").insertAdjacentHTML("beforebegin", heatMap(c.devices || [], key));
  $("#d-filter").onsubmit = (ev) => {
    ev.preventDefault();
    location.hash = `#/devices?maker=${encodeURIComponent($("#d-maker").value)}&sort=${encodeURIComponent($("#d-sort").value)}`;
  };
}

// heatMap is the device × vendor matrix of blocked lookups: which device
// phones whom, and how often, at a glance (darker is more).
function heatMap(devices, key) {
  const totals = new Map();
  for (const d of devices) for (const [v, n] of Object.entries(d.vendors || {})) totals.set(v, (totals.get(v) || 0) + n);
  const vendors = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([v]) => v);
  const rowsOf = devices.filter((d) => d.blocked > 0).sort((a, b) => b.blocked - a.blocked).slice(0, 30);
  if (!vendors.length || !rowsOf.length) return "";
  const max = Math.max(1, ...rowsOf.flatMap((d) => vendors.map((v) => (d.vendors || {})[v] || 0)));
  const cell = (d, v) => {
    const n = (d.vendors || {})[v] || 0;
    const a = n ? 0.12 + 0.88 * (n / max) : 0;
    return `<td class="c" style="background:rgba(179,38,30,${a.toFixed(2)});color:${a > 0.55 ? "#fff" : "inherit"}" title="${esc(key(d))} → ${esc(v || "(untagged)")}: ${fmt(n)}">${n ? fmt(n) : ""}</td>`;
  };
  return `<section><h3>Who phones whom</h3><p>Blocked lookups in 7 days, device by vendor; darker is more.</p>
    <div class="scroll"><table id="heat" class="heat"><thead><tr><th scope="col">Device</th>${vendors.map((v) => `<th scope="col">${esc(v || "(untagged)")}</th>`).join("")}</tr></thead>
    <tbody>${rowsOf.map((d) => `<tr><th scope="row"><a href="#/device/${encodeURIComponent(key(d))}">${esc(key(d))}</a></th>${vendors.map((v) => cell(d, v)).join("")}</tr>`).join("")}</tbody></table></div></section>`;
}

async function device(client, params) {
  const vendor = params.get("vendor") || "", since = params.get("since") || "7d";
  const q = new URLSearchParams({ client, since, limit: "200" });
  if (vendor) q.set("vendor", vendor);
  const [days, page, summary, functional, inventory] = await Promise.all([
    api(`/api/v1/clients/${encodeURIComponent(client)}/days?since=${encodeURIComponent(since)}`),
    api(`/api/v1/blocked?${q}`), api(`/api/v1/clients/${encodeURIComponent(client)}?since=30d`),
    api("/api/v1/functional").catch(() => ({ rules: [] })),
    api("/api/v1/devices?since=30d").catch(() => ({ devices: [] })),
  ]);
  const pause = await api("/api/v1/pause").catch(() => ({}));
  const who = summary.client || client;
  const [mine, allGroups, excepts] = await Promise.all([
    api(`/api/v1/clients/${encodeURIComponent(who)}/groups`).catch(() => ({ groups: [] })),
    api("/api/v1/groups").catch(() => ({ groups: [] })),
    api(`/api/v1/exceptions?client=${encodeURIComponent(who)}`).catch(() => ({ exceptions: [] })),
  ]);
  const groupNames = (allGroups.groups || []).map((g) => g.name);
  const pausedUntil = pause.all || (pause.clients || {})[who];
  // What the network says of this device: "192.168.1.23 · a4:45:19:… · Xiaomi Communications Co Ltd".
  const dev = (inventory.devices || []).find((d) => d.name === summary.client || (!d.name && d.addresses.includes(summary.client)));
  const identity = dev ? [dev.addresses.join(", "), dev.mac, dev.hardware_vendor.randomized ? "randomised MAC" : dev.hardware_vendor.name,
    dev.name_source ? `named by ${({ config: "the configuration", user: "you", lease: "its DHCP lease", ptr: "the router's DNS", log: "the log" })[dev.name_source]}` : ""]
    .filter(Boolean).join(" · ") : "";
  // A blocked name the curated functional allowlist lists: blocking it
  // breaks something the device's owner uses (push, find-device, ...).
  const func = (qname) => {
    const n = qname.replace(/\.$/, "");
    return (functional.rules || []).find((r) => n === r.name || (r.suffix && n.endsWith("." + r.name)));
  };
  const mark = (e) => {
    const f = func(e.qname);
    return f ? ` <span class="functional" title="${esc(f.breaks)} (${esc(f.source)})">functional: ${esc(f.category)}</span>` : "";
  };
  const vendors = Object.keys(summary.vendors || {}).sort();
  main.innerHTML = `<h2>Device <span id="device-name">${esc(summary.client || client)}</span></h2>
    ${identity ? `<p id="device-identity">${esc(identity)}</p>` : ""}
    ${dev && dev.name_source === "config" ? "" : `<form class="inline" id="rename"><div><label for="new-name">Name this device</label>
      <input id="new-name" required maxlength="63" value="${esc(dev && dev.name || "")}" placeholder="kids-tablet"></div><button type="submit" id="rename-submit">Name</button>
      ${dev && dev.name_source === "user" ? `<button type="button" class="secondary" id="forget-name">Forget the name</button>` : ""}</form>`}
    <p>${fmt(summary.total)} blocked lookups in 30 days${summary.addrs ? " from " + esc(summary.addrs.join(", ")) : ""}.</p>
    ${pausedUntil ? `<p id="device-paused" class="blocked" role="status">Blocking is paused ${pause.all ? "for everyone" : "for this device"} until ${esc(when(pausedUntil))}.</p>` : ""}
    ${pausedUntil && !pause.all ? `<button id="resume-device" class="secondary">Resume blocking for this device</button>`
      : `<button id="pause-device" class="secondary">Pause blocking for this device, 15 min</button>`}
    ${groupNames.length ? `<section><h3>Groups</h3><p id="device-groups">${esc((mine.groups || []).join(", ") || "none: every list applies")}
      <small>(${mine.assigned ? "moved here by hand" : "as the configuration says"})</small></p>
      <form id="move" class="inline"><fieldset><legend>Move to</legend>${groupNames.map((g) =>
        `<label><input type="checkbox" name="g" value="${esc(g)}"${(mine.groups || []).includes(g) ? " checked" : ""}> ${esc(g)}</label>`).join(" ")}</fieldset>
        <button type="submit" id="move-submit">Move</button>${mine.assigned ? `<button type="button" class="secondary" id="move-reset">Back to the configuration's</button>` : ""}</form></section>` : ""}
    <section><h3>Exceptions for this device</h3>
      <ul id="device-exceptions">${(excepts.exceptions || []).map((x) => `<li>${esc(x.name)} ${x.block ? "blocked" : "allowed"}${x.until ? " until " + esc(when(x.until)) : ""}
        <button class="secondary unexcept" data-name="${esc(x.name)}">Remove</button></li>`).join("") || "<li>none</li>"}</ul>
      <form class="inline" id="block-here"><div><label for="b-name">Block a name for this device</label><input id="b-name" required placeholder="www.tiktok.com"></div>
        <button type="submit" id="block-submit">Block</button></form></section>
    <section><h3>Blocked lookups per day, by vendor</h3>${stacked(days.days, `Blocked lookups of ${who} per day, by vendor`)}
      <details><summary>As a table</summary><div class="scroll"><table><thead><tr><th scope="col">Day</th><th scope="col">Vendors</th></tr></thead>
      <tbody>${rows(days.days.filter((d) => Object.keys(d.vendors).length), (d) => [esc(d.day.slice(0, 10)),
        Object.entries(d.vendors).map(([v, n]) => `${esc(v || "(untagged)")} ${fmt(n)}`).join(", ")])}</tbody></table></div></details></section>
    <section><h3>Recent blocked lookups</h3><p>The same name asked again is one row: how many times, when first and last, and how regularly
      (a device phoning home asks at a steady interval). <a href="#/queries?client=${encodeURIComponent(who)}&result=blocked&since=${encodeURIComponent(since)}">Every lookup, one per row</a>.</p>
      <form class="inline" id="filter"><div><label for="f-vendor">Vendor</label><select id="f-vendor"><option value="">all</option>
        ${vendors.map((v) => `<option ${v === vendor ? "selected" : ""}>${esc(v)}</option>`).join("")}</select></div>
        <div><label for="f-since">Since</label><select id="f-since">${["1h", "24h", "7d", "30d"].map((s) => `<option ${s === since ? "selected" : ""}>${s}</option>`).join("")}</select></div>
        <button type="submit">Filter</button></form>
      <div class="scroll"><table id="lookups"><thead><tr><th scope="col">Last</th><th scope="col">Name</th><th scope="col">Times</th><th scope="col" class="hide-narrow">Type</th><th scope="col" class="hide-narrow">First, how often</th><th scope="col">Vendor</th>
        <th scope="col" class="hide-narrow">List</th><th scope="col" class="hide-narrow">Rule</th><th scope="col">Action</th></tr></thead>
      <tbody>${rows(grouped(page.entries || []), (e) => [esc(when(e.time)), esc(host(e.qname)) + mark(e), fmt(e.times), `<span class="hide-narrow">${esc(e.qtype)}</span>`,
        `<span class="hide-narrow">${esc(when(e.first))}${every(e.all) ? `<br><small class="every">${esc(every(e.all))}</small>` : ""}</span>`, esc(e.vendor),
        `<span class="hide-narrow">${esc(e.list)}</span>`, `<span class="hide-narrow">${esc(e.rule)}${e.reason === "cname" ? " (CNAME)" : ""}</span>`,
        `<button class="secondary allow-here" data-name="${esc(e.qname)}" title="Allow for this device only">Allow here</button>
         <button class="secondary allow" data-name="${esc(e.qname)}" title="Allow for every device">Everywhere</button>`])}</tbody></table></div></section>`;
  $("#filter").onsubmit = (ev) => {
    ev.preventDefault();
    location.hash = `#/device/${encodeURIComponent(client)}?vendor=${encodeURIComponent($("#f-vendor").value)}&since=${$("#f-since").value}`;
  };
  if ($("#pause-device")) $("#pause-device").onclick = async () => { await post(`/api/v1/pause?duration=15m&client=${encodeURIComponent(who)}`); say(`Blocking paused for ${who} for 15 minutes.`); route(); };
  if ($("#resume-device")) $("#resume-device").onclick = async () => { await post(`/api/v1/resume?client=${encodeURIComponent(who)}`); say(`Blocking resumed for ${who}.`); route(); };
  const here = `client=${encodeURIComponent(who)}`;
  for (const b of document.querySelectorAll("button.allow")) {
    b.onclick = async () => { await post(`/api/v1/allow?name=${encodeURIComponent(b.dataset.name)}`); say(`${host(b.dataset.name)} is allowed now, for every device.`); };
  }
  for (const b of document.querySelectorAll("button.allow-here")) {
    b.onclick = async () => { await post(`/api/v1/allow?name=${encodeURIComponent(b.dataset.name)}&${here}`); say(`${host(b.dataset.name)} is allowed now for ${who}.`); route(); };
  }
  for (const b of document.querySelectorAll("button.unexcept")) {
    b.onclick = async () => { await post(`/api/v1/allow?name=${encodeURIComponent(b.dataset.name)}&${here}`, "DELETE"); route(); };
  }
  if ($("#rename")) {
    $("#rename").onsubmit = async (ev) => {
      ev.preventDefault();
      const name = $("#new-name").value.trim();
      await post(`/api/v1/devices/name?device=${encodeURIComponent(who)}&name=${encodeURIComponent(name)}`, "PUT");
      say(`${who} is named ${name} now.`);
      location.hash = `#/device/${encodeURIComponent(name)}`;
    };
  }
  if ($("#forget-name")) {
    $("#forget-name").onclick = async () => { await post(`/api/v1/devices/name?device=${encodeURIComponent(who)}`, "DELETE"); say("Name forgotten."); location.hash = "#/devices"; };
  }
  $("#block-here").onsubmit = async (ev) => {
    ev.preventDefault();
    await post(`/api/v1/block?name=${encodeURIComponent($("#b-name").value)}&${here}`);
    say(`${$("#b-name").value} is blocked for ${who}.`);
    route();
  };
  if ($("#move")) {
    $("#move").onsubmit = async (ev) => {
      ev.preventDefault();
      const gs = [...document.querySelectorAll("#move input[name=g]:checked")].map((i) => i.value);
      await post(`/api/v1/clients/${encodeURIComponent(who)}/groups?groups=${encodeURIComponent(gs.join(","))}`, "PUT");
      say(`${who} moved to ${gs.join(", ") || "no group"}.`);
      route();
    };
  }
  if ($("#move-reset")) {
    $("#move-reset").onclick = async () => { await post(`/api/v1/clients/${encodeURIComponent(who)}/groups`, "DELETE"); route(); };
  }
}

// queries is the log of every query when querylog.log_allowed is on
// (blocked ones otherwise), newest first, filtered and paged by cursor.
async function queries(params) {
  const stats = await api("/api/v1/stats");
  const result = params.get("result") || (stats.log_allowed ? "allowed" : "blocked");
  const f = { client: params.get("client") || "", name: params.get("name") || "", type: params.get("type") || "", since: params.get("since") || "24h",
    replica: params.get("replica") || "" };
  const q = new URLSearchParams({ since: f.since, limit: "100" });
  for (const k of ["client", "name", "type", "replica"]) if (f[k]) q.set(k, f[k]);
  if (result === "allowed") q.set("allowed", "true");
  if (params.get("cursor")) q.set("cursor", params.get("cursor"));
  const page = await api(`/api/v1/blocked?${q}`);
  // A fleet ([fleet]): every entry names the resolver that answered it.
  const fleet = f.replica !== "" || (page.entries || []).some((e) => e.replica);
  const link = (over) => {
    const p = new URLSearchParams({ ...f, result, ...over });
    for (const [k, v] of [...p]) if (!v) p.delete(k);
    return `#/queries?${p}`;
  };
  main.innerHTML = `<h2>Queries</h2>
    <p>${stats.log_allowed ? "Every query Vigil answered: the permitted ones and the blocked ones, each in its own log." :
      "Only blocked lookups are logged: turn <code>querylog.log_allowed</code> on to see the permitted ones too."}</p>
    <form id="q-filter" class="inline">
      <div><label for="q-result">Result</label><select id="q-result">${["blocked", "allowed"].map((r) => `<option${r === result ? " selected" : ""}${r === "allowed" && !stats.log_allowed ? " disabled" : ""}>${r}</option>`).join("")}</select></div>
      <div><label for="q-client">Device</label><input id="q-client" value="${esc(f.client)}" placeholder="name or address"></div>
      <div><label for="q-name">Name</label><input id="q-name" value="${esc(f.name)}" placeholder="example.com"></div>
      <div><label for="q-type">Type</label><input id="q-type" value="${esc(f.type)}" placeholder="A, AAAA, HTTPS" size="6"></div>
      ${fleet ? `<div><label for="q-replica">Resolver</label><input id="q-replica" value="${esc(f.replica)}" placeholder="every one" size="10"></div>` : ""}
      <div><label for="q-since">Since</label><select id="q-since">${["1h", "24h", "7d", "30d"].map((x) => `<option${x === f.since ? " selected" : ""}>${x}</option>`).join("")}</select></div>
      <button type="submit">Show</button></form>
    <div class="scroll"><table id="queries"><thead><tr><th scope="col">Time</th><th scope="col">Device</th><th scope="col">Name</th><th scope="col">Type</th>
      <th scope="col" class="hide-narrow">${result === "blocked" ? "List" : "Protocol"}</th>${fleet ? `<th scope="col" class="hide-narrow">Resolver</th>` : ""}</tr></thead>
    <tbody>${rows(page.entries || [], (e) => [esc(when(e.time)), `<a href="#/device/${encodeURIComponent(e.client)}">${esc(e.client)}</a>`,
      esc(host(e.qname)), esc(e.qtype), `<span class="hide-narrow">${esc(result === "blocked" ? e.list : e.proto)}</span>`,
      ...(fleet ? [`<span class="hide-narrow">${esc(e.replica || "")}</span>`] : [])])}</tbody></table></div>
    ${(page.entries || []).length === 0 ? "<p>Nothing matches.</p>" : ""}
    ${page.next ? `<p><a id="q-next" href="${link({ cursor: page.next })}">Older →</a></p>` : ""}`;
  $("#q-filter").onsubmit = (ev) => {
    ev.preventDefault();
    location.hash = link({ result: $("#q-result").value, client: $("#q-client").value.trim(), name: $("#q-name").value.trim(),
      type: $("#q-type").value.trim(), since: $("#q-since").value, replica: fleet ? $("#q-replica").value.trim() : "", cursor: "" });
  };
}

// alerts is what Vigil noticed: new devices, new vendors, spikes, beacons
// through the night, trouble; each with what to do about it.
async function alertsPage() {
  const rep = await api("/api/v1/alerts?since=30d&limit=200");
  const ruleText = (r) => r.replace(/_/g, " ");
  const action = (a) => {
    const dev = a.client ? `<a href="#/device/${encodeURIComponent(a.client)}">device</a>` : "";
    if (a.rule === "new_vendor" && a.name) return `${dev} <button class="secondary alert-allow" data-name="${esc(a.name)}" data-client="${esc(a.client)}">Allow ${esc(host(a.name))} for it</button>`;
    if (a.rule === "new_device") return `${dev} <a href="#/device/${encodeURIComponent(a.client)}">name it</a>`;
    if (a.link === "#/lists") return `<a href="#/lists">lists</a>`;
    return dev;
  };
  main.innerHTML = `<h2>Alerts</h2>
    ${rep.enabled ? "<p>What Vigil noticed in the last 30 days, newest first.</p>" :
      "<p>Alerts are off: add an <code>[[alerts.destinations]]</code> (ntfy, Gotify, a webhook, Slack, Matrix or email) to the configuration.</p>"}
    <div class="scroll"><table id="alerts"><thead><tr><th scope="col">Time</th><th scope="col">What</th><th scope="col" class="hide-narrow">Rule</th><th scope="col">Do</th></tr></thead>
    <tbody>${rows(rep.alerts || [], (a) => [esc(when(a.time)), `${a.acked ? "" : "<strong>new</strong> "}${esc(a.message)}`,
      `<span class="hide-narrow">${esc(ruleText(a.rule))}</span>`,
      `${action(a)} ${a.acked ? "" : `<button class="secondary ack" data-id="${esc(a.id)}">Seen</button>`}
       <button class="secondary mute" data-rule="${esc(a.rule)}" data-client="${esc(a.client || "")}">Mute ${esc(ruleText(a.rule))}${a.client ? " for " + esc(a.client) : ""}</button>`])}</tbody></table></div>
    ${(rep.alerts || []).length ? "" : "<p>No alerts.</p>"}
    ${(rep.mutes || []).length ? `<section><h3>Muted</h3><ul id="mutes">${rep.mutes.map((m) => `<li>${esc(ruleText(m.rule))} ${m.client ? "for " + esc(m.client) : "for every device"}
      <button class="secondary unmute" data-rule="${esc(m.rule)}" data-client="${esc(m.client || "")}">Unmute</button></li>`).join("")}</ul></section>` : ""}`;
  for (const b of document.querySelectorAll("button.ack")) b.onclick = async () => { await post(`/api/v1/alerts/${encodeURIComponent(b.dataset.id)}/ack`); route(); };
  const muteQuery = (b) => `rule=${encodeURIComponent(b.dataset.rule)}${b.dataset.client ? "&client=" + encodeURIComponent(b.dataset.client) : ""}`;
  for (const b of document.querySelectorAll("button.mute")) b.onclick = async () => { await post(`/api/v1/alerts/mute?${muteQuery(b)}`); say("Muted."); route(); };
  for (const b of document.querySelectorAll("button.unmute")) b.onclick = async () => { await post(`/api/v1/alerts/mute?${muteQuery(b)}`, "DELETE"); route(); };
  for (const b of document.querySelectorAll("button.alert-allow")) {
    b.onclick = async () => { await post(`/api/v1/allow?name=${encodeURIComponent(b.dataset.name)}&client=${encodeURIComponent(b.dataset.client)}`); say(`${host(b.dataset.name)} is allowed for ${b.dataset.client}.`); };
  }
}

async function lists() {
  const l = await api("/api/v1/lists");
  // One row per list (a list may have several sources), with its state.
  const byList = new Map();
  for (const src of l.sources || []) {
    const e = byList.get(src.list) || { name: src.list, vendor: src.vendor, kind: src.kind, enabled: src.enabled, entries: 0 };
    e.entries += src.entries || 0;
    byList.set(src.list, e);
  }
  const added = l.added || [];
  main.innerHTML = `<h2>Lists</h2>${listTable(l)}<button id="refresh">Refresh lists now</button>
    <section><h3>Turn lists on and off</h3><div class="scroll"><table id="list-switches"><thead><tr><th scope="col">List</th><th scope="col">Kind</th>
      <th scope="col">State</th><th scope="col">Change</th></tr></thead>
      <tbody>${rows([...byList.values()], (e) => [esc(e.name) + (added.includes(e.name) ? " <small>(added here)</small>" : ""), esc(e.kind),
        e.enabled ? "on" : "<span class=\"blocked\">off</span>",
        `<button class="secondary switch" data-name="${esc(e.name)}" data-to="${e.enabled ? "disable" : "enable"}">${e.enabled ? "Turn off" : "Turn on"}</button>` +
        (added.includes(e.name) ? ` <button class="secondary drop" data-name="${esc(e.name)}">Remove</button>` : "")])}</tbody></table></div></section>
    <section><h3>Add a list</h3><form class="inline" id="add-list">
      <div><label for="l-name">Name</label><input id="l-name" required placeholder="oisd-small"></div>
      <div><label for="l-url">URL</label><input id="l-url" required type="url" placeholder="https://example.org/list.txt" size="32"></div>
      <div><label for="l-format">Format</label><select id="l-format">${["auto", "hosts", "domains", "adblock", "wildcard", "dnsmasq"].map((f) => `<option>${f}</option>`).join("")}</select></div>
      <div><label for="l-kind">Kind</label><select id="l-kind"><option>deny</option><option>allow</option></select></div>
      <div><label for="l-vendor">Vendor</label><input id="l-vendor" placeholder="optional" size="10"></div>
      <button type="submit" id="add-list-submit">Add</button></form></section>`;
  $("#refresh").onclick = async () => {
    say("Refreshing lists…");
    const r = await fetch("/api/v1/lists/update", { method: "POST", credentials: "same-origin" });
    if (r.status === 401) { await login(); return $("#refresh").onclick(); }
    await r.text();
    say("Lists refreshed.");
    route();
  };
  for (const b of document.querySelectorAll("button.switch")) {
    b.onclick = async () => { await post(`/api/v1/lists/${encodeURIComponent(b.dataset.name)}/${b.dataset.to}`); say(`List ${b.dataset.name} is ${b.dataset.to === "enable" ? "on" : "off"}.`); route(); };
  }
  for (const b of document.querySelectorAll("button.drop")) {
    b.onclick = async () => { await post(`/api/v1/lists/${encodeURIComponent(b.dataset.name)}`, "DELETE"); say(`List ${b.dataset.name} removed.`); route(); };
  }
  $("#add-list").onsubmit = async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ name: $("#l-name").value.trim(), url: $("#l-url").value.trim(), format: $("#l-format").value, kind: $("#l-kind").value, vendor: $("#l-vendor").value.trim() });
    await post(`/api/v1/lists?${q}`);
    say(`List ${q.get("name")} added; it is being fetched.`);
    route();
  };
}

async function tools() {
  const [ex, gs] = await Promise.all([api("/api/v1/exceptions"), api("/api/v1/groups").catch(() => ({ groups: [] }))]);
  const scopeText = (x) => !x.scope ? "everyone" : x.scope.replace(/^client:/, "").replace(/^group:/, "group ");
  const scopeQuery = (x) => !x.scope ? "" : x.scope.startsWith("group:") ? `&group=${encodeURIComponent(x.scope.slice(6))}` : `&client=${encodeURIComponent(x.scope.slice(7))}`;
  const pause = await api("/api/v1/pause").catch(() => ({}));
  main.innerHTML = `<h2>Tools</h2>
    <section><h3>Why is a name blocked?</h3><form class="inline" id="explain"><div><label for="x-name">Name</label>
      <input id="x-name" required placeholder="tracking.example.com"></div>
      <div><label for="x-client">For device (optional)</label><input id="x-client" placeholder="name or address"></div>
      <button type="submit">Explain</button></form>
      <p id="explain-result" aria-live="polite"></p></section>
    <section><h3>Allow a name now</h3><form class="inline" id="allow"><div><label for="a-name">Name</label>
      <input id="a-name" required></div><button type="submit" id="allow-submit">Allow</button></form>
      <h4>Allowed and blocked by hand</h4>
      <ul id="allowed">${(ex.exceptions || []).map((x) => `<li>${esc(x.name)} ${x.block ? "blocked" : "allowed"} for ${esc(scopeText(x))}${x.until ? " until " + esc(when(x.until)) : ""}
        <button class="secondary remove" data-name="${esc(x.name)}" data-scope="${esc(scopeQuery(x))}">Remove</button></li>`).join("")}</ul></section>
    ${(gs.groups || []).length ? `<section><h3>Groups</h3><div class="scroll"><table id="groups"><thead><tr><th scope="col">Group</th><th scope="col">Members</th>
      <th scope="col" class="hide-narrow">Lists</th><th scope="col" class="hide-narrow">Off now</th><th scope="col">Blocking</th></tr></thead>
      <tbody>${rows(gs.groups, (g) => {
        const until = (pause.groups || {})[g.name];
        return [esc(g.name), esc([...g.members.map((m) => (g.moved_out || []).includes(m) ? m + " (moved out)" : m), ...(g.assigned || []).map((a) => a + " (moved in)")].join(", ") || (g.name === "default" ? "everyone else" : "—")),
          `<span class="hide-narrow">${esc(g.lists == null ? "every list" : g.lists.join(", ") || "none")}${(g.schedules || []).map((x) => `<br><small>${esc(x)}</small>`).join("")}</span>`,
          `<span class="hide-narrow">${esc((g.off_now || []).join(", ") || "—")}</span>`,
          until ? `paused until ${esc(when(until))} <button class="secondary resume-group" data-group="${esc(g.name)}">Resume</button>`
            : `<button class="secondary pause-group" data-group="${esc(g.name)}">Pause 30 min</button>`];
      })}</tbody></table></div></section>` : ""}`;
  $("#explain").onsubmit = async (ev) => {
    ev.preventDefault();
    const c = $("#x-client").value.trim();
    const e = await api(`/api/v1/explain?name=${encodeURIComponent($("#x-name").value)}${c ? "&client=" + encodeURIComponent(c) : ""}`);
    const forWhom = e.client ? ` for ${esc(e.client)}${e.groups ? " (" + esc(e.groups.join(", ")) + ")" : ""}` : "";
    $("#explain-result").innerHTML = (!e.matched ? `${esc(e.name)} is not blocked${forWhom}.` : e.blocked
      ? `<span class="blocked">${esc(e.name)} is blocked</span>${forWhom} by list ${esc(e.list)} (${esc(e.vendor)}), rule ${esc(e.rule)}.`
      : `<span class="allowed">${esc(e.name)} is allowed</span>${forWhom} by list ${esc(e.list)}, rule ${esc(e.rule)}.`) +
      (e.why ? ` <small>${esc(e.why)}</small>` : "");
  };
  $("#allow").onsubmit = async (ev) => { ev.preventDefault(); await post(`/api/v1/allow?name=${encodeURIComponent($("#a-name").value)}`); say("Allowed."); route(); };
  for (const b of document.querySelectorAll("button.remove")) {
    b.onclick = async () => { await post(`/api/v1/allow?name=${encodeURIComponent(b.dataset.name)}${b.dataset.scope}`, "DELETE"); route(); };
  }
  for (const b of document.querySelectorAll("button.pause-group")) {
    b.onclick = async () => { await post(`/api/v1/pause?duration=30m&group=${encodeURIComponent(b.dataset.group)}`); say(`Blocking paused for group ${b.dataset.group} for 30 minutes.`); route(); };
  }
  for (const b of document.querySelectorAll("button.resume-group")) {
    b.onclick = async () => { await post(`/api/v1/resume?group=${encodeURIComponent(b.dataset.group)}`); route(); };
  }
}

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("nav a")) a.removeAttribute("aria-current");
  const nav = document.querySelector(`nav a[href="#/${path.split("/")[1] === "device" ? "devices" : path.split("/")[1]}"]`);
  if (nav) nav.setAttribute("aria-current", "page");
  try {
    if (path.startsWith("/device/")) await device(decodeURIComponent(path.slice(8)), params);
    else if (path === "/devices") await devices(params);
    else if (path === "/queries") await queries(params);
    else if (path === "/alerts") await alertsPage();
    else if (path === "/lists") await lists();
    else if (path === "/tools") await tools();
    else await overview();
  } catch (err) {
    main.innerHTML = `<p role="alert">Could not load this page: ${esc(err.message)}</p>`;
  }
}
window.addEventListener("hashchange", route);
route();
// The overview keeps itself current while it is on screen.
setInterval(() => {
  if (document.visibilityState === "visible" && (location.hash.slice(1) || "/") === "/" && !document.querySelector("dialog[open]")) route();
}, 30000);
