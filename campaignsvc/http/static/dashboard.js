// The throttling dashboard: polls the API every 2 s and redraws account cards and campaign bars; a selected
// campaign (#campaign=<id>) opens its view: why its contacts wait, its forecast and, for a draft, its
// pre-launch checks. No framework, no build step, nothing loaded from elsewhere. See campaignsvc/http/dashboard.py.
// Every text from the API is set with textContent (el's "text" or a child string), never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const FORECAST_MS = 30000; // the forecast simulates every remaining send: read it on selection, then every 30 s
const PREFLIGHT_MS = 10000;
const CAMPAIGNS_SHOWN = 12;
const SVG = "http://www.w3.org/2000/svg";

// The waiting codes (docs/visibility.md), in the order explain() tries them, with what each means.
const WAITING = [
  ["campaign_paused", "campaign paused", "The campaign is paused."],
  ["account_paused", "account paused", "Its account is paused for this campaign."],
  ["account_inactive", "account inactive", "No account is assigned, or the account is disconnected or inactive."],
  ["account_restricted", "account restricted", "The account is spam-restricted."],
  ["flood_blocked", "flood-blocked", "The account is flood-blocked (FLOOD_WAIT, PEER_FLOOD) until the block ends."],
  ["awaiting_reply", "awaiting reply", "Its next step waits for a reply, until the reply wait ends."],
  ["auto_reply_pause", "auto-reply pause", "The contact's automatic answer (away message or bot) holds the next send back."],
  ["missing_data", "missing data", "Its next step needs a placeholder this contact has no value for; the step will be skipped."],
  ["in_doubt", "in doubt", "An earlier send's outcome is unknown: it is checked, never repeated blindly."],
  ["retry_backoff", "retry backoff", "The last attempt failed with a temporary error; it is tried again later."],
  ["daily_cap", "daily cap", "The account used today's cap; the next send is after its local midnight."],
  ["ramp_up", "ramp-up", "A new account's ramp-up budget for today is used; it grows day by day."],
  ["outside_window", "outside window", "The sending window is closed until its next opening."],
  ["queued", "queued", "Behind other sends of its account, spread at the gap."],
  ["step_delay", "step delay", "Its step's delay is still running."],
  ["gap", "gap", "Next in line: the account's gap since its last send is running."],
];
const WAITING_ORDER = WAITING.map(([code]) => code);
const WAITING_INFO = Object.fromEntries(WAITING.map(([code, label, meaning]) => [code, { label, meaning }]));

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
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
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

// A promise's outcome as {value} or {error}, so one failing call does not fail the others.
function settle(promise) {
  return promise.then((value) => ({ value }), (error) => ({ error }));
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
      el("dt", { text: "sent by" }), el("dd", { class: "owner", text: a.ownerInstance || "—" }),
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
  const selected = c.id === view.id;
  const row = el("div", { class: selected ? "campaign selected" : "campaign", "data-campaign-id": c.id,
      "data-status": c.status, "data-sent": p.sent + p.replied, "data-total": p.total },
    el("div", { class: "name", title: c.name },
      el("a", { class: "select", href: `#campaign=${encodeURIComponent(c.id)}`, text: c.name,
        "aria-current": selected ? "true" : null, "aria-controls": "campaign-view" }),
      el("span", { class: "status", text: c.status })),
    bar,
    el("div", { class: "counts" },
      el("b", { text: p.sent }), " sent · ", el("b", { text: p.replied }), " replied · ",
      el("b", { text: p.failed }), " failed · ", el("b", { text: p.pending }), " pending",
      p.skipped ? ` · ${p.skipped} skipped` : "", ` / ${p.total}`));
  // The whole card selects; the name is the link a keyboard reaches (Tab, Enter).
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a")) selectCampaign(c.id);
  });
  return row;
}

// ---- The campaign view: #campaign=<id> selects a campaign; each panel loads and fails on its own. ----

let listed = new Map(); // campaign id -> {campaign, stats: {value}|{error}} from the last refresh
const view = { id: null, zone: "UTC", forecast: { for: null, at: 0, busy: false },
  preflight: { for: null, at: 0, busy: false } };

function hashCampaign() {
  const id = new URLSearchParams(window.location.hash.slice(1)).get("campaign");
  return id || null;
}

function selectCampaign(id) {
  if (id) {
    window.location.hash = `campaign=${encodeURIComponent(id)}`; // hashchange opens it
  } else {
    window.history.pushState(null, "", window.location.pathname + window.location.search);
    openView(null);
  }
}

function panel(name) {
  return document.getElementById(`${name}-panel`);
}

function showPanel(name, state, ...children) {
  const box = panel(name);
  box.dataset.state = state;
  box.dataset.campaignId = view.id || "";
  box.querySelector(".panel-body").replaceChildren(...children);
}

function panelError(name, error) {
  showPanel(name, "error", el("p", { class: "panel-problem", text: `Could not load: ${error.message}` }));
}

function openView(id) {
  view.id = id;
  view.forecast = { for: null, at: 0, busy: false };
  view.preflight = { for: null, at: 0, busy: false };
  document.getElementById("campaign-view").hidden = !id;
  for (const card of document.querySelectorAll(".campaign")) {
    const selected = card.dataset.campaignId === id;
    card.classList.toggle("selected", selected);
    const link = card.querySelector("a.select");
    if (selected) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
  if (!id) return;
  document.getElementById("view-title").textContent = listed.get(id)?.campaign.name || "Campaign";
  document.getElementById("view-status").textContent = listed.get(id)?.campaign.status || "";
  for (const name of ["waiting", "forecast", "preflight"]) {
    showPanel(name, "loading", el("p", { class: "muted", text: "loading…" }));
  }
  panel("preflight").hidden = true;
  refreshView();
}

async function viewedCampaign(id) {
  // A campaign beyond the first CAMPAIGNS_SHOWN is read on its own.
  const known = listed.get(id);
  if (known) return known;
  const [campaign, stats] = await Promise.all([
    settle(api(`/api/campaigns/${encodeURIComponent(id)}`)),
    settle(api(`/api/campaigns/${encodeURIComponent(id)}/stats`)),
  ]);
  if (campaign.error) throw campaign.error;
  return { campaign: campaign.value, stats };
}

async function refreshView() {
  const id = view.id;
  if (!id) return;
  let entry;
  try {
    entry = await viewedCampaign(id);
  } catch (error) {
    if (id !== view.id) return;
    document.getElementById("view-status").textContent = `could not load: ${error.message}`;
    return;
  }
  if (id !== view.id) return;
  const c = entry.campaign;
  view.zone = (c.schedule && c.schedule.timezone) || "UTC";
  document.getElementById("view-title").textContent = c.name;
  document.getElementById("view-status").textContent = c.status;
  document.getElementById("campaign-view").dataset.campaignId = id;
  document.getElementById("campaign-view").dataset.status = c.status;

  if (entry.stats.error) panelError("waiting", entry.stats.error);
  else showWaiting(entry.stats.value);

  if (view.forecast.for !== id || Date.now() - view.forecast.at > FORECAST_MS) {
    load(view.forecast, id, `/api/campaigns/${encodeURIComponent(id)}/forecast`, showForecast, "forecast");
  }
  const draft = c.status === "draft";
  panel("preflight").hidden = !draft;
  if (draft && (view.preflight.for !== id || Date.now() - view.preflight.at > PREFLIGHT_MS)) {
    load(view.preflight, id, `/api/campaigns/${encodeURIComponent(id)}/preflight`, showPreflight, "preflight");
  }
}

// Reads a slower panel in the background (the 2 s loop does not wait for it), one request at a time.
async function load(state, id, path, show, name) {
  if (state.busy) return;
  state.busy = true;
  state.for = id;
  state.at = Date.now();
  try {
    const body = await api(path);
    if (view.id === id) show(body);
  } catch (error) {
    if (view.id === id) panelError(name, error);
  } finally {
    state.busy = false;
  }
}

// ---- Why contacts wait: one stacked bar of stats.waiting by code, and its legend. ----

function waitingClass(code) {
  return WAITING_INFO[code] ? `w-${code}` : "w-other";
}

function waitingMeaning(code) {
  return WAITING_INFO[code] ? WAITING_INFO[code].meaning : `Waiting code ${code}.`;
}

function waitingCodes(waiting) {
  const rank = (code) => (WAITING_ORDER.includes(code) ? WAITING_ORDER.indexOf(code) : WAITING_ORDER.length);
  return Object.keys(waiting).filter((code) => waiting[code] > 0).sort((a, b) => rank(a) - rank(b));
}

function showWaiting(stats) {
  const waiting = stats.waiting || {};
  const codes = waitingCodes(waiting);
  const total = codes.reduce((n, code) => n + waiting[code], 0);
  const asOf = el("p", { class: "muted as-of", text: `${total} open participant(s) · as of ${time(stats.waitingAsOf)}` });
  if (!total) {
    const none = stats.total ? "Nothing is waiting: no open participants." : "No participants yet: a draft enrols them at its start.";
    showPanel("waiting", "ready", el("p", { class: "muted", text: none }), asOf);
    return;
  }
  const label = (code) => (WAITING_INFO[code] ? WAITING_INFO[code].label : code);
  const bar = el("div", { class: "waiting-bar", role: "img", "data-total": total,
      "aria-label": codes.map((code) => `${waiting[code]} ${label(code)}`).join(", ") },
    ...codes.map((code) => el("div", { class: waitingClass(code), "data-code": code, "data-count": waiting[code],
      width: `${(100 * waiting[code]) / total}%`, title: `${label(code)}: ${waiting[code]} — ${waitingMeaning(code)}` })));
  const legend = el("ul", { class: "waiting-legend" },
    ...codes.map((code) => el("li", { "data-code": code, title: waitingMeaning(code) },
      el("i", { class: `seg ${waitingClass(code)}` }),
      el("span", { class: "code", text: label(code) }),
      el("b", { class: "count", text: waiting[code] }),
      el("span", { class: "meaning", text: waitingMeaning(code) }))));
  showPanel("waiting", "ready", bar, legend, asOf);
}

// ---- The forecast: sends per day to the finish, with the what-if finishes as marked lines. ----

const BOTTLENECKS = {
  daily_cap: "the accounts' daily caps", gap: "the gap between sends", window: "the sending window",
  step_delays: "the steps' delays", blocked: "blocked or unusable accounts", none: "nothing",
};

function when(value) {
  return value
    ? new Date(value).toLocaleString([], { dateStyle: "medium", timeStyle: "short", hour12: false })
    : "never";
}

function localDate(value, zone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date(value));
  } catch (_) {
    return new Date(value).toISOString().slice(0, 10);
  }
}

function dayIndex(days, value, zone) {
  const date = localDate(value, zone);
  const i = days.findIndex((d) => d.date === date);
  if (i >= 0) return i;
  return date < days[0].date ? 0 : days.length - 1;
}

function svgText(root, attrs, text) {
  const node = svg("text", attrs);
  node.textContent = text;
  root.append(node);
}

function forecastChart(f, zone) {
  const days = f.daily;
  const marks = [
    ...(f.finishesAt ? [{ cls: "finish", at: f.finishesAt, label: "finish" }] : []),
    ...(f.whatIf || []).filter((w) => w.finishesAt)
      .map((w) => ({ cls: "whatif", at: w.finishesAt, label: `+${w.extraAccounts}`, extra: w.extraAccounts })),
  ];
  const width = 640, left = 30, bottom = 16, top = 6 + 11 * marks.length, height = top + 110 + bottom;
  const plot = height - top - bottom, slot = (width - left) / days.length;
  const max = Math.max(1, ...days.map((d) => d.sends));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", id: "forecast-chart",
    "aria-label": `sends per day from ${days[0].date} to ${days[days.length - 1].date}, at most ${max} a day` });
  root.append(svg("rect", { class: "bg", x: left, y: top, width: width - left, height: plot }));
  svgText(root, { class: "axis", x: left - 4, y: top + 8, "text-anchor": "end" }, String(max));
  svgText(root, { class: "axis", x: left - 4, y: top + plot, "text-anchor": "end" }, "0");
  days.forEach((d, i) => {
    const h = (d.sends / max) * plot;
    const bar = svg("rect", { class: "day", "data-date": d.date, "data-sends": d.sends,
      x: left + i * slot + 0.5, y: top + plot - h, width: Math.max(1, slot - 1), height: h });
    const title = svg("title", {});
    title.textContent = `${d.date}: ${d.sends} send(s)`;
    bar.append(title);
    root.append(bar);
  });
  marks.forEach((m, k) => {
    const x = left + (dayIndex(days, m.at, zone) + 0.5) * slot;
    const line = svg("line", { class: m.cls, x1: x, x2: x, y1: 4 + 11 * k + 3, y2: top + plot,
      "data-at": m.at, "data-extra-accounts": m.extra === undefined ? null : m.extra });
    const title = svg("title", {});
    title.textContent = m.cls === "finish" ? `finishes ${when(m.at)}` : `with ${m.extra} more account(s): ${when(m.at)}`;
    line.append(title);
    root.append(line);
    const right = x > width - 60;
    svgText(root, { class: `mark ${m.cls}`, x: right ? x - 3 : x + 3, y: 4 + 11 * k + 8,
      "text-anchor": right ? "end" : "start" }, m.label);
  });
  svgText(root, { class: "axis", x: left, y: height - 3, "text-anchor": "start" }, days[0].date);
  svgText(root, { class: "axis", x: width, y: height - 3, "text-anchor": "end" }, days[days.length - 1].date);
  return el("div", { class: "forecast-chart" }, root);
}

function showForecast(f) {
  const finish = f.finishesAt
    ? el("dd", { class: "finishes-at", "data-finishes-at": f.finishesAt, text: when(f.finishesAt) })
    : el("dd", { class: "finishes-at never", "data-finishes-at": "", text: `never — ${f.reason || "no reason given"}` });
  const whatIf = (f.whatIf || []).map((w) => el("li", { "data-extra-accounts": w.extraAccounts,
    "data-finishes-at": w.finishesAt || "" },
  `+${w.extraAccounts} account${w.extraAccounts === 1 ? "" : "s"}: `, el("b", { text: when(w.finishesAt) })));
  const facts = el("dl", { class: "facts forecast-facts" },
    el("dt", { text: "finishes" }), finish,
    el("dt", { text: "remaining sends" }), el("dd", { class: "remaining", text: f.remainingSends }),
    el("dt", { text: "bottleneck" }),
    el("dd", { class: "bottleneck", "data-bottleneck": f.bottleneck, text: BOTTLENECKS[f.bottleneck] || f.bottleneck }),
    el("dt", { text: "what if" }), el("dd", {}, whatIf.length ? el("ul", { class: "what-if" }, ...whatIf) : "—"));
  const chart = f.daily && f.daily.length
    ? forecastChart(f, view.zone)
    : el("p", { class: "muted", text: "Nothing left to send." });
  const assumptions = el("details", { class: "muted assumptions" }, el("summary", { text: "assumptions" }),
    el("ul", {}, ...(f.assumptions || []).map((text) => el("li", { text }))));
  showPanel("forecast", "ready", facts, chart, assumptions);
}

// ---- Ready to launch? The preflight checks of a draft: failing errors, then warnings, then passing. ----

function checkState(check) {
  if (!check.count) return "pass";
  return check.severity === "error" ? "error" : "warning";
}

function showPreflight(report) {
  const order = { error: 0, warning: 1, pass: 2 };
  const checks = [...report.checks].sort((a, b) => order[checkState(a)] - order[checkState(b)]);
  const errors = checks.filter((c) => checkState(c) === "error").length;
  const warnings = checks.filter((c) => checkState(c) === "warning").length;
  let headline = errors ? `Fix ${errors} problem${errors === 1 ? "" : "s"} before starting`
    : report.ok ? "Ready to launch" : "Not ready to launch";
  if (warnings) headline += ` · ${warnings} warning${warnings === 1 ? "" : "s"}`;
  const marks = { error: "✗", warning: "!", pass: "✓" };
  const list = el("ul", { class: "checks" }, ...checks.map((c) => {
    const state = checkState(c);
    return el("li", { class: `check ${state}`, "data-code": c.code, "data-severity": c.severity,
        "data-state": state, "data-count": c.count },
      el("span", { class: "mark", "aria-hidden": "true", text: marks[state] }),
      el("span", { class: "check-text" },
        el("span", { class: "check-code", text: c.code }), " ",
        el("span", { class: "check-message", text: c.message }),
        c.sample && c.sample.length
          ? el("span", { class: "sample muted", text: ` e.g. ${c.sample.map((s) => String(s).slice(0, 8)).join(", ")}` })
          : null),
      state === "pass" ? null : el("b", { class: "check-count", text: c.count }));
  }));
  showPanel("preflight", "ready",
    el("p", { class: report.ok ? "headline ok" : "headline not-ok", "data-ok": String(report.ok), text: headline }),
    list);
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
  const stats = await Promise.all(campaigns.map((c) => settle(api(`/api/campaigns/${c.id}/stats`))));
  const names = Object.fromEntries(campaigns.map((c) => [c.id, c.name]));
  const now = new Date();
  listed = new Map(campaigns.map((c, i) => [c.id, { campaign: c, stats: stats[i] }]));

  const rows = document.getElementById("campaigns");
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest(".campaign") : null;
  rows.replaceChildren(...(campaigns.length
    ? campaigns.map((c, i) => campaignRow(c, stats[i].value || null))
    : [el("p", { class: "muted", text: "No campaigns yet." })]));
  if (focused) { // the redraw replaced the focused card: keep the keyboard where it was
    const again = rows.querySelector(`.campaign[data-campaign-id="${CSS.escape(focused.dataset.campaignId)}"] a.select`);
    if (again) again.focus();
  }
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
    listed = new Map();
    if (error.status === 401 && !identity["X-Organization-Id"]) {
      showProblem("No organization: open /dashboard?org=<organization uuid>, or reach this page through the gateway.");
    } else {
      showProblem(`Could not refresh: ${error.message}. Retrying…`);
    }
  }
  await refreshView(); // its panels catch their own errors
  window.setTimeout(loop, REFRESH_MS);
}

document.getElementById("org").textContent = identity["X-Organization-Id"]
  ? `organization ${identity["X-Organization-Id"]}` : "";
// The API reference takes the same ?org=&user=&role= for its Authorize dialog.
if (identity["X-Organization-Id"]) document.getElementById("docs-link").href = `/docs${window.location.search}`;
window.addEventListener("hashchange", () => openView(hashCampaign()));
document.getElementById("view-close").addEventListener("click", () => selectCampaign(null));
openView(hashCampaign());
loop();
