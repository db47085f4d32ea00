// The workclaim dashboard: polls the JSON endpoints and draws them with DOM calls.
// Store data (queue names, workers, errors, payloads) is only ever set as textContent or as an
// attribute value, never parsed as HTML. The bearer token lives in sessionStorage and travels in
// an Authorization header; no cookie is used, so a cross-site page cannot act with it.
"use strict";

(function () {
  const script = document.currentScript;
  const ROOT = new URL("..", script.src).pathname; // the server's root, ending in "/"
  const TOKEN_KEY = "workclaim.token";
  const REFRESH_MS = 2000;
  const main = document.getElementById("main");
  const banner = document.getElementById("banner");
  const login = document.getElementById("login");
  const loginError = document.getElementById("login-error");
  const updated = document.getElementById("updated");
  const forget = document.getElementById("forget");
  let timer = null;
  let busy = false;
  let skew = 0; // server clock minus browser clock, in ms

  // -- helpers ------------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  function duration(ms) {
    const s = Math.abs(ms) / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + Math.floor(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function ms(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const v = seconds * 1000;
    return (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + " ms";
  }

  // An RFC 3339 time from the server as "YYYY-MM-DD HH:MM:SS.mmm UTC".
  function when(iso) {
    if (iso === null || iso === undefined) return "–";
    const t = new Date(iso);
    return Number.isNaN(t.getTime()) ? String(iso) : t.toISOString().replace("T", " ").replace("Z", " UTC");
  }

  function serverNow() {
    return Date.now() + skew;
  }

  function itemLink(id) {
    return el("a", { href: ROOT + "ui/items/" + encodeURIComponent(id), text: "#" + id });
  }

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = false;
  }

  function clearBanner() {
    banner.hidden = true;
    banner.textContent = "";
  }

  // -- the API ------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || "HTTP " + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json, application/problem+json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const options = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(ROOT + path, options);
    } catch (err) {
      throw new ApiError(0, { detail: "the server did not answer" });
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Handles an error of a refresh: the token prompt, the unreachable banner, or a message.
  function failed(err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 401) {
      const had = sessionStorage.getItem(TOKEN_KEY) !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      askToken(had ? "That token was refused. Enter a valid one." : "");
      return;
    }
    if (err.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken("That token lacks the admin scope the dashboard needs.");
      return;
    }
    if (err.status === 503 || err.status === 0) {
      showBanner(
        err.status === 503
          ? "The database is unreachable. The figures below are from the last good refresh; retrying…"
          : "The server does not answer. Retrying…"
      );
      return;
    }
    showBanner("Refresh failed: " + err.message);
  }

  function askToken(message) {
    stop();
    main.replaceChildren();
    loginError.textContent = message || "";
    login.hidden = false;
    forget.hidden = true;
    document.getElementById("token-input").focus();
  }

  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token-input");
    const token = input.value.trim();
    input.value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    login.hidden = true;
    start();
  });

  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken("");
  });

  // -- admin actions ------------------------------------------------------------------------
  async function act(question, method, path, body) {
    if (!window.confirm(question)) return;
    try {
      await api(method, path, body);
    } catch (err) {
      if (err instanceof ApiError && err.status !== 0 && err.status !== 503) {
        window.alert("Refused: " + err.message);
      } else {
        failed(err);
      }
    }
    refresh();
  }

  function requeueButton(id) {
    return el("button", {
      type: "button",
      className: "action",
      "data-action": "requeue",
      text: "Requeue",
      onclick: () => act("Requeue item #" + id + " with fresh attempts?", "POST", "items/" + id + "/requeue", {}),
    });
  }

  function cancelButton(id) {
    return el("button", {
      type: "button",
      className: "action danger",
      "data-action": "cancel",
      text: "Cancel",
      onclick: () => act("Cancel queued item #" + id + "?", "DELETE", "items/" + id),
    });
  }

  function purgeButton(queue) {
    return el("button", {
      type: "button",
      className: "action danger",
      "data-action": "purge",
      text: "Purge finished…",
      onclick: () => {
        const answer = window.prompt(
          "Delete the finished (done, dead, cancelled) items of queue " + queue +
            " that finished more than how many seconds ago?",
          "3600"
        );
        if (answer === null) return;
        const seconds = Number(answer);
        if (!Number.isFinite(seconds) || seconds < 0) {
          window.alert("Give a number of seconds (0 or more).");
          return;
        }
        act(
          "Delete for good the finished items of " + queue + " older than " + seconds + " s?",
          "POST",
          "queues/" + encodeURIComponent(queue) + "/purge",
          { older_than: seconds }
        );
      },
    });
  }

  function pauseButton(queue, paused) {
    const verb = paused ? "resume" : "pause";
    const question = paused
      ? "Resume queue " + queue + "? Claims take its items again."
      : "Pause queue " + queue + "? No claim takes its items until it is resumed; live leases run on.";
    return el("button", {
      type: "button",
      className: "action" + (paused ? "" : " danger"),
      "data-action": verb,
      text: paused ? "Resume" : "Pause",
      onclick: () => act(question, "POST", "queues/" + encodeURIComponent(queue) + "/" + verb),
    });
  }

  function runScheduleButton(name) {
    return el("button", {
      type: "button",
      className: "action",
      "data-action": "run",
      text: "Run now",
      onclick: () =>
        act(
          "Enqueue the item of schedule " + name + " now, outside its slots?",
          "POST",
          "schedules/" + encodeURIComponent(name) + "/run"
        ),
    });
  }

  function removeScheduleButton(name) {
    return el("button", {
      type: "button",
      className: "action danger",
      "data-action": "unschedule",
      text: "Remove",
      onclick: () =>
        act(
          "Remove schedule " + name + "? No slot of it fires afterwards; the items it enqueued stay.",
          "DELETE",
          "schedules/" + encodeURIComponent(name)
        ),
    });
  }

  // -- the dashboard ------------------------------------------------------------------------
  // A group key as shown: the default group (null) is "(default)".
  function groupName(group) {
    return group === null || group === undefined ? "(default)" : group;
  }

  function rateText(r) {
    return r === null ? "none" : r.count + " per " + r.per_seconds + " s";
  }

  // The queue's flow control: paused or not, its four limits, and its busiest groups.
  function policyBlock(q) {
    const p = q.policy;
    const limits = [
      ["concurrency", p.concurrency === null ? "none" : p.concurrency],
      ["group_concurrency", p.group_concurrency === null ? "none" : p.group_concurrency],
      ["rate", rateText(p.rate)],
      ["group_rate", rateText(p.group_rate)],
    ];
    const state = el("span", {
      className: "state " + (p.paused ? "paused" : "active"),
      "data-state": p.paused ? "paused" : "active",
      text: p.paused ? "paused" : "active",
    });
    const line = el(
      "p",
      { className: "policy", "data-policy": "" },
      state,
      ...limits.map(([name, value]) =>
        el("span", { className: "limit" }, name + " ", el("strong", { "data-limit": name, text: value }))
      )
    );
    const groups = q.groups.length
      ? el(
          "p",
          { className: "groups muted", "data-groups": "" },
          "busiest groups: ",
          ...q.groups.map((g, i) =>
            el("span", { "data-group": groupName(g.group) }, (i ? ", " : "") + groupName(g.group) + " " + g.live)
          )
        )
      : null;
    return [line, groups];
  }

  const STATUSES = ["queued", "claimed", "expired", "done", "dead", "cancelled", "total"];

  function countsTable(stats) {
    return el(
      "div",
      { className: "counts" },
      ...STATUSES.map((s) =>
        el(
          "div",
          { className: "tile" + (s === "expired" && stats[s] > 0 ? " warn" : "") },
          el("span", { className: "num", "data-count": s, text: stats[s] }),
          el("span", { className: "label", text: s })
        )
      )
    );
  }

  function chart(series, sampleSeconds) {
    const W = 320;
    const H = 90;
    const pad = 4;
    const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    const peak = Math.max(1, ...series.map((p) => Math.max(p.claimed, p.completed)));
    const title = svg("title");
    title.textContent = "items/s claimed and completed, one point per " + sampleSeconds + " s";
    box.append(title);
    box.append(svg("line", { x1: 0, y1: H - pad, x2: W, y2: H - pad, class: "axis" }));
    const n = Math.max(series.length - 1, 1);
    for (const key of ["claimed", "completed"]) {
      const points = series
        .map((p, i) => `${((i / n) * W).toFixed(1)},${(H - pad - (p[key] / peak) * (H - 2 * pad - 10)).toFixed(1)}`)
        .join(" ");
      if (series.length > 0) box.append(svg("polyline", { points, class: "line " + key }));
    }
    if (series.length === 0) {
      const note = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "note" });
      note.textContent = "collecting samples…";
      box.append(note);
    }
    if (series.length > 1) {
      const span = (Date.parse(series[series.length - 1].at) - Date.parse(series[0].at)) / 1000;
      const left = svg("text", { x: 2, y: H - pad - 2, class: "note" });
      left.textContent = "−" + duration(span * 1000);
      const right = svg("text", { x: W - 2, y: H - pad - 2, "text-anchor": "end", class: "note" });
      right.textContent = "now";
      box.append(left, right);
    }
    const label = svg("text", { x: 2, y: 10, class: "peak" });
    label.textContent = "max " + peak.toFixed(peak < 10 ? 1 : 0) + "/s";
    box.append(label);
    return box;
  }

  function rate(series, key) {
    if (series.length === 0) return "–";
    return series[series.length - 1][key].toFixed(1) + "/s";
  }

  function queueCard(q, sampleSeconds) {
    const lat = q.claim_latency;
    const fused = q.fused_latency;
    const latency = el(
      "p",
      { className: "latency", "data-latency": "claim" },
      "claim latency p50 ",
      el("strong", { text: ms(lat.p50) }),
      " · p95 ",
      el("strong", { text: ms(lat.p95) }),
      el("span", { className: "muted", text: ` (${lat.count} claims served here, last ${lat.window_seconds / 60} min)` })
    );
    const fusedLine =
      fused.count > 0
        ? el("p", { className: "latency muted", text: `complete-and-claim p50 ${ms(fused.p50)} · p95 ${ms(fused.p95)} (${fused.count})` })
        : null;
    const legend = el(
      "p",
      { className: "legend" },
      el("span", { className: "key claimed" }),
      "claimed " + rate(q.series, "claimed") + " ",
      el("span", { className: "key completed" }),
      "completed " + rate(q.series, "completed")
    );
    return el(
      "section",
      { className: "card", "data-queue": q.name },
      el(
        "h2",
        {},
        el("span", { text: q.name }),
        el("span", { className: "actions" }, pauseButton(q.name, q.policy.paused), purgeButton(q.name))
      ),
      countsTable(q.stats),
      ...policyBlock(q),
      chart(q.series, sampleSeconds),
      legend,
      latency,
      fusedLine
    );
  }

  function leasesTable(queues) {
    const rows = [];
    const now = serverNow();
    for (const q of queues) {
      for (const l of q.leases) {
        const expires = l.expires_at ? Date.parse(l.expires_at) - now : null;
        const started = l.claimed_at || l.updated_at;
        rows.push(
          el(
            "tr",
            { className: l.overdue || (expires !== null && expires <= 0) ? "overdue" : "", "data-item": l.id },
            el("td", { text: q.name }),
            el("td", {}, itemLink(l.id)),
            el("td", { "data-field": "group", text: groupName(l.group) }),
            el("td", { text: l.worker || "–" }),
            el("td", { text: l.attempt + " / " + l.max_attempts }),
            el("td", { text: (l.claimed_at ? "" : "≥ ") + duration(now - Date.parse(started)) }),
            el("td", { text: expires === null ? "–" : expires > 0 ? duration(expires) : "overdue " + duration(expires) })
          )
        );
      }
    }
    return table(
      "leases",
      "Live leases",
      ["queue", "item", "group", "worker", "attempt", "age", "expires in"],
      rows,
      "No item is claimed."
    );
  }

  function deadTable(queues) {
    const rows = [];
    for (const q of queues) {
      for (const d of q.dead) {
        rows.push(
          el(
            "tr",
            { "data-item": d.id },
            el("td", { text: q.name }),
            el("td", {}, itemLink(d.id)),
            el("td", { text: d.attempts + " / " + d.max_attempts }),
            el("td", { className: "error-text", text: d.last_error || "–" }),
            el("td", { text: duration(serverNow() - Date.parse(d.updated_at)) + " ago" }),
            el("td", {}, requeueButton(d.id))
          )
        );
      }
    }
    const section = table("dead", "Dead items", ["queue", "item", "attempts", "last error", "died", ""], rows, "No dead item.");
    for (const q of queues) {
      if (q.stats.dead > q.dead.length) {
        section.append(
          el("p", { className: "muted", text: `${q.name}: the ${q.dead.length} oldest of ${q.stats.dead} dead items are listed (GET /queues/${q.name}/items?status=dead pages through all).` })
        );
      }
    }
    return section;
  }

  // A slot as shown: its UTC time and how far it is from now.
  function slotText(iso) {
    if (iso === null || iso === undefined) return "–";
    const delta = Date.parse(iso) - serverNow();
    return when(iso) + (delta >= 0 ? " (in " + duration(delta) + ")" : " (" + duration(delta) + " ago)");
  }

  // The last slot's item: a link to it and its status (none once it was purged).
  function lastItemCell(s) {
    if (s.last_item_id === null) return el("td", { "data-field": "last_item", text: "–" });
    const status = s.last_status === null ? "purged" : s.last_status;
    return el(
      "td",
      { "data-field": "last_item" },
      itemLink(s.last_item_id),
      " ",
      el("span", { className: "status " + status, "data-status": status, text: status })
    );
  }

  function schedulesTable(data) {
    const rows = data.schedules.map((s) =>
      el(
        "tr",
        { "data-schedule": s.name },
        el("td", { "data-field": "name", text: s.name }),
        el("td", { "data-field": "queue", text: s.queue }),
        el("td", { "data-field": "cron" }, el("code", { text: s.cron }), " " + s.timezone),
        el(
          "td",
          { "data-field": "enabled" },
          el("span", {
            className: "state " + (s.enabled ? "active" : "paused"),
            "data-enabled": s.enabled ? "true" : "false",
            text: s.enabled ? "enabled" : "disabled",
          })
        ),
        el("td", { "data-field": "next_slot", text: slotText(s.next_slot) }),
        el("td", { "data-field": "last_slot", text: slotText(s.last_slot) }),
        lastItemCell(s),
        el("td", { className: "actions" }, runScheduleButton(s.name), removeScheduleButton(s.name))
      )
    );
    const section = table(
      "schedules",
      "Schedules",
      ["name", "queue", "cron", "state", "next slot", "last slot", "last item", ""],
      rows,
      "No schedule is declared."
    );
    if (data.schedules_truncated) {
      section.append(
        el("p", { className: "muted", text: `The first ${data.schedules.length} schedules by name are listed (GET /schedules lists all).` })
      );
    }
    return section;
  }

  function table(id, title, columns, rows, empty) {
    const body = rows.length
      ? el("tbody", {}, ...rows)
      : el("tbody", {}, el("tr", {}, el("td", { colspan: columns.length, className: "muted", text: empty })));
    return el(
      "section",
      { id },
      el("h2", { text: title }),
      el("table", { className: "rows" }, el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { text: c })))), body)
    );
  }

  function drawDashboard(data) {
    const cards = data.queues.map((q) => queueCard(q, data.sample_seconds));
    const grid = el("div", { className: "grid" }, ...cards);
    const parts = [grid];
    if (data.queues.length === 0) parts.unshift(el("p", { className: "muted", text: "No queue holds an item yet." }));
    if (data.truncated) parts.push(el("p", { className: "muted", text: "Only the first 50 queues are shown." }));
    parts.push(schedulesTable(data), leasesTable(data.queues), deadTable(data.queues));
    main.replaceChildren(...parts);
  }

  // -- the item page ------------------------------------------------------------------------
  const FIELDS = ["queue", "group", "status", "priority", "attempts", "max_attempts", "worker", "expires_at", "run_at", "dedupe_key", "created_at", "updated_at", "last_error"];

  function fieldText(item, f) {
    if (f === "group") return groupName(item.group);
    if (f.endsWith("_at")) return when(item[f]);
    return item[f] === null ? "–" : item[f];
  }

  function drawItem(item, history) {
    const facts = el(
      "table",
      { className: "facts" },
      el(
        "tbody",
        {},
        ...FIELDS.map((f) =>
          el(
            "tr",
            {},
            el("th", { text: f }),
            el("td", { "data-field": f, text: fieldText(item, f) })
          )
        )
      )
    );
    const actions = el("p", {});
    if (item.status === "dead") actions.append(requeueButton(item.id));
    if (item.status === "queued") actions.append(cancelButton(item.id));
    const events = history.events.slice().reverse().map((e) =>
      el(
        "tr",
        { "data-kind": e.kind },
        el("td", { text: when(e.at) }),
        el("td", { text: e.kind }),
        el("td", { text: e.attempt }),
        el("td", { text: e.status }),
        el("td", { text: e.worker || "–" }),
        el("td", { text: e.token === null ? "–" : e.token }),
        el("td", { className: "error-text", text: e.error || "" })
      )
    );
    const parts = [
      el("h1", {}, "Item ", el("span", { text: "#" + item.id })),
      el("p", {}, el("a", { href: ROOT, text: "← all queues" })),
      actions,
      facts,
      el("h2", { text: "Payload" }),
      el("pre", { className: "json", text: JSON.stringify(item.payload, null, 2) }),
      item.result === null ? null : el("h2", { text: "Result" }),
      item.result === null ? null : el("pre", { className: "json", text: JSON.stringify(item.result, null, 2) }),
      table("history", "Attempt history", ["at", "event", "attempt", "status after", "worker", "token", "error"], events, "No history is kept for this item's queue (or nothing happened yet)."),
    ];
    main.replaceChildren(...parts.filter((part) => part !== null));
  }

  // -- refresh loop -------------------------------------------------------------------------
  const itemMatch = window.location.pathname.match(/\/ui\/items\/(\d+)$/);

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      if (itemMatch) {
        const id = itemMatch[1];
        const item = await api("GET", "items/" + id);
        // The newest 1,000 events (a long job's heartbeats can make many more), shown oldest first.
        const history = await api("GET", "items/" + id + "/history?order=newest&limit=1000");
        drawItem(item, history);
      } else {
        const data = await api("GET", "dashboard");
        skew = Date.parse(data.now) - Date.now();
        drawDashboard(data);
      }
      clearBanner();
      forget.hidden = sessionStorage.getItem(TOKEN_KEY) === null;
      updated.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && itemMatch) {
        main.replaceChildren(el("p", { className: "error", text: "No such item." }));
        clearBanner();
      } else {
        failed(err);
      }
    } finally {
      busy = false;
    }
  }

  function start() {
    stop();
    refresh();
    timer = window.setInterval(refresh, REFRESH_MS);
  }

  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  start();
})();
