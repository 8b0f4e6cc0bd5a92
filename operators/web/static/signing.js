// Signing in the browser, byte for byte as the Python SDK does it (docs/api.md, "Signed
// envelopes" and "Signed orders"): envelope v2 over nine lines, orders over canonical JSON.
// The private key is a non-extractable WebCrypto CryptoKey; it never leaves the browser.

const encoder = new TextEncoder();

export function b64url(bytes) {
  let binary = "";
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomHex(bytes) {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Python's sort_keys orders by code point; JavaScript's default sort by UTF-16 unit, which
// differs for characters beyond the BMP. Compare code points.
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

// json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False): keys sorted at
// every depth, no spaces. JSON.stringify escapes strings as Python does for BMP text (", \,
// \b \f \n \r \t, other controls as lower-case \u00XX; everything else as is).
export function canonicalJson(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new TypeError("canonicalJson: only integers (money is in minor units)");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort(byCodePoint);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
}

// The server's clock minus ours, in ms (from the Date header of GET /v1/info): a wrong clock
// here would otherwise get every envelope refused (300 s window) and every order too.
let clockSkewMs = 0;

export function setServerDate(httpDate) {
  const server = Date.parse(httpDate || "");
  if (!Number.isNaN(server) && Math.abs(server - Date.now()) > 30_000) {
    clockSkewMs = server - Date.now();
  }
}

function now() {
  return new Date(Date.now() + clockSkewMs);
}

// Python's datetime.isoformat() of an aware UTC time: 2026-11-21T05:02:21.357938+00:00
export function isoNow() {
  return now().toISOString().replace(/\.(\d{3})Z$/, ".$1000+00:00");
}

export async function generateKeyPair() {
  return crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
}

export async function publicKeyB64(keyPair) {
  return b64url(await crypto.subtle.exportKey("raw", keyPair.publicKey));
}

async function sign(keyPair, bytes) {
  return b64url(await crypto.subtle.sign({ name: "Ed25519" }, keyPair.privateKey, bytes));
}

// Headers of a version-2 envelope for `method target` with `body` (a string, or "" for none).
export async function envelope(keyPair, { audience, keyId, method, target, body = "" }) {
  const bodyBytes = encoder.encode(body);
  const timestamp = String(Math.floor(now().getTime() / 1000));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const message = [
    "CBDC-REQUEST/2",
    audience,
    method.toUpperCase(),
    target,
    keyId,
    timestamp,
    nonce,
    "", // no Idempotency-Key
    await sha256Hex(bodyBytes),
  ].join("\n");
  return {
    "CBDC-Version": "2",
    "CBDC-Audience": audience,
    "CBDC-Key-Id": keyId,
    "CBDC-Timestamp": timestamp,
    "CBDC-Nonce": nonce,
    "CBDC-Signature": await sign(keyPair, encoder.encode(message)),
  };
}

// {"order": ..., "signature": ...}: the order with a fresh nonce and created_at, signed.
export async function signOrder(keyPair, fields) {
  const order = { ...fields, nonce: randomHex(16), created_at: isoNow() };
  const signature = await sign(keyPair, encoder.encode(canonicalJson(order)));
  return { order, signature };
}
