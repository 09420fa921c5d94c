// ablbench report: renders the embedded page data; trials are decoded (or, under `ablbench view`,
// fetched from the same server) only when opened. Plain DOM, no framework, no network otherwise.
"use strict";
(() => {
  const OUTCOMES = {
    passed: ["passed", "pass", "✓"], failed: ["failed", "fail", "✗"],
    agent_timeout: ["agent timeout", "timeout", "T"], context_exceeded: ["context exceeded", "context", "C"],
    parse_fail_exhausted: ["parse failures", "parse", "P"], verifier_error: ["verifier error", "verifier", "V"],
    llm_error: ["LLM error", "llm", "L"], infra_error: ["infra error", "infra", "I"],
    running: ["running", "running", "…"], pending: ["not run yet", "—", "·"],
  };
  const CUT = /(⋯ \[\d+ characters cut\] ⋯)/;

  const S = {
    data: JSON.parse(document.getElementById("page-data").textContent),
    analysis: JSON.parse(document.getElementById("analysis-json").textContent),
    tab: "summary", outcomes: new Set(), region: "", search: "", order: "name", openKey: null,
    cmp: { task: null, a: 0, b: null, attA: 1, attB: 1 },
  };
  const blobs = new Map();
  document.querySelectorAll("script[data-trial]").forEach((s) => blobs.set(s.dataset.trial, s));
  const cache = new Map();

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false)
      e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }
  const oclass = (o) => "o-" + (OUTCOMES[o] ? o : "other");
  const olabel = (o) => (OUTCOMES[o] ? OUTCOMES[o][0] : o || "unknown");
  const pct = (x) => (x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%");
  const num = (x, d = 1) => (typeof x === "number" ? x.toFixed(d) : "—");
  const secs = (x) => (typeof x === "number" ? (x < 10 ? x.toFixed(2) : x.toFixed(1)) + " s" : null);
  function textBlock(text, cls) {
    const pre = el("pre", { class: cls });
    for (const part of String(text ?? "").split(CUT)) {
      if (CUT.test(part)) pre.append(el("mark", { class: "cut", text: part.replace(/^⋯ \[|\] ⋯$/g, "") }));
      else pre.append(part);
    }
    return pre;
  }
  const showKeys = (s) => String(s).replace(/\n/g, "⏎").replace(/\t/g, "⇥");
  function cellsOf(ri) { return S.data.cells[ri] || []; }
  function cellByKey(key) {
    for (const cells of S.data.cells) for (const c of cells) if (c.key === key) return c;
    return null;
  }
  function runIndexOf(key) { return Number(key.split("|")[0]); }

  async function loadTrial(key) {
    if (cache.has(key)) return cache.get(key);
    let rec = null;
    const blob = blobs.get(key);
    if (blob) {
      const bin = atob(blob.textContent.trim());
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      rec = await new Response(stream).json();
    } else if (S.data.live) {
      const r = await fetch("api/trial?key=" + encodeURIComponent(key), { cache: "no-store" });
      if (r.ok) rec = await r.json();
    }
    if (rec && !rec.running) cache.set(key, rec);
    return rec;
  }

  // ------------------------------------------------------------------ header and tabs
  const TABS = [["summary", "Summary"], ["matrix", "Tasks × runs"], ["compare", "Side by side"],
    ["provenance", "Provenance"], ["behaviour", "Behaviour"]];
  function hasBehaviour() { return !!(S.analysis && S.analysis.behaviour); }
  function renderHeader() {
    const d = S.data;
    const trials = d.cells.reduce((n, cs) => n + cs.filter((c) => c.outcome !== "pending").length, 0);
    const facts = (d.runs[0] && d.runs[0].facts) || {};
    const bits = [`${d.runs.length} run${d.runs.length === 1 ? "" : "s"}`, `${d.tasks.length} tasks`, `${trials} trials`,
      (d.live ? "updated " : "generated ") + d.generated];
    if (facts.ablbench) bits.push("ablbench " + facts.ablbench + (facts["git sha"] ? " @ " + facts["git sha"].slice(0, 10) : ""));
    document.getElementById("subtitle").textContent = bits.join(" · ");
    document.getElementById("title").textContent = d.title;
    document.title = d.title;
  }
  function renderTabs() {
    const nav = document.getElementById("tabs");
    nav.replaceChildren(...TABS.filter(([id]) => id !== "behaviour" || hasBehaviour()).map(([id, label]) =>
      el("button", { role: "tab", id: "tabbtn-" + id, "aria-selected": String(S.tab === id), onclick: () => showTab(id) }, label)));
  }
  function showTab(id) {
    S.tab = id;
    document.querySelectorAll("section.tab").forEach((s) => { s.hidden = s.dataset.tab !== id; });
    renderTabs();
    if (id === "compare") renderCompare();
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ summary
  function renderSummary() {
    const root = document.getElementById("tab-summary");
    const kids = [];
    if (S.data.analysis_error) kids.push(el("div", { class: "notice", text: "Statistics not available yet: " + S.data.analysis_error }));
    if (S.analysis && S.analysis.runs) {
      kids.push(el("div", { class: "runcards" }, S.analysis.runs.map((r) => el("div", { class: "card runcard" },
        el("div", { class: "name", text: r.name }),
        el("div", { class: "rate", text: pct(r.rate) }),
        el("div", { class: "sub", text: `${r.passes} / ${r.n} tasks solved` }),
        el("div", { class: "sub", text: `Wilson 95%: ${pct(r.wilson95[0])} – ${pct(r.wilson95[1])}` }),
        S.analysis.multi_attempt ? el("div", { class: "sub", text: `mean pass@1 ${pct(r.mean_pass_at_1)} over ${r.trials} trials` }) : null))));
    }
    if (S.data.plots_note) kids.push(el("div", { class: "notice", id: "plots-note", text: S.data.plots_note }));
    if (S.data.plots.length) {
      kids.push(el("h2", { text: "Figures" }));
      kids.push(el("div", { class: "plots" }, S.data.plots.map((p) =>
        el("figure", {}, el("img", { src: p.src, alt: p.caption, "data-name": p.name }), el("figcaption", { text: p.caption })))));
    }
    if (S.data.stats_html) {
      kids.push(el("h2", { text: "Statistics" }));
      const stats = el("div", { class: "stats card" });
      stats.innerHTML = S.data.stats_html; // rendered server-side from the analysis markdown, raw HTML escaped
      kids.push(stats);
    }
    root.replaceChildren(...kids);
  }

  // ------------------------------------------------------------------ matrix
  function regionOf() {
    const map = new Map();
    for (const o of S.data.overlap) for (const t of o.tasks) map.set(t, o.label);
    for (const t of S.data.dropped) map.set(t, "not in every run");
    return map;
  }
  function outcomeCounts() {
    const counts = new Map();
    for (const cells of S.data.cells) for (const c of cells) counts.set(c.outcome, (counts.get(c.outcome) || 0) + 1);
    const order = Object.keys(OUTCOMES);
    return [...counts.entries()].sort((a, b) => (order.indexOf(a[0]) + 1 || 99) - (order.indexOf(b[0]) + 1 || 99));
  }
  function renderMatrix() {
    const root = document.getElementById("tab-matrix");
    const chips = el("div", { class: "chips", id: "outcome-filter" }, outcomeCounts().map(([o, n]) =>
      el("button", { class: "chip " + oclass(o), "data-outcome": o, "aria-pressed": String(S.outcomes.has(o)),
        title: "show only tasks with a trial that ended " + olabel(o),
        onclick: (ev) => { S.outcomes.has(o) ? S.outcomes.delete(o) : S.outcomes.add(o);
          ev.currentTarget.setAttribute("aria-pressed", String(S.outcomes.has(o))); applyFilters(); } },
      el("span", { class: "sw" }), " " + olabel(o) + " ", el("b", { text: n }))));
    const regions = [["", `all tasks (${S.data.tasks.length})`], ...S.data.overlap.map((o) => [o.label, `${o.label} (${o.tasks.length})`])];
    if (S.data.dropped.length) regions.push(["not in every run", `not in every run (${S.data.dropped.length})`]);
    const select = el("select", { id: "region-filter", title: "overlap region of the solved-task sets",
      onchange: (ev) => { S.region = ev.target.value; applyFilters(); } },
    regions.map(([v, label]) => el("option", { value: v, selected: v === S.region }, label)));
    const search = el("input", { id: "task-search", type: "search", placeholder: "filter tasks…", value: S.search,
      oninput: (ev) => { S.search = ev.target.value.trim().toLowerCase(); applyFilters(); } });
    const order = el("select", { id: "row-order", onchange: (ev) => { S.order = ev.target.value; renderMatrix(); } },
      [["name", "task name"], ["solved", "most solved first"], ["differ", "runs disagree first"]].map(([v, label]) =>
        el("option", { value: v, selected: v === S.order }, label)));
    const toolbar = el("div", { class: "toolbar" }, chips, el("label", {}, "region ", select), el("label", {}, "order ", order),
      search, el("span", { id: "shown-count" }));
    const multi = S.data.cells.some((cs) => cs.some((c) => c.attempt > 1));
    const region = regionOf();
    const passes = S.analysis && S.analysis.runs ? Object.fromEntries(S.analysis.runs.map((r) => [r.name, r])) : {};
    const head = el("tr", {}, el("th", { class: "task" }, "task"), S.data.runs.map((r) => el("th", { "data-run": r.name },
      r.name, el("small", { text: passes[r.name] ? `${passes[r.name].passes}/${passes[r.name].n} solved` : `${r.trials} trials` }))),
    el("th", {}, "solved by"));
    const byRun = S.data.cells.map((cells) => {
      const m = new Map();
      for (const c of cells) { if (!m.has(c.task)) m.set(c.task, []); m.get(c.task).push(c); }
      return m;
    });
    const solvedBy = (task) => byRun.filter((m) => (m.get(task) || []).some((c) => c.outcome === "passed")).length;
    const tasks = [...S.data.tasks];
    if (S.order === "solved") tasks.sort((a, b) => solvedBy(b) - solvedBy(a) || a.localeCompare(b));
    if (S.order === "differ") {
      const differ = (t) => { const k = solvedBy(t); return k > 0 && k < byRun.length ? 1 : 0; };
      tasks.sort((a, b) => differ(b) - differ(a) || solvedBy(b) - solvedBy(a) || a.localeCompare(b));
    }
    const rows = tasks.map((task) => el("tr", { "data-task": task },
      el("th", { class: "task", title: task }, el("button", { class: "cmp-btn", title: "compare two runs on this task side by side",
        onclick: () => openCompare(task) }, "⇆"), " ", task),
      byRun.map((m, ri) => el("td", { "data-run": S.data.runs[ri].name }, el("div", { class: "cellbox" },
        m.has(task) ? m.get(task).map((c) => cellButton(c, multi)) : el("span", { class: "muted", title: "not in this run" }, "—")))),
      el("td", { class: "region" + (region.get(task) === "solved by none" ? " none" : ""), text: region.get(task) || "" })));
    const table = el("table", { class: "matrix", id: "matrix-table" }, el("thead", {}, head), el("tbody", {}, rows));
    const panel = el("div", { id: "trial-panel", class: "card scroll" },
      el("div", { class: "empty", text: "Click a cell to open that trial: its instruction, every turn, the commands, the terminal, the verifier." }));
    const note = el("div", { class: "legend-note", text: "Rows: tasks. Columns: runs" + (multi ? " (one square per attempt)" : "") +
      ". Colour: how the trial ended. ⇆ opens the task side by side." });
    root.replaceChildren(toolbar, el("div", { class: "split" }, el("div", {}, el("div", { class: "matrix-box scroll" }, table), note), panel));
    applyFilters();
    if (S.openKey) openTrial(S.openKey, false);
  }
  function cellButton(c, multi) {
    const [label, short, glyph] = OUTCOMES[c.outcome] || [c.outcome, c.outcome, "?"];
    const tip = [`${c.task} · attempt ${c.attempt}: ${label}`, c.reward !== undefined ? `reward ${c.reward}` : null,
      c.error ? c.error : null, c.trace ? null : "no trial folder: summary only",
      ...(c.audit || []).map((f) => "\u2691 " + f.rule + ": " + f.command)].filter(Boolean).join("\n");
    const flag = c.audit && c.audit.length ? "\u2691" : "";
    return el("button", { class: `cell ${oclass(c.outcome)}${multi ? " k" : ""}${c.trace ? "" : " notrace"}${flag ? " flagged" : ""}${S.openKey === c.key ? " sel" : ""}`,
      "data-key": c.key, "data-outcome": c.outcome, title: tip, onclick: () => openTrial(c.key, true) }, (multi ? glyph : short) + flag);
  }
  function applyFilters() {
    const region = regionOf();
    let shown = 0;
    document.querySelectorAll("#matrix-table tbody tr").forEach((tr) => {
      const task = tr.dataset.task;
      let ok = !S.search || task.toLowerCase().includes(S.search);
      if (ok && S.region) ok = region.get(task) === S.region;
      if (ok && S.outcomes.size) ok = [...tr.querySelectorAll("button.cell")].some((b) => S.outcomes.has(b.dataset.outcome));
      tr.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    const count = document.getElementById("shown-count");
    if (count) count.textContent = `showing ${shown} of ${S.data.tasks.length} tasks`;
  }

  // ------------------------------------------------------------------ one trial
  function factsLine(pairs) {
    return el("div", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => el("span", {}, k + " ", el("b", { text: v }))));
  }
  function trialHead(key, rec, cell) {
    const run = S.data.runs[runIndexOf(key)].name;
    const res = (rec && rec.result) || {};
    const outcome = res.outcome || cell.outcome;
    const ctr = res.counters || {};
    const tm = res.timings || {};
    return el("div", { class: "trial-headbox" },
      el("div", { class: "trial-head" }, el("h2", { class: "trial-title", text: `${run} · ${cell.task} · attempt ${cell.attempt}` }),
        el("span", { class: "badge outcome " + oclass(outcome), text: olabel(outcome) }),
        el("span", { class: "reward", text: "reward " + (res.reward ?? cell.reward ?? "—") })),
      factsLine([["turns", ctr.turns ?? (rec && rec.turns ? rec.turns.length : null)], ["parse_fail", ctr.parse_fail ?? cell.parse_fail],
        ["no_cmd", ctr.no_cmd ?? cell.no_cmd], ["tokens in", ctr.tokens_in], ["tokens out", ctr.tokens_out],
        ["agent", secs(tm.agent)], ["verifier", secs(tm.verifier)], ["total", secs(tm.total)], ["agent stop", res.agent_stop]]),
      cell.audit && cell.audit.length ? el("div", { class: "audit-flags" }, el("b", { text: "\u2691 audit flags (the pass still counts)" }),
        el("ul", {}, cell.audit.map((f) => el("li", {}, f.rule + ": ", el("code", { text: f.command }))))) : null);
  }
  function turnCard(t) {
    const p = t.parse || {};
    const u = t.usage || {};
    const tm = t.timings || {};
    const cmds = t.commands || [];
    const meta = [`${cmds.length} command${cmds.length === 1 ? "" : "s"}`,
      u.prompt_tokens !== undefined ? `${u.prompt_tokens} → ${u.completion_tokens} tokens` : null,
      secs(tm.model_s) ? "model " + secs(tm.model_s) : null, secs(tm.terminal_s) ? "terminal " + secs(tm.terminal_s) : null,
      t.finish_reason ? "finish: " + t.finish_reason : null, t.retries ? `${t.retries} retries` : null,
      p.task_complete ? "task_complete" : null].filter(Boolean).join(" · ");
    return el("article", { class: "turn", "data-turn": t.turn },
      el("header", {}, el("b", { text: "Turn " + t.turn }),
        el("span", { class: "badge parse p-" + (p.status || "none"), text: p.status || "?" }), el("span", { class: "muted", text: meta })),
      t.reasoning ? el("details", { class: "reasoning" }, el("summary", { text: `reasoning (${t.reasoning.length} chars)` }), textBlock(t.reasoning)) : null,
      el("div", { class: "label", text: "reply" }), textBlock(t.reply, "reply"),
      p.error ? el("div", { class: "perror", text: "parse error: " + p.error }) : null,
      (p.warnings || []).length ? el("ul", { class: "warnings" }, p.warnings.map((w) => el("li", { text: w }))) : null,
      cmds.length ? el("div", { class: "label", text: "commands sent" }) : null,
      cmds.length ? el("table", { class: "cmds" }, cmds.map((c) => el("tr", {},
        el("td", {}, el("code", { class: "keys", text: showKeys(c.keystrokes) })),
        el("td", { text: `${c.duration ?? "—"} s asked` }), el("td", { text: c.waited_s !== undefined ? `waited ${c.waited_s} s` : "" }),
        el("td", { text: c.ended || "" })))) : null,
      t.observation !== undefined && t.observation !== null ? el("div", { class: "label", text: "terminal after the turn" }) : null,
      t.observation !== undefined && t.observation !== null ? textBlock(t.observation, "term obs") : null);
  }
  function eventNote(ev) {  // any other trace record (context_overflow, an oracle's command/result ...)
    const short = [], long = [];
    for (const [k, v] of Object.entries(ev)) {
      if (["t", "event", "after_turn"].includes(k) || v === null || v === "") continue;
      const text = typeof v === "object" ? JSON.stringify(v) : String(v);
      (text.length > 100 || text.includes("\n") ? long : short).push([k, text]);
    }
    return el("div", { class: "event", "data-event": ev.event || "" },
      el("b", { text: ev.event || "event" }), ev.after_turn ? ` after turn ${ev.after_turn}` : "",
      short.length ? " · " + short.map(([k, v]) => `${k}: ${v}`).join(" · ") : "",
      long.map(([k, v]) => el("details", {}, el("summary", { text: k }), textBlock(v))));
  }
  function endAndVerifier(rec) {
    const res = rec.result || {};
    const v = res.verifier || {};
    const end = rec.end || {};
    const kids = [];
    if (rec.end) kids.push(el("div", { class: "event end", text: `agent stopped: ${end.stop}` + (end.error ? ` (${end.error})` : "") }));
    if (res.error) kids.push(el("div", { class: "perror", text: "trial error: " + res.error }));
    if (res.exception) kids.push(el("details", {}, el("summary", { text: "exception" }), textBlock(JSON.stringify(res.exception, null, 2))));
    const dl = el("dl", { class: "kv" });
    for (const [k, val] of [["reward", res.reward ?? rec.reward_txt], ["reward.txt", rec.reward_txt], ["exit code", v.exit_code],
      ["timed out", v.timed_out], ["reward from", v.reward_source], ["duration", secs(v.duration_s)], ["verifier error", v.error]]) {
      if (val === null || val === undefined || val === "") continue;
      dl.append(el("dt", { text: k }), el("dd", { text: String(val) }));
    }
    kids.push(el("div", { class: "card verifier " + oclass(res.outcome) }, el("h3", { text: "Verifier" }), dl,
      rec.verifier_log ? textBlock(rec.verifier_log, "term vlog") : el("div", { class: "muted", text: "no verifier.log" })));
    if (rec.runner_log) kids.push(el("details", {}, el("summary", { text: "runner log" }), textBlock(rec.runner_log, "rlog")));
    return kids;
  }
  function trialBody(rec) {
    const kids = [];
    if (rec.instruction) kids.push(el("details", { open: true, class: "instr" }, el("summary", { text: "instruction" }), textBlock(rec.instruction, "instruction")));
    else kids.push(el("div", { class: "muted", text: "instruction: not recorded here (task folder not found)" }));
    if (rec.start && rec.start.screen) kids.push(el("details", {}, el("summary", { text: "terminal at start" }), textBlock(rec.start.screen, "term")));
    const events = rec.events || [];
    let ei = 0;
    for (const t of rec.turns) {
      while (ei < events.length && events[ei].after_turn < t.turn) kids.push(eventNote(events[ei++]));
      kids.push(turnCard(t));
    }
    while (ei < events.length) kids.push(eventNote(events[ei++]));
    if (!rec.turns.length) kids.push(el("div", { class: "muted", text: "no agent turns recorded" }));
    if (rec.running) kids.push(el("div", { class: "notice", text: "this trial is still running" }));
    else kids.push(...endAndVerifier(rec));
    return kids;
  }
  async function openTrial(key, scroll) {
    S.openKey = key;
    document.querySelectorAll("button.cell.sel").forEach((b) => b.classList.remove("sel"));
    document.querySelectorAll(`button.cell[data-key="${CSS.escape(key)}"]`).forEach((b) => b.classList.add("sel"));
    const panel = document.getElementById("trial-panel");
    const cell = cellByKey(key);
    if (!panel || !cell) return;
    panel.dataset.key = key;
    panel.setAttribute("aria-busy", "true");
    const rec = cell.trace ? await loadTrial(key) : null;
    if (S.openKey !== key) return;
    const others = S.data.runs.map((r, i) => [r, i]).filter(([, i]) => i !== runIndexOf(key) &&
      cellsOf(i).some((c) => c.task === cell.task));
    const actions = others.length ? el("div", { class: "actions" }, "side by side with ", others.map(([r, i]) =>
      el("button", { class: "sbs-with", "data-run": r.name, onclick: () => openCompare(cell.task, runIndexOf(key), i, cell.attempt) }, r.name))) : null;
    const kids = [trialHead(key, rec, cell), actions];
    if (rec) kids.push(...trialBody(rec));
    else kids.push(el("div", { class: "notice", text: cell.trace ? "could not load this trial" :
      "Only the summary row is available for this run (no trial folder): " + (cell.error || olabel(cell.outcome)) }));
    panel.replaceChildren(...kids);
    panel.removeAttribute("aria-busy");
    if (scroll) panel.scrollTop = 0;
    else if (S.panelTop !== null && S.panelTop !== undefined) { panel.scrollTop = S.panelTop; S.panelTop = null; }
  }

  // ------------------------------------------------------------------ side by side
  function openCompare(task, a, b, attempt) {
    const n = S.data.runs.length;
    S.cmp.task = task;
    if (a !== undefined) S.cmp.a = a;
    if (b !== undefined) S.cmp.b = b;
    if (S.cmp.b === null || S.cmp.b === S.cmp.a) S.cmp.b = n > 1 ? (S.cmp.a === n - 1 ? 0 : n - 1) : S.cmp.a;
    if (attempt !== undefined) { S.cmp.attA = attempt; S.cmp.attB = attempt; }
    showTab("compare");
  }
  function defaultCompareTask() {
    const a = S.cmp.a, b = S.cmp.b;
    const first = (ri, task) => cellsOf(ri).find((c) => c.task === task);
    for (const task of S.data.tasks) {
      const ca = first(a, task), cb = first(b, task);
      if (ca && cb && (ca.outcome === "passed") !== (cb.outcome === "passed")) return task;
    }
    return S.data.tasks[0];
  }
  function attemptsOf(ri, task) { return cellsOf(ri).filter((c) => c.task === task).map((c) => c.attempt); }
  async function renderCompare() {
    const root = document.getElementById("tab-compare");
    const n = S.data.runs.length;
    if (S.cmp.b === null) S.cmp.b = n > 1 ? n - 1 : 0;
    if (!S.cmp.task) S.cmp.task = defaultCompareTask();
    const task = S.cmp.task;
    const attA = attemptsOf(S.cmp.a, task), attB = attemptsOf(S.cmp.b, task);
    if (!attA.includes(S.cmp.attA)) S.cmp.attA = attA[0] || 1;
    if (!attB.includes(S.cmp.attB)) S.cmp.attB = attB[0] || 1;
    const sel = (id, options, value, onchange) => el("select", { id, onchange: (ev) => { onchange(ev.target.value); renderCompare(); } },
      options.map(([v, label]) => el("option", { value: String(v), selected: String(v) === String(value) }, label)));
    const runOpts = S.data.runs.map((r, i) => [i, r.name]);
    const bar = el("div", { class: "cmp-bar" },
      el("label", {}, "task ", sel("cmp-task", S.data.tasks.map((t) => [t, t]), task, (v) => { S.cmp.task = v; })),
      el("label", {}, "left ", sel("cmp-a", runOpts, S.cmp.a, (v) => { S.cmp.a = Number(v); })),
      el("label", {}, "attempt ", sel("cmp-att-a", attA.map((x) => [x, x]), S.cmp.attA, (v) => { S.cmp.attA = Number(v); })),
      el("label", {}, "right ", sel("cmp-b", runOpts, S.cmp.b, (v) => { S.cmp.b = Number(v); })),
      el("label", {}, "attempt ", sel("cmp-att-b", attB.map((x) => [x, x]), S.cmp.attB, (v) => { S.cmp.attB = Number(v); })),
      el("button", { onclick: () => { [S.cmp.a, S.cmp.b, S.cmp.attA, S.cmp.attB] = [S.cmp.b, S.cmp.a, S.cmp.attB, S.cmp.attA]; renderCompare(); } }, "swap"));
    const keyA = `${S.cmp.a}|${task}|${S.cmp.attA}`, keyB = `${S.cmp.b}|${task}|${S.cmp.attB}`;
    const cA = cellByKey(keyA), cB = cellByKey(keyB);
    const [rA, rB] = await Promise.all([cA && cA.trace ? loadTrial(keyA) : null, cB && cB.trace ? loadTrial(keyB) : null]);
    if (S.cmp.task !== task) return;
    const side = (key, cell, rec) => el("div", { class: "sbs-cell", "data-key": key },
      cell ? trialHead(key, rec, cell) : el("div", { class: "none", text: "this run has no such trial" }));
    const grid = el("div", { class: "sbs", id: "sbs" },
      el("div", { class: "sbs-row sbs-head-row" }, el("div", { class: "sbs-cell sbs-head", "data-side": "left" }, side(keyA, cA, rA)),
        el("div", { class: "sbs-cell sbs-head", "data-side": "right" }, side(keyB, cB, rB))));
    const instr = (rA && rA.instruction) || (rB && rB.instruction);
    if (instr) grid.append(el("details", { class: "full", open: true }, el("summary", { text: "instruction" }), textBlock(instr, "instruction")));
    const ta = rA ? rA.turns : [], tb = rB ? rB.turns : [];
    for (let i = 0; i < Math.max(ta.length, tb.length); i++) {
      const pane = (t, side) => el("div", { class: "sbs-cell", "data-side": side },
        t ? turnCard(t) : el("div", { class: "none", text: "no turn " + (i + 1) }));
      grid.append(el("div", { class: "sbs-row", "data-turn": i + 1 }, pane(ta[i], "left"), pane(tb[i], "right")));
    }
    const tail = (rec, side) => el("div", { class: "sbs-cell", "data-side": side },
      rec ? (rec.running ? el("div", { class: "notice", text: "still running" }) : endAndVerifier(rec))
        : el("div", { class: "none", text: "no trial folder to show" }));
    grid.append(el("div", { class: "sbs-row sbs-end" }, tail(rA, "left"), tail(rB, "right")));
    root.replaceChildren(bar, grid);
  }

  // ------------------------------------------------------------------ provenance
  function renderProvenance() {
    const root = document.getElementById("tab-provenance");
    const keys = [];
    for (const r of S.data.runs) for (const k of Object.keys(r.facts || {})) if (!keys.includes(k)) keys.push(k);
    const table = el("table", { class: "plain", id: "provenance-table" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), S.data.runs.map((r) => el("th", { text: r.name })))),
      el("tbody", {}, keys.map((k) => {
        const values = S.data.runs.map((r) => (r.facts && r.facts[k] !== undefined ? String(r.facts[k]) : "—"));
        const differs = k !== "source" && new Set(values).size > 1;
        return el("tr", { "data-fact": k, class: differs ? "differs" : null }, el("td", { class: "k", text: k }),
          values.map((v) => el("td", { text: v })));
      })));
    const raw = S.data.runs.map((r) => r.run_json ? el("details", {}, el("summary", { text: `${r.name}: run.json` }), textBlock(r.run_json)) : null);
    root.replaceChildren(el("h2", { text: "Where each run came from" }),
      el("p", { class: "muted", text: "From each run's run.json. Rows in bold differ between the runs." }), el("div", { class: "stats" }, table), ...raw);
  }

  // ------------------------------------------------------------------ behaviour (any shape of JSON)
  function generic(value, depth) {
    if (value === null || value === undefined) return el("span", { class: "muted", text: "—" });
    if (typeof value !== "object") return el("span", { text: typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value) });
    if (Array.isArray(value)) {
      if (value.every((v) => typeof v !== "object" || v === null)) return el("ul", {}, value.map((v) => el("li", { text: String(v) })));
      if (value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
        const cols = [...new Set(value.flatMap((v) => Object.keys(v)))];
        return el("table", { class: "plain" }, el("thead", {}, el("tr", {}, cols.map((c) => el("th", { text: c })))),
          el("tbody", {}, value.map((v) => el("tr", {}, cols.map((c) => el("td", {}, generic(v[c], depth + 1)))))));
      }
      return el("ul", {}, value.map((v) => el("li", {}, generic(v, depth + 1))));
    }
    const entries = Object.entries(value);
    if (entries.length && entries.every(([, v]) => v && typeof v === "object" && !Array.isArray(v) &&
        Object.values(v).every((x) => x === null || typeof x !== "object"))) {
      const cols = [...new Set(entries.flatMap(([, v]) => Object.keys(v)))];
      return el("table", { class: "plain" }, el("thead", {}, el("tr", {}, el("th", {}, ""), cols.map((c) => el("th", { text: c })))),
        el("tbody", {}, entries.map(([k, v]) => el("tr", {}, el("td", { class: "k", text: k }), cols.map((c) => el("td", {}, generic(v[c], depth + 1)))))));
    }
    return el("div", {}, entries.map(([k, v]) => el("div", {}, el(depth < 2 ? "h3" : "h4", { text: k }), generic(v, depth + 1))));
  }
  function renderBehaviour() {
    const root = document.getElementById("tab-behaviour");
    if (!hasBehaviour()) { root.replaceChildren(); return; }
    root.replaceChildren(el("h2", { text: "Behaviour" }), el("div", { class: "generic stats" }, generic(S.analysis.behaviour, 0)));
  }

  // ------------------------------------------------------------------ live mode
  function renderAll() {
    renderHeader(); renderTabs(); renderSummary(); renderMatrix(); renderProvenance(); renderBehaviour();
    if (S.tab === "compare") renderCompare();
    if (S.tab === "behaviour" && !hasBehaviour()) showTab("summary");
  }
  async function poll() {
    const status = document.getElementById("live-status");
    try {
      const r = await fetch("api/state?v=" + encodeURIComponent(S.data.version || ""), { cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      const j = await r.json();
      if (j.changed) {  // re-render in place: filters, the open trial and every scroll position stay
        const y = window.scrollY;
        const box = document.querySelector(".matrix-box");
        const boxTop = box ? box.scrollTop : 0;
        const panel = document.getElementById("trial-panel");
        S.panelTop = panel ? panel.scrollTop : null;
        S.data = j.data; S.analysis = j.analysis; cache.clear();
        renderAll();
        const newBox = document.querySelector(".matrix-box");
        if (newBox) newBox.scrollTop = boxTop;
        window.scrollTo(0, y);
      }
      status.textContent = "live · checked " + new Date().toLocaleTimeString();
      status.classList.remove("stale");
    } catch (e) {
      status.textContent = "live · server not answering";
      status.classList.add("stale");
    }
    setTimeout(poll, 1000 * (S.data.poll_s || 3));
  }

  renderAll();
  showTab(location.hash === "#matrix" ? "matrix" : "summary");
  if (S.data.live) {
    document.getElementById("live-status").hidden = false;
    setTimeout(poll, 1000 * (S.data.poll_s || 3));
  }
  document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
  document.documentElement.dataset.ready = "1";
})();
