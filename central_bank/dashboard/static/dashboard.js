// The central bank dashboard: polls /dashboard/api/summary every 2 s (session cookie) and
// renders it. Payments per second come from the difference of each operator's payments_total
// between two polls. Every text goes in with textContent: nothing from the server is HTML.

const POLL_MS = 2000;
const previous = new Map(); // operator code -> {total, at (ms)}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  if (text !== null && text !== undefined) node.textContent = String(text);
  return node;
}

export function formatAmount(minor, decimals, currency) {
  const negative = minor < 0;
  const abs = Math.abs(minor);
  const scale = 10 ** decimals;
  const units = Math.floor(abs / scale);
  const frac = abs % scale;
  let text = units.toLocaleString("en-US");
  if (decimals > 0) text += "." + String(frac).padStart(decimals, "0");
  return `${negative ? "-" : ""}${text} ${currency}`.trim();
}

function setAmount(node, minor, s, withCurrency = true) {
  const text = formatAmount(minor, s.decimals, withCurrency ? s.currency : "");
  node.textContent = text;
  node.setAttribute("data-minor", String(minor));
}

function count(n) {
  return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
}

function shortTime(iso) {
  // The server's times are ISO 8601 in UTC ("...+00:00"): shown to the second.
  return typeof iso === "string" ? iso.slice(0, 19).replace("T", " ") + " UTC" : "-";
}

function queueParts(queues) {
  return Object.entries(queues || {}).map(([name, n]) => `${name.replaceAll("_", " ")}: ${count(n)}`);
}

function queuesText(queues) {
  if (!queues) return "unknown";
  const parts = queueParts(queues);
  return parts.length ? parts.join(", ") : "none";
}

function queuesCell(queues) {
  // One queue a line: a narrow column, no sideways scroll.
  const cell = el("td", { class: "queues" });
  const parts = queueParts(queues);
  if (!queues || !parts.length) cell.textContent = queuesText(queues);
  else cell.append(...parts.map((part) => el("div", {}, part)));
  return cell;
}

function operation(s, kind) {
  const op = (s.supply.operations || {})[kind] || { count: 0, amount: 0 };
  return `${op.count} for ${formatAmount(op.amount, s.decimals, s.currency)}`;
}

function renderSupply(s) {
  setAmount(document.getElementById("total-outstanding"), s.supply.digital_currency_outstanding, s);
  setAmount(document.getElementById("total-reserves"), s.supply.reserves_total, s);
  document.getElementById("issuance").textContent = operation(s, "issuance");
  document.getElementById("redemption").textContent = operation(s, "redemption");
  document.getElementById("live-tokens").textContent = String(s.supply.live_tokens);
  document.getElementById("cb-queues").textContent = queuesText(s.central_bank.queues);
}

function rate(code, total, now) {
  if (total === null || total === undefined) return "-";
  const before = previous.get(code);
  previous.set(code, { total, at: now });
  if (!before || now <= before.at) return "…";
  const perSecond = Math.max(0, total - before.total) / ((now - before.at) / 1000);
  return perSecond.toFixed(1);
}

function renderOperators(s, now) {
  for (const unit of document.querySelectorAll("#operators .unit")) {
    unit.textContent = `(${s.currency})`;
  }
  const body = document.querySelector("#operators tbody");
  const rows = s.operators.map((o) => {
    const tr = el("tr", { "data-operator": o.code, "data-reachable": o.reachable });
    const name = el("th", { scope: "row" });
    name.append(el("span", { class: "id" }, o.code), " ", el("span", { class: "muted" }, o.name));
    tr.append(name);
    // The currency is in the column headers: the amounts stay on one line in a narrow window.
    const outstanding = el("td", { class: "num outstanding" });
    setAmount(outstanding, o.outstanding, s, false);
    const reserves = el("td", { class: "num reserves" });
    setAmount(reserves, o.reserves, s, false);
    const known = o.payments_total !== null && o.payments_total !== undefined;
    const total = el(
      "td",
      { class: "num payments-total", "data-value": known ? o.payments_total : null },
      count(o.payments_total),
    );
    const perSecond = el("td", { class: "num payments-rate" }, rate(o.code, o.payments_total, now));
    const refused = el(
      "td",
      { class: "num refused-total", "data-value": o.refused_total },
      count(o.refused_total),
    );
    const queues = queuesCell(o.queues);
    const reach = el(
      "td",
      { class: o.reachable ? "reachable ok" : "reachable bad" },
      o.reachable ? "yes" : `no${o.error ? ` (${o.error})` : ""}`,
    );
    tr.append(outstanding, reserves, total, perSecond, refused, queues, reach);
    return tr;
  });
  body.replaceChildren(...rows);
}

function renderAlerts(s) {
  const totals = Object.entries(s.alerts.totals_by_rule);
  document.getElementById("alert-totals").textContent = totals.length
    ? `${count(s.alerts.total)} alert${s.alerts.total === 1 ? "" : "s"} in all: ` +
      totals.map(([rule, n]) => `${rule} ${count(n)}`).join(", ")
    : "No AML alerts reported.";
  const body = document.querySelector("#alerts tbody");
  const rows = s.alerts.recent.map((a) => {
    const tr = el("tr", { class: "alert-row", "data-rule": a.rule });
    tr.append(
      el("td", { class: "time" }, shortTime(a.occurred_at)),
      el("td", { class: "id" }, a.operator),
      el("td", { class: "id" }, a.wallet),
      el("td", {}, a.rule),
      el("td", { class: "num", "data-minor": a.amount }, formatAmount(a.amount, s.decimals, s.currency)),
    );
    return tr;
  });
  body.replaceChildren(...rows);
  // No alerts: the sentence above says so; no empty table under it.
  document.getElementById("alerts").closest(".scroll").hidden = !rows.length;
}

function logStatus(d) {
  if (!d.reachable) return [`not reachable (${d.error})`, "bad"];
  const entries = d.length === 1 ? "1 entry" : `${d.length} entries`;
  if (d.ok) return [`intact: ${entries}, ${d.anchored} anchored at the central bank`, "ok"];
  const problems = d.problems.map((p) => `#${p.seq} ${p.reason}`).join(", ");
  return [`PROBLEMS: ${problems}`, "bad"];
}

function renderDisclosure(s) {
  const blocks = s.disclosure.map((d) => {
    const block = el("section", {
      "data-disclosure": d.operator,
      "data-ok": d.ok === true ? "true" : "false",
      "data-reachable": d.reachable,
      "aria-label": `Disclosure log of ${d.operator}`,
    });
    const [text, cls] = logStatus(d);
    block.append(el("h3", {}, d.operator), el("p", { class: `status ${cls}` }, text));
    if (d.head && d.length) block.append(el("p", { class: "muted id" }, `head ${d.head}`));
    if (d.entries.length) {
      const table = el("table", { class: "disclosure-entries" });
      table.append(el("caption", {}, `Newest disclosures at ${d.operator}`));
      const head = el("tr");
      for (const h of ["#", "Time", "Wallet", "Legal basis", "Requester", "Released"]) {
        head.append(el("th", { scope: "col" }, h));
      }
      const thead = el("thead");
      thead.append(head);
      const tbody = el("tbody");
      for (const e of d.entries) {
        const tr = el("tr", { class: "disclosure-row" });
        tr.append(
          el("td", { class: "num" }, e.seq),
          el("td", { class: "time" }, shortTime(e.at)),
          el("td", { class: "id" }, e.wallet),
          el("td", {}, e.basis),
          el("td", {}, e.requester),
          el("td", {}, e.released),
        );
        tbody.append(tr);
      }
      table.append(thead, tbody);
      block.append(table);
    } else if (d.reachable) {
      block.append(el("p", { class: "muted" }, "No disclosures."));
    }
    return block;
  });
  document.getElementById("disclosure").replaceChildren(...blocks);
}

function showError(message) {
  const node = document.getElementById("poll-error");
  node.textContent = message;
  node.hidden = !message;
}

async function poll() {
  let answer;
  try {
    answer = await fetch("/dashboard/api/summary", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
  } catch {
    showError("The central bank cannot be reached; retrying.");
    return;
  }
  if (answer.status === 401) {
    showError("Your dashboard session has ended: open a new login link (cbdc dashboard).");
    return;
  }
  if (!answer.ok) {
    showError(`The summary failed (HTTP ${answer.status}); retrying.`);
    return;
  }
  const s = await answer.json();
  const now = Date.now();
  renderSupply(s);
  renderOperators(s, now);
  renderAlerts(s);
  renderDisclosure(s);
  document.getElementById("network-note").textContent = s.network_known
    ? ""
    : "(no network configuration: operators' metrics and logs are not available)";
  const updated = document.getElementById("updated-at");
  updated.textContent = new Date(s.at).toLocaleString();
  updated.setAttribute("data-at", s.at);
  showError("");
}

async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}

loop();
