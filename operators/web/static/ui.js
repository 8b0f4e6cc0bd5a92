// Rendering: messages, the wallet summary and limits, the history table. Text only goes in
// through textContent, never as HTML.

import { formatAmount } from "./money.js";

export const $ = (selector) => document.querySelector(selector);

export function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

export function showStatus(text) {
  $("#status").textContent = text;
}

export function clearMessages() {
  $("#status").textContent = "";
  hideProblem();
}

export function showProblem(problem) {
  const box = $("#problem");
  box.querySelector(".problem-title").textContent = problem.title || "Refused";
  box.querySelector(".problem-detail").textContent = problem.detail || "";
  box.dataset.code = problem.code || "error";
  box.hidden = false;
}

export function hideProblem() {
  const box = $("#problem");
  box.hidden = true;
  delete box.dataset.code;
}

// The id grouped for reading (routing code, wallet number, check digits) by CSS gaps between
// spans: its text, and what a copy gives, is the plain 20-character id.
export function renderWalletId(node, walletId) {
  node.replaceChildren(
    el("span", {}, walletId.slice(0, 4)),
    el("span", {}, walletId.slice(4, 18)),
    el("span", {}, walletId.slice(18)),
  );
}

export function renderAmount(node, minor, money) {
  node.textContent = formatAmount(minor, money.decimals, money.currency);
  node.dataset.minor = String(minor);
}

function limitText(limit, money) {
  return limit === null || limit === undefined
    ? "unlimited"
    : formatAmount(limit, money.decimals, money.currency);
}

export function renderLimits(node, wallet, money) {
  const fmt = (minor) => formatAmount(minor, money.decimals, money.currency);
  const rows = [
    ["Single payment", limitText(wallet.limits.single_payment, money)],
    ["Daily", `${limitText(wallet.limits.daily, money)} (spent today ${fmt(wallet.spent_today)})`],
    [
      "Annual",
      `${limitText(wallet.limits.annual, money)} (spent this year ${fmt(wallet.spent_this_year)})`,
    ],
    ["Balance cap", limitText(wallet.limits.balance_cap, money)],
  ];
  node.replaceChildren(
    ...rows.map(([term, value]) => {
      const row = el("div");
      row.append(el("dt", {}, term), el("dd", {}, value));
      return row;
    }),
  );
}

// A short description of a class for the open form: evidence and limits (GET /v1/info).
export function classSummary(name, spec, money) {
  const lim = (v) => limitText(v, money);
  const evidence = spec.evidence.map((e) => e.replace("_", " ")).join(", ") || "nothing";
  return (
    `Class ${name}: ${spec.identification}. Needs: ${evidence}. Limits: single payment ` +
    `${lim(spec.single_payment)}, daily ${lim(spec.daily)}, annual ${lim(spec.annual)}, ` +
    `balance cap ${lim(spec.balance_cap)}.`
  );
}

const KINDS = {
  load: "Load from deposit",
  unload: "Unload to deposit",
  cash_load: "Cash loaded at the counter",
  cash_withdrawal: "Cash withdrawn at the counter",
  waterfall_sweep: "Swept to deposit (over the cap)",
  payment_refund: "Payment refunded",
  payment_returned: "Payment returned",
  offline_payment: "Offline payment",
};

function describe(item) {
  let what = KINDS[item.kind];
  if (!what && (item.kind.startsWith("payment") || item.kind === "settlement_in")) {
    what = item.amount < 0 ? "Payment sent" : "Payment received";
  }
  if (!what && item.kind === "offline_fund") {
    what = item.amount < 0 ? "To offline purse" : "From offline purse";
  }
  what = what || item.kind.replace(/_/g, " ");
  if (item.status && item.status !== "completed") what += ` (${item.status.replace(/_/g, " ")})`;
  return what;
}

function counterpartyText(counterparty) {
  if (!counterparty) return "";
  if (counterparty === "deposit") return "bank deposit";
  return counterparty;
}

export function renderHistory(table, emptyNote, items, money) {
  const rows = items.map((item) => {
    const row = el("tr", { class: "history-row", "data-amount": String(item.amount) });
    const when = new Date(item.at);
    const time = el("td", { class: "time" });
    time.append(el("time", { datetime: item.at }, when.toLocaleString()));
    const what = el("td", { class: "what" }, describe(item));
    if (item.memo) what.append(el("span", { class: "memo" }, item.memo));
    const who = el("td", { class: "counterparty" }, counterpartyText(item.counterparty));
    const sign = item.amount > 0 ? "+" : "";
    const amount = el(
      "td",
      { class: `num ${item.amount < 0 ? "debit" : "credit"}` },
      sign + formatAmount(item.amount, money.decimals, money.currency),
    );
    row.append(time, what, who, amount);
    return row;
  });
  table.tBodies[0].replaceChildren(...rows);
  emptyNote.hidden = items.length > 0;
}
