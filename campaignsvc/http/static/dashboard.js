// The throttling dashboard: polls the API every 2 s and redraws account cards and campaign bars.
// No framework, no build step, nothing loaded from elsewhere. See campaignsvc/http/dashboard.py.
"use strict";

const REFRESH_MS = 2000;
const CAMPAIGNS_SHOWN = 12;
const SVG = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(window.location.search);
// Behind the gateway the identity headers are added to every API call; without it, ?org= supplies them.
const identity = {};
if (params.get("org")) {
  identity["X-Organization-Id"] = params.get("org");
  identity["X-User-Role"] = params.get("role") || "supervisor";
  if (params.get("user")) identity["X-User-Id"] = params.get("user");
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "width") node.style.width = value; // CSSOM: allowed by the page's CSP, style="" is not
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: identity, cache: "no-store" });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = `${response.status} ${body.error || ""}`.trim();
    } catch (_) { /* not JSON */ }
    const error = new Error(`${path}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function time(value) {
  return value ? new Date(value).toLocaleTimeString([], { hour12: false }) : "—";
}

function seconds(ms) {
  const s = Math.max(0, ms / 1000);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function accountState(a, now) {
  const cap = a.dailyCap || 0;
  if (a.state === "restricted") return ["restricted", "restricted"];
  if (a.state === "flood_blocked") {
    const until = a.blockedUntil ? new Date(a.blockedUntil) : null;
    const left = until && until > now ? ` (${seconds(until - now)})` : "";
    return ["flood", `flood-blocked until ${time(a.blockedUntil)}${left}`];
  }
  if (a.state === "daily_cap" || (cap && a.sentToday >= cap)) return ["cap", "daily cap reached"];
  if (a.state === "sending") return ["sending", "sending"];
  if (a.state === "waiting_gap") return ["gap", "waiting for gap"];
  return ["idle", "idle"];
}

function chart(perMinute) {
  const width = 300, height = 64, top = 4, bottom = 14, n = perMinute.length || 60;
  const max = Math.max(1, ...perMinute);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `sends per minute over the last hour, at most ${max}` });
  const slot = width / n, plot = height - top - bottom;
  root.append(svg("rect", { class: "bg", x: 0, y: top, width, height: plot }));
  perMinute.forEach((count, i) => {
    if (!count) return;
    const h = Math.max(1, (count / max) * plot);
    const bar = svg("rect", { class: "b", x: i * slot + 0.5, y: top + plot - h, width: Math.max(1, slot - 1), height: h });
    bar.append(svg("title", {}));
    bar.firstChild.textContent = `${count} send(s), ${n - i} min ago`;
    root.append(bar);
  });
  const label = (x, text, anchor) => {
    const t = svg("text", { class: "axis", x, y: height - 2, "text-anchor": anchor });
    t.textContent = text;
    root.append(t);
  };
  label(0, "−60 min", "start");
  label(width / 2, `max ${max}/min`, "middle");
  label(width, "now", "end");
  return el("div", { class: "chart" }, root);
}

function accountCard(a, names, now) {
  const [kind, label] = accountState(a, now);
  const cap = a.dailyCap || 0;
  const next = a.nextAllowedAt ? new Date(a.nextAllowedAt) : null;
  const nextText = next ? (next > now ? `${time(a.nextAllowedAt)} (in ${seconds(next - now)})` : "now") : "—";
  const queue = Object.entries(a.queueDepth || {}).filter(([, n]) => n > 0);
  const meter = el("div", { class: cap && a.sentToday >= cap ? "meter full" : "meter" },
    el("div", { width: `${cap ? Math.min(100, (100 * a.sentToday) / cap) : 0}%` }));
  return el("article", { class: "account", "data-account-id": a.bdAccountId, "data-state": a.state,
      "data-kind": kind, "data-sent-today": a.sentToday },
    el("div", { class: "top" },
      el("span", { class: "title", text: a.displayName }),
      el("span", { class: `state ${kind}`, text: label })),
    el("dl", { class: "facts" },
      el("dt", { text: "sent today" }),
      el("dd", {}, el("span", { class: "sent-today", text: `${a.sentToday} / ${cap || "∞"}` }), cap ? meter : null),
      el("dt", { text: "next allowed" }), el("dd", { text: nextText }),
      el("dt", { text: "last send" }), el("dd", { text: time(a.lastSendAt) }),
      el("dt", { text: "queue" }),
      el("dd", {}, queue.length
        ? el("ul", { class: "queue" }, ...queue.map(([cid, n]) =>
            el("li", {}, el("span", { text: names[cid] || cid.slice(0, 8) }), el("b", { text: n }))))
        : "empty")),
    chart(a.sendsPerMinute || []),
    el("div", { class: "chart-caption" }, el("span", { text: "sends per minute, last hour" }),
      el("span", { text: `gap floor ${a.floorSeconds} s` })));
}

function progress(c, stats) {
  // sent = contacted and no reply (yet); pending = not contacted yet.
  const total = stats ? stats.total : c.total_participants;
  let replied, sent, failed, skipped, pending;
  if (stats && stats.byPhase) {
    const p = stats.byPhase;
    replied = p.replied; failed = p.failed; skipped = p.skipped; pending = p.waiting;
    sent = Math.max(0, total - replied - failed - skipped - pending);
  } else {
    replied = c.total_replied; failed = stats && stats.byStatus ? stats.byStatus.failed || 0 : 0; skipped = 0;
    sent = Math.max(0, c.total_sent - replied);
    pending = Math.max(0, total - sent - replied - failed);
  }
  return { total, replied, sent, failed, skipped, pending };
}

function campaignRow(c, stats) {
  const p = progress(c, stats);
  const pct = (n) => (p.total ? (100 * n) / p.total : 0);
  const bar = el("div", { class: "bar", role: "img",
      "aria-label": `${p.sent} sent, ${p.replied} replied, ${p.failed} failed, ${p.pending} pending` },
    ...["replied", "sent", "failed", "skipped", "pending"].map((k) =>
      el("div", { class: k, width: `${pct(p[k])}%`, title: `${k}: ${p[k]}` })));
  return el("div", { class: "campaign", "data-campaign-id": c.id, "data-status": c.status,
      "data-sent": p.sent + p.replied, "data-total": p.total },
    el("div", { class: "name", title: c.name }, c.name, el("span", { class: "status", text: c.status })),
    bar,
    el("div", { class: "counts" },
      el("b", { text: p.sent }), " sent · ", el("b", { text: p.replied }), " replied · ",
      el("b", { text: p.failed }), " failed · ", el("b", { text: p.pending }), " pending",
      p.skipped ? ` · ${p.skipped} skipped` : "", ` / ${p.total}`));
}

function showProblem(text) {
  const box = document.getElementById("problem");
  box.hidden = !text;
  box.textContent = text || "";
}

async function refresh() {
  const [throttle, list] = await Promise.all([
    api("/api/campaigns/agents/throttle"),
    api(`/api/campaigns?limit=${CAMPAIGNS_SHOWN}`),
  ]);
  const campaigns = list.data || [];
  const stats = await Promise.all(campaigns.map((c) => api(`/api/campaigns/${c.id}/stats`).catch(() => null)));
  const names = Object.fromEntries(campaigns.map((c) => [c.id, c.name]));
  const now = new Date();

  const rows = document.getElementById("campaigns");
  rows.replaceChildren(...(campaigns.length
    ? campaigns.map((c, i) => campaignRow(c, stats[i]))
    : [el("p", { class: "muted", text: "No campaigns yet." })]));
  const cards = document.getElementById("accounts");
  cards.replaceChildren(...(throttle.length
    ? throttle.map((a) => accountCard(a, names, now))
    : [el("p", { class: "muted", text: "No active BD accounts." })]));
  document.getElementById("updated").textContent = `updated ${time(now)}`;
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  showProblem("");
}

async function loop() {
  try {
    await refresh();
  } catch (error) {
    if (error.status === 401 && !identity["X-Organization-Id"]) {
      showProblem("No organization: open /dashboard?org=<organization uuid>, or reach this page through the gateway.");
    } else {
      showProblem(`Could not refresh: ${error.message}. Retrying…`);
    }
  }
  window.setTimeout(loop, REFRESH_MS);
}

document.getElementById("org").textContent = identity["X-Organization-Id"]
  ? `organization ${identity["X-Organization-Id"]}` : "";
// The API reference takes the same ?org=&user=&role= for its Authorize dialog.
if (identity["X-Organization-Id"]) document.getElementById("docs-link").href = `/docs${window.location.search}`;
loop();
