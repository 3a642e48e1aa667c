// The node dashboard: polls the node's /api/ and renders figures, charts (uPlot) and settlements.
// Amounts arrive as decimal strings of base units and are formatted with BigInt, so a uint256 figure
// is shown exactly; each figure keeps its raw value in data-raw.
"use strict";
(() => {
  const TOKEN_KEY = "kuota-dashboard-token";
  const FAST_MS = 5000;
  const SLOW_MS = 30000;
  const TRAFFIC_DAYS = 30;
  const $ = (id) => document.getElementById(id);
  const charts = {};
  let units = null;

  class AuthRequired extends Error {}

  // A token handed over in the fragment (/#token=...) never reaches the server's logs; keep it for
  // this tab only and take it out of the address bar.
  function adoptFragmentToken() {
    const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (!match) return false;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }

  async function api(name) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch("/api/" + name, { headers, cache: "no-store" });
    if (response.status === 401) throw new AuthRequired();
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${name}: ${body.error || response.status + " " + response.statusText}`);
    return body;
  }

  function formatUnits(raw, unit, maxFraction = 6) {
    const value = BigInt(raw);
    const base = 10n ** BigInt(unit.decimals);
    const whole = value / base;
    let fraction = (value % base).toString().padStart(unit.decimals, "0").slice(0, maxFraction).replace(/0+$/, "");
    const wholeText = whole.toLocaleString("en-US");
    return (fraction ? `${wholeText}.${fraction}` : wholeText) + " " + unit.symbol;
  }

  function formatBytes(raw) {
    const value = Number(BigInt(raw));
    const steps = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let scaled = value;
    let i = 0;
    while (scaled >= 1024 && i < steps.length - 1) { scaled /= 1024; i += 1; }
    return (i === 0 ? String(value) : scaled.toFixed(scaled >= 100 ? 0 : 2)) + " " + steps[i];
  }

  function formatDuration(seconds) {
    const s = Math.floor(seconds);
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min`;
    if (s < 172800) return `${Math.floor(s / 3600)} h`;
    return `${Math.floor(s / 86400)} d`;
  }

  function show(id, raw, format) {
    const el = $(id);
    if (raw === null || raw === undefined) { el.textContent = "–"; el.dataset.raw = ""; return; }
    el.dataset.raw = String(raw);
    el.textContent = format ? format(raw) : String(raw);
    el.title = String(raw);
  }

  function quotaBar(id, used, quota) {
    const bar = $(id);
    if (used === null || quota === null) { bar.style.width = "0"; return; }
    const share = Math.min(1, Number(BigInt(used)) / Number(BigInt(quota)));
    bar.style.width = (share * 100).toFixed(1) + "%";
    bar.classList.toggle("high", share >= 0.9);
  }

  function renderStatus(status) {
    units = { token: status.token, reward: status.rewardToken };
    $("node").textContent = status.node;
    $("chain-id").textContent = status.chainId;
    const relay = status.relay;
    const state = $("relay-state");
    state.textContent = relay ? "relay running" : "relay not running";
    state.className = "pill " + (relay ? "up" : "down");
    show("sessions-active", relay ? relay.sessionsActive : null);
    show("sessions-total", relay ? relay.sessionsTotal : null);
    show("sessions-refused", relay ? relay.sessionsRefused : null);
    show("uptime", relay ? relay.uptimeS : null, formatDuration);
    for (const period of ["today", "month"]) {
      const figures = status[period];
      show(`${period}-bytes`, figures.bytes, formatBytes);
      show(`${period}-quota`, figures.quota, formatBytes);
      if (figures.quota === null) $(`${period}-quota`).textContent = "none set";
      quotaBar(`${period}-bar`, figures.bytes, figures.quota);
    }
    show("unsettled", status.unsettled ? status.unsettled.amount : null, (v) => formatUnits(v, status.token));
    show("unsettled-channels", status.unsettled ? status.unsettled.channels : null);
  }

  function renderEarnings(earnings) {
    const t = earnings.totals;
    const money = (v) => formatUnits(v, units.token);
    show("gross", t.gross, money);
    show("fee", t.fee, money);
    show("net", t.net, money);
    show("credit", t.credit, money);
    show("rewards-claimable", t.rewardsClaimable, (v) => formatUnits(v, units.reward));
    show("rewards-claimed", t.rewardsClaimed, (v) => formatUnits(v, units.reward));
    show("gas", t.gasWei, (v) => formatUnits(v, { symbol: "ETH", decimals: 18 }, 8));
    show("settlement-count", t.settlements);
    // The totals hold from the last settlement until now: extend each line to the present.
    const scale = 10 ** units.token.decimals;
    // Nothing was earned before the first settlement: the lines start from zero an hour before it.
    const points = earnings.series.slice();
    if (points.length) {
      points.unshift({ t: points[0].t - 3600, gross: 0, fee: 0, net: 0 });
      points.push({ ...points[points.length - 1], t: Math.max(Date.now() / 1000, points[points.length - 1].t) });
    }
    drawChart("earnings-chart", [points.map((p) => p.t), points.map((p) => p.net / scale), points.map((p) => p.fee / scale)], [
      { label: `net (${units.token.symbol})`, stroke: "#2563eb", width: 2, fill: "rgba(37,99,235,.08)", paths: uPlot.paths.stepped({ align: 1 }) },
      { label: `fee (${units.token.symbol})`, stroke: "#b45309", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) },
    ], 3600);
  }

  // The API lists the hours with receipts; the hours between them and up to now carried nothing paid.
  // At most the last TRAFFIC_DAYS days are drawn.
  function hourly(traffic) {
    const step = traffic.bucketS;
    const now = Math.floor(Date.now() / 1000 / step) * step;
    const byStart = new Map(traffic.points.map((p) => [p.t, p]));
    const last = Math.max(now, ...traffic.points.map((p) => p.t));
    const first = Math.max(traffic.points.length ? traffic.points[0].t : last, last - TRAFFIC_DAYS * 86400);
    const xs = [];
    const mib = [];
    for (let t = first; t <= last; t += step) {
      xs.push(t);
      mib.push(byStart.has(t) ? byStart.get(t).bytes / 2 ** 20 : 0);
    }
    return [xs, mib];
  }

  function renderTraffic(traffic) {
    drawChart("traffic-chart", hourly(traffic), [
      { label: "paid MiB", stroke: "#15803d", fill: "rgba(21,128,61,.35)", paths: uPlot.paths.bars({ size: [0.9, Infinity], align: 1 }) },
    ], traffic.bucketS);
  }

  // ``pad`` seconds either side of the data on the time axis (one bucket for bars, an hour for lines),
  // so that a single point still sits in a readable range of hours rather than years.
  function drawChart(id, data, series, pad) {
    const el = $(id);
    if (charts[id]) {
      charts[id].setData(data);
      return;
    }
    const opts = {
      width: Math.max(320, el.clientWidth), height: 240,
      legend: { live: false },
      series: [{}, ...series.map((s) => ({ points: { show: false }, ...s }))],
      axes: [{}, { size: 70 }],
      scales: {
        // From the data itself: uPlot widens a single time point to 1000 days when in seconds.
        x: { time: true, range: (u) => {
          const xs = u.data[0];
          const now = Date.now() / 1000;
          return xs.length ? [xs[0] - pad, xs[xs.length - 1] + pad] : [now - 86400, now];
        } },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
    };
    charts[id] = new uPlot(opts, data, el);
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function renderSettlements(history) {
    const body = $("settlements").tBodies[0];
    body.replaceChildren();
    if (!history.batches.length) {
      const row = body.insertRow();
      const td = cell("no settlement yet", "empty");
      td.colSpan = 9;
      row.append(td);
      return;
    }
    const money = (v) => formatUnits(v, history.token);
    for (const b of history.batches) {
      const row = body.insertRow();
      row.dataset.batch = b.batch;
      row.append(cell(String(b.batch)), cell(b.state, "state-" + b.state), cell(b.block === null ? "–" : String(b.block)),
        cell(String(b.receipts)), cell(money(b.paid)), cell(money(b.fee)), cell(money(b.net)),
        cell(b.gasWei === null ? "–" : formatUnits(b.gasWei, { symbol: "ETH", decimals: 18 }, 8)));
      for (const [i, key] of [[4, "paid"], [5, "fee"], [6, "net"], [7, "gasWei"]]) row.cells[i].dataset.raw = b[key] ?? "";
      const link = cell("");
      if (b.txHash) {
        const a = document.createElement("a");
        a.href = b.txUrl;
        a.textContent = b.txHash.slice(0, 10) + "…" + b.txHash.slice(-8);
        a.title = b.txHash;
        a.rel = "noopener noreferrer";
        link.append(a);
      }
      row.append(link);
    }
  }

  function showError(error) {
    const box = $("error");
    if (error instanceof AuthRequired) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token-form").hidden = false;
      $("relay-state").textContent = "token required";
      box.hidden = true;
      document.body.dataset.auth = "required";
      return;
    }
    box.textContent = String(error.message || error);
    box.hidden = false;
  }

  const SECTIONS = [["status", renderStatus, false], ["traffic", renderTraffic, false],
    ["settlements", renderSettlements, true], ["earnings", renderEarnings, true]];
  const rendered = new Set();

  // Each section is fetched and drawn on its own: a chain read that fails leaves the figures of the
  // others current and its own last figures in place, with the reason shown above them.
  async function refresh(slow) {
    const problems = [];
    try {
      for (const [name, render, isSlow] of SECTIONS) {
        if (isSlow && !slow) continue;
        try {
          render(await api(name));
          rendered.add(name);
        } catch (error) {
          if (error instanceof AuthRequired) throw error;
          problems.push(String(error.message || error));
        }
      }
    } catch (error) {
      showError(error);
      return;
    }
    $("updated").textContent = new Date().toLocaleTimeString();
    if (problems.length) showError(new Error(problems.join("; ")));
    else $("error").hidden = true;
    if (rendered.size === SECTIONS.length) document.body.dataset.ready = "1";
    document.body.dataset.problems = String(problems.length);
  }

  function retryWithToken() {
    $("token-form").hidden = true;
    delete document.body.dataset.auth;
    refresh(true);
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    retryWithToken();
  });
  // A link with the token opened in a tab that already shows the page changes only the fragment.
  window.addEventListener("hashchange", () => { if (adoptFragmentToken()) retryWithToken(); });

  adoptFragmentToken();
  let ticks = 0;
  refresh(true);
  setInterval(() => { ticks += 1; refresh(ticks % (SLOW_MS / FAST_MS) === 0); }, FAST_MS);
})();
