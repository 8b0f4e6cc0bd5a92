// The web wallet: opens a wallet with a key made in this browser, shows it, and sends the
// holder's signed requests and orders. Entry module (no build step; see the other modules).

import { Problem, getInfo, getWebSettings, orderCall, signedCall } from "./api.js";
import { demoBankAccount, demoIdNumber, demoName, demoPhone } from "./evidence.js";
import { forgetWallet, loadWallet, saveWallet } from "./keystore.js";
import { formatAmount, majorText, parseAmount } from "./money.js";
import { canonicalJson, generateKeyPair, publicKeyB64, signOrder } from "./signing.js";
import {
  $,
  classSummary,
  clearMessages,
  hideProblem,
  renderAmount,
  renderHistory,
  renderLimits,
  renderWalletId,
  showProblem,
  showStatus,
} from "./ui.js";

const PAYLOAD_PREFIX = "cbdc:pay?";
const FORGET_CONFIRM_MS = 6000; // the second click on "Forget anyway" must come this soon
const state = {
  info: null,
  money: null,
  keyPair: null,
  walletId: null,
  evidence: [],
  balance: null, // minor units, as last shown; null: not known yet
  forgetArmed: null, // the timer of an armed "Forget anyway" button
};

window.cbdcWallet = {
  canonicalJson,
  publicKey: async () => (state.keyPair ? publicKeyB64(state.keyPair) : null),
  walletId: () => state.walletId,
  signOrderForTest: async (fields) => signOrder(state.keyPair, fields),
};

function fmt(minor) {
  return formatAmount(minor, state.money.decimals, state.money.currency);
}

function amountOf(selector) {
  try {
    return parseAmount($(selector).value, state.money.decimals);
  } catch (error) {
    throw new Problem("Amount not understood", error.message, "amount_invalid");
  }
}

function walletCall(method, target, payload) {
  const keyId = `wallet:${state.walletId}`;
  return signedCall(state.keyPair, state.info.audience, keyId, method, target, payload);
}

// Runs an action from a button: one at a time per button, its refusal shown as a problem.
function action(button, work) {
  return async (event) => {
    event?.preventDefault();
    if (button.getAttribute("aria-busy") === "true") return;
    clearMessages();
    button.setAttribute("aria-busy", "true");
    try {
      const message = await work();
      if (message) showStatus(message);
    } catch (error) {
      if (error instanceof Problem) {
        showProblem(error);
      } else {
        console.error(error);
        showProblem({ title: "Something went wrong", detail: String(error), code: "client" });
      }
    } finally {
      button.removeAttribute("aria-busy");
    }
  };
}

// ------------------------------------------------------------------ the wallet view

async function refresh() {
  const base = `/v1/wallets/${state.walletId}`;
  const [wallet, history] = await Promise.all([
    walletCall("GET", base),
    walletCall("GET", `${base}/history?limit=50`),
  ]);
  state.evidence = wallet.evidence;
  state.balance = wallet.balance;
  renderWalletId($("#wallet-id"), wallet.wallet_id);
  $("#wallet-class").textContent = wallet.wallet_class;
  renderAmount($("#balance"), wallet.balance, state.money);
  renderAmount($("#deposit-balance"), wallet.deposit_balance, state.money);
  renderLimits($("#limits"), wallet, state.money);
  renderHistory($("#history"), $("#history-empty"), history.items, state.money);
  return wallet;
}

async function showWallet() {
  $("#open-section").hidden = true;
  $("#wallet-view").hidden = false;
  await refresh();
}

function showOpenForm() {
  $("#wallet-view").hidden = true;
  $("#open-section").hidden = false;
  $("#qr-figure").hidden = true;
  updateOpenHelp();
}

// ------------------------------------------------------------------ opening a wallet

function evidenceFrom(prefix) {
  const customer = {
    display_name: $(`#${prefix}-name`).value.trim(),
    phone: $(`#${prefix}-phone`).value.trim(),
    id_number: $(`#${prefix}-id-number`).value.trim(),
    bank_account: $(`#${prefix}-bank-account`).value.replace(/\s/g, ""),
  };
  for (const key of Object.keys(customer)) if (!customer[key]) delete customer[key];
  return customer;
}

function neededEvidence(walletClass) {
  return state.info.wallet_classes[walletClass]?.evidence || [];
}

function updateOpenHelp() {
  if (!state.info) return;
  const chosen = $("#open-class").value;
  const spec = state.info.wallet_classes[chosen];
  $("#open-class-help").textContent = spec ? classSummary(chosen, spec, state.money) : "";
  const needed = neededEvidence(chosen);
  for (const mark of document.querySelectorAll("#open-form .need")) {
    mark.textContent = needed.includes(mark.dataset.need) ? "(needed)" : "(optional)";
  }
}

// Demo values for the evidence `walletClass` needs and the wallet does not hold yet (`held`,
// the kinds in the wallet view's `evidence`); a name on opening in any case (class IV: a
// nickname).
function fillDemo(prefix, walletClass, held = []) {
  const wanted = (kind) => neededEvidence(walletClass).includes(kind) && !held.includes(kind);
  $(`#${prefix}-name`).value = wanted("name") || prefix === "open" ? demoName() : "";
  $(`#${prefix}-phone`).value = wanted("phone") ? demoPhone() : "";
  $(`#${prefix}-id-number`).value = wanted("id_number") ? demoIdNumber() : "";
  $(`#${prefix}-bank-account`).value = wanted("bank_account") ? demoBankAccount() : "";
}

async function openWallet() {
  const walletClass = $("#open-class").value;
  let keyPair;
  try {
    keyPair = await generateKeyPair();
  } catch (error) {
    throw new Problem(
      "This browser cannot make the wallet's key",
      `Ed25519 in WebCrypto is missing (${error.message}); use a current Chrome, Edge, ` +
        "Firefox or Safari",
      "ed25519_unsupported",
    );
  }
  const publicKey = await publicKeyB64(keyPair);
  const body = { public_key: publicKey, wallet_class: walletClass, customer: evidenceFrom("open") };
  const opened = await signedCall(
    keyPair, state.info.audience, "new-wallet", "POST", "/v1/wallets", body,
  );
  state.keyPair = keyPair;
  state.walletId = opened.wallet_id;
  let kept = true;
  try {
    await saveWallet({ keyPair, walletId: opened.wallet_id, publicKey, operator: opened.operator });
  } catch {
    kept = false; // e.g. storage off in a private window: the wallet works until the page closes
  }
  await showWallet();
  if (!kept) {
    showProblem({
      title: "The wallet's key could not be stored on this device",
      detail: `wallet ${opened.wallet_id} is open, but its key is lost when this page closes`,
      code: "key_not_stored",
    });
  }
  return `Wallet ${opened.wallet_id} opened (class ${opened.wallet_class}).`;
}

// ------------------------------------------------------------------ money

async function demoDeposit() {
  const amount = amountOf("#demo-deposit-amount");
  const done = await walletCall("POST", `/v1/wallets/${state.walletId}/demo-deposit`, { amount });
  $("#demo-deposit-amount").value = "";
  await refresh();
  return `Demo deposit: ${fmt(amount)} credited; bank deposit now ${fmt(done.deposit_balance)}.`;
}

async function exchange(kind, selector) {
  const amount = amountOf(selector);
  const signed = await signOrder(state.keyPair, {
    type: kind,
    wallet: state.walletId,
    amount,
    currency: state.money.currency,
  });
  const result = await orderCall(`/v1/wallets/${state.walletId}/${kind}`, signed);
  $(selector).value = "";
  await refresh();
  const verb = kind === "load" ? "Loaded" : "Unloaded";
  return `${verb} ${fmt(amount)}; wallet balance ${fmt(result.wallet_balance)}.`;
}

function parsePayload(text) {
  const params = new URLSearchParams(text.trim().slice(PAYLOAD_PREFIX.length));
  const to = (params.get("to") || "").trim();
  if (!to) throw new Problem("Payment request not understood", "it names no payee", "payload");
  const currency = params.get("currency");
  if (currency && currency !== state.money.currency) {
    throw new Problem(
      "Payment request in another currency",
      `it asks for ${currency}; this wallet holds ${state.money.currency}`,
      "payload_currency",
    );
  }
  return { to, amount: params.get("amount") || "" };
}

// A pasted payment request fills in the payee and the amount.
function onPayToInput() {
  const field = $("#pay-to");
  if (!field.value.trim().startsWith(PAYLOAD_PREFIX)) return;
  try {
    const { to, amount } = parsePayload(field.value);
    field.value = to;
    if (amount) $("#pay-amount").value = amount;
    hideProblem();
    const asked = amount ? ` ${amount} ${state.money.currency}` : "";
    showStatus(`Payment request read: pay ${to}${asked}.`);
  } catch (error) {
    showProblem(error);
  }
}

async function pay() {
  let payee = $("#pay-to").value.trim();
  if (payee.startsWith(PAYLOAD_PREFIX)) payee = parsePayload(payee).to;
  payee = payee.replace(/\s/g, "").toUpperCase();
  if (!payee) throw new Problem("No payee", "enter the payee's wallet id", "payee_missing");
  const amount = amountOf("#pay-amount");
  const memo = $("#pay-memo").value.trim();
  const fields = {
    type: "payment",
    payer: state.walletId,
    payee,
    amount,
    currency: state.money.currency,
  };
  if (memo) fields.memo = memo;
  const receipt = await orderCall("/v1/payments", await signOrder(state.keyPair, fields));
  for (const id of ["#pay-to", "#pay-amount", "#pay-memo"]) $(id).value = "";
  await refresh();
  const status = receipt.status === "completed" ? "done" : receipt.status.replace(/_/g, " ");
  return `Paid ${fmt(amount)} to ${payee}: ${status}.`;
}

async function showRequest() {
  const raw = $("#request-amount").value.trim();
  const params = new URLSearchParams({ to: state.walletId });
  if (raw) params.set("amount", majorText(amountOf("#request-amount"), state.money.decimals));
  params.set("currency", state.money.currency);
  const payload = PAYLOAD_PREFIX + params.toString();
  $("#qr").src = `/web/qr.svg?text=${encodeURIComponent(payload)}`;
  $("#qr-payload").textContent = payload;
  $("#qr-figure").hidden = false;
  return "Payment request ready: show the code or send the text below to the payer.";
}

// ------------------------------------------------------------------ class, device

async function changeClass() {
  const walletClass = $("#upgrade-class").value;
  const customer = evidenceFrom("upgrade");
  const body = { wallet_class: walletClass };
  if (Object.keys(customer).length) body.customer = customer;
  const wallet = await walletCall("POST", `/v1/wallets/${state.walletId}/class`, body);
  for (const f of ["name", "phone", "id-number", "bank-account"]) $(`#upgrade-${f}`).value = "";
  await refresh();
  return `The wallet is now class ${wallet.wallet_class}.`;
}

function disarmForget() {
  const button = $("#forget");
  clearTimeout(state.forgetArmed);
  state.forgetArmed = null;
  delete button.dataset.armed;
  button.textContent = button.dataset.label || button.textContent;
}

// Money still in the wallet (or a balance not known): the first click only turns the button
// into "Forget anyway: ..." for a few seconds; a second click then forgets. An empty wallet is
// forgotten at once.
async function forget() {
  const button = $("#forget");
  if (state.balance !== 0 && !state.forgetArmed) {
    button.dataset.label ||= button.textContent;
    const held = state.balance === null ? null : fmt(state.balance);
    button.textContent = `Forget anyway: ${held ?? "any money in it"} will be out of reach`;
    button.dataset.armed = "true";
    state.forgetArmed = setTimeout(disarmForget, FORGET_CONFIRM_MS);
    const why = held ? `This wallet still holds ${held}` : "This wallet's balance is not known";
    return (
      `${why}: unload it to your deposit or pay it out first. To forget the wallet anyway, ` +
      `click the button again within ${FORGET_CONFIRM_MS / 1000} seconds.`
    );
  }
  disarmForget();
  await forgetWallet();
  state.keyPair = null;
  state.walletId = null;
  state.balance = null;
  showOpenForm();
  return "The wallet was forgotten on this device.";
}

async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    return `${what} copied.`;
  } catch {
    throw new Problem("Could not copy", "select the text and copy it by hand", "clipboard");
  }
}

// ------------------------------------------------------------------ start

function wire() {
  const on = (id, event, work) => {
    const node = $(id);
    const target = node.tagName === "FORM" ? node.querySelector("button[type=submit]") : node;
    node.addEventListener(event, action(target, work));
  };
  on("#open-form", "submit", openWallet);
  on("#demo-form", "submit", demoDeposit);
  on("#load-form", "submit", () => exchange("load", "#load-amount"));
  on("#unload-form", "submit", () => exchange("unload", "#unload-amount"));
  on("#pay-form", "submit", pay);
  on("#receive-form", "submit", showRequest);
  on("#upgrade-form", "submit", changeClass);
  on("#refresh", "click", async () => {
    const wallet = await refresh();
    return `Balance ${fmt(wallet.balance)} as of ${new Date().toLocaleTimeString()}.`;
  });
  on("#forget", "click", forget);
  on("#copy-id", "click", () => copyText(state.walletId, "Wallet id"));
  on("#copy-payload", "click", () => copyText($("#qr-payload").textContent, "Payment request"));
  $("#problem-dismiss").addEventListener("click", hideProblem);
  $("#open-class").addEventListener("change", updateOpenHelp);
  $("#open-demo-fill").addEventListener("click", () => fillDemo("open", $("#open-class").value));
  $("#upgrade-demo-fill").addEventListener("click", () =>
    fillDemo("upgrade", $("#upgrade-class").value, state.evidence),
  );
  $("#pay-to").addEventListener("input", onPayToInput);
}

function describeOperator(info, settings) {
  document.title = `Web wallet: ${info.name}`;
  $("#operator-name").textContent = `at ${info.name}`;
  $("#operator-line").textContent =
    `Operator ${info.operator} · currency ${info.currency} · ` +
    `settlement ${info.settlement_mode.toUpperCase()}`;
  for (const node of document.querySelectorAll(".currency")) {
    node.textContent = `(${info.currency})`;
  }
  for (const node of document.querySelectorAll(".currency-name")) node.textContent = info.currency;
  $("#demo-section").hidden = !settings.demo_deposits;
}

async function start() {
  wire();
  if (!window.isSecureContext || !crypto.subtle) {
    showProblem({
      title: "This page needs a secure context",
      detail: "open it at http://127.0.0.1 or localhost (or over https): WebCrypto is off here",
      code: "insecure_context",
    });
    return;
  }
  try {
    const [info, settings] = await Promise.all([getInfo(), getWebSettings()]);
    state.info = info;
    state.money = { currency: info.currency, decimals: info.currency_decimals };
    describeOperator(info, settings);
    const stored = await loadWallet();
    if (stored?.walletId && stored.keyPair) {
      state.keyPair = stored.keyPair;
      state.walletId = stored.walletId;
      await showWallet();
    } else {
      showOpenForm();
    }
  } catch (error) {
    const problem = { title: "Could not start", detail: String(error), code: "client" };
    showProblem(error instanceof Problem ? error : problem);
    if (state.info && !state.walletId) showOpenForm();
    if (state.walletId) $("#wallet-view").hidden = false;
  } finally {
    document.body.dataset.ready = "true";
  }
}

start();
