// Calls to this operator's API. A refusal becomes a Problem (RFC 9457: title, detail, code);
// a failed connection a Problem with code "network_error".

import { envelope, setServerDate } from "./signing.js";

export class Problem extends Error {
  constructor(title, detail, code, status = 0) {
    super(`${title}: ${detail}`);
    this.title = title;
    this.detail = detail;
    this.code = code;
    this.status = status;
  }
}

async function send(method, target, body, headers = {}) {
  let response;
  try {
    response = await fetch(target, {
      method,
      headers: body === undefined ? headers : { ...headers, "Content-Type": "application/json" },
      body,
      cache: "no-store",
    });
  } catch (error) {
    throw new Problem(
      "Network error",
      `could not reach the operator (${error.message}); is the network running?`,
      "network_error",
    );
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (data && typeof data === "object" && data.title) {
      throw new Problem(data.title, data.detail || "", data.code || "error", response.status);
    }
    throw new Problem(`HTTP ${response.status}`, text.slice(0, 300), "http_error", response.status);
  }
  return { data, response };
}

export async function getInfo() {
  const { data, response } = await send("GET", "/v1/info");
  setServerDate(response.headers.get("Date"));
  return data;
}

export async function getWebSettings() {
  try {
    return (await send("GET", "/web/settings.json")).data;
  } catch {
    return { demo_deposits: true };
  }
}

// A request signed with the envelope of `keyId` (wallet:<id> or new-wallet).
export async function signedCall(keyPair, audience, keyId, method, target, payload) {
  const body = payload === undefined ? "" : JSON.stringify(payload);
  const headers = await envelope(keyPair, { audience, keyId, method, target, body });
  return (await send(method, target, payload === undefined ? undefined : body, headers)).data;
}

// A request authorised by the signed order in its body (load, unload, payments).
export async function orderCall(target, signedOrder) {
  return (await send("POST", target, JSON.stringify(signedOrder))).data;
}
