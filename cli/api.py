"""`cbdc api METHOD PATH`: one HTTP request to a service of the running network, signed as a
party whose key is in the data directory (in the spirit of `gh api`).

Who signs (`--as`): a wallet by nickname or `wallet:<id>` (the local key store), `staff:<code>`
(the operator's key, `CBDC-Key-Id: operator:<code>`), `admin` and `central-bank` (the key files
network.json names), `regulator` (its key directory), `new-wallet` (a fresh key, saved to the key
store once the operator has opened the wallet). Without `--as` the request goes unsigned.

Which service: `--service`; else the path's wallet or device id (its routing code); else a path
only the central bank serves; else the signer's own service (a wallet's or staff's operator, the
CB for admin). Anything else is an error naming the choices, never a guess.

`--order` signs a customer order with the `--as` wallet's key, filling in `nonce`, `created_at`,
`currency` and the wallet (`wallet`, or `payer` for a payment) when absent, and sends
`{"order": ..., "signature": ...}`: load, unload and payments by hand. `--curl` prints the
equivalent curl command instead of sending (sending too would use up its nonce): its headers are
good for one use within `MAX_SKEW_SECONDS`.

The status line goes to stderr and the answer (pretty JSON) to stdout, so `| jq` works; exit 0
on 2xx, 1 on any other answer or no answer, 2 for a usage error (one line).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    CENTRAL_BANK_AUDIENCE,
    H_NONCE,
    H_RESPONSE_SIG,
    MAX_SKEW_SECONDS,
    RequestBinding,
    operator_audience,
    sign_request,
    verify_response,
)
from cbdc.settings import NetworkConfig
from cli.cash import key_store
from wallets.keystore import StoredWallet
from wallets.orders import sign_order

CB = CENTRAL_BANK_AUDIENCE  # the central bank's service name here, as in its audience
# Paths only the central bank serves (everything under them); the rest are operators' or both.
CB_ONLY = (
    "/v1/issuance",
    "/v1/redemption",
    "/v1/tokens",
    "/v1/settlements",
    "/v1/clearing",
    "/v1/stats",
    "/v1/analysis",
    "/v1/registration",
    "/v1/certification",
    "/v1/disclosure-anchors",
    "/v1/operators",
    "/v1/admin/operators",
    "/v1/admin/clearing",
    "/v1/admin/dashboard",
    "/dashboard",
    "/login",
)
_WALLET_PATH = re.compile(r"^/v1/(?:admin/)?wallets/([A-Z0-9]{4}[0-9]{16})(?:[/?]|$)")
_DEVICE_PATH = re.compile(r"^/v1/(?:admin/)?offline/devices/([A-Z0-9]{4})D[0-9A-F]+(?:[/?]|$)")
_METHOD = re.compile(r"[A-Z]{1,16}")
_ORDER_PARTY = {"payment": "payer", "load": "wallet", "unload": "wallet"}


class UsageError(Exception):
    """A mistake in the command line: one line on stderr, exit 2."""


@dataclass(frozen=True)
class Signer:
    key: SigningKey
    key_id: str  # CBDC-Key-Id
    home: str | None  # the service it signs for by default: CB, an operator code, or None
    wallet: StoredWallet | None = None


def resolve_signer(network: NetworkConfig, who: str | None) -> Signer | None:
    """The key and key id `--as who` stands for (None: unsigned)."""
    if who is None:
        return None
    try:
        return _signer(network, who)
    except (OSError, ValueError) as exc:  # no key file, or a damaged one
        raise UsageError(f"--as {who}: cannot read its key: {exc}") from None


def _signer(network: NetworkConfig, who: str) -> Signer:
    if who == "admin":
        return Signer(SigningKey.load(Path(network.central_bank.admin_key_file)), "admin", CB)
    if who == CB:
        return Signer(SigningKey.load(Path(network.central_bank.key_file)), CB, None)
    if who == "regulator":
        key = SigningKey.load(Path(network.regulator.key_dir) / "signing.key")
        return Signer(key, "regulator", None)
    if who == "new-wallet":
        return Signer(SigningKey.generate(), "new-wallet", None)
    kind, _, code = who.partition(":")
    if kind in ("staff", "operator") and code:
        try:
            node = network.operator(code)
        except KeyError:
            raise UsageError(f"--as {who}: no operator {code} in this network") from None
        return Signer(SigningKey.load(Path(node.key_file)), f"operator:{code}", code)
    name = code if kind == "wallet" and code else who
    try:
        stored = key_store(network).get(name)
    except KeyError:
        raise UsageError(
            f"--as {who}: no such wallet nickname or id in the key store (`cbdc wallet list`); "
            "or admin, central-bank, regulator, new-wallet, staff:<code>"
        ) from None
    return Signer(stored.key, f"wallet:{stored.wallet_id}", stored.operator, stored)


def infer_service(
    network: NetworkConfig, path: str, signer: Signer | None, service: str | None
) -> str:
    """CB or an operator code (see the module docstring for the order of the rules)."""
    codes = [node.code for node in network.operators]
    choices = f"--service {CB} or --service " + "|".join(codes)
    if service is not None:
        if service.lower() in (CB, "cb"):
            return CB
        if service.upper() in codes:
            return service.upper()
        raise UsageError(f"--service {service}: not a service of this network ({choices})")
    routed = _WALLET_PATH.match(path) or _DEVICE_PATH.match(path)
    if routed:
        code = routed.group(1)[:4]
        if code not in codes:
            raise UsageError(f"{path}: no operator {code} in this network ({choices})")
        return code
    if any(path == p or path.startswith((p + "/", p + "?")) for p in CB_ONLY):
        return CB
    if signer is not None and signer.home is not None:
        return signer.home
    raise UsageError(f"cannot tell which service {path} is for: add {choices}")


def read_json(value: str, option: str) -> Any:
    """The JSON of `--data`/`--order`: inline, `@file`, or `@-` (stdin)."""
    text = value
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise UsageError(f"{option} {value}: cannot read {source}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{option} {value}: {source} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" in {value[1:]}" if value.startswith("@") else ""
        raise UsageError(f"{option}: malformed JSON{where}: {exc}") from None


def fill_order(order: Any, signer: Signer | None, currency: str) -> dict[str, Any]:
    """The order with its routine fields filled in where absent (never overwritten)."""
    if not isinstance(order, dict):
        raise UsageError("--order: an order is a JSON object")
    filled = dict(order)
    party = _ORDER_PARTY.get(str(filled.get("type")))
    if party is not None and signer is not None and signer.wallet is not None:
        filled.setdefault(party, signer.wallet.wallet_id)
    filled.setdefault("currency", currency)
    filled.setdefault("nonce", secrets.token_hex(16))
    filled.setdefault("created_at", iso(utcnow()))
    return filled


def request_body(data: str | None, order: str | None, signer: Signer | None, currency: str) -> Any:
    body = None if data is None else read_json(data, "--data")
    if order is not None:
        if signer is None or signer.wallet is None:
            raise UsageError("--order is signed by a wallet: add --as <nickname or wallet:id>")
        signed = sign_order(signer.key, fill_order(read_json(order, "--order"), signer, currency))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise UsageError("--data with --order: the other fields, as a JSON object")
        body = {**body, **signed}
    if signer is not None and signer.key_id == "new-wallet":
        if not isinstance(body, dict) or "public_key" in body:
            raise UsageError(
                "--as new-wallet: --data is the wallet's JSON without public_key "
                "(a new key is made here and kept in the key store)"
            )
        body = {"public_key": signer.key.public_key, **body}
    return body


def request_url(base: str, path: str) -> httpx.URL:
    """The URL of `path` at `base`; a path httpx cannot send (a control character, too long)
    is a usage error, not a traceback."""
    try:
        return httpx.URL(base + path)
    except httpx.InvalidURL as exc:
        raise UsageError(f"{path!r}: not a path that can be sent: {exc}") from None


def curl_command(method: str, url: str, headers: dict[str, str], body: bytes) -> str:
    """A shell command line (POSIX quoting) that sends exactly these bytes and headers."""
    lines = [f"curl -sS -X {method} {shlex.quote(url)}"]
    lines += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items()]
    if body:
        lines.append(f"--data-binary {shlex.quote(body.decode())}")
    return " \\\n  ".join(lines)


def _say(text: str) -> None:
    sys.stdout.flush()  # in the order printed, when both go to one terminal or file
    typer.echo(text, err=True)


def _print_answer(response: httpx.Response) -> Any:
    try:
        data = response.json() if response.content else None
    except (ValueError, RecursionError):
        typer.echo(response.text)
        return None
    if data is not None:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    return data


def _save_new_wallet(
    network: NetworkConfig, code: str, signer: Signer, body: dict[str, Any], data: Any
) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("wallet_id"), str):
        return
    store = key_store(network)
    name = (body.get("customer") or {}).get("display_name")
    if not isinstance(name, str) or any(w.name == name for w in store.all()):
        name = None  # nicknames are unique per data directory; the id still names it
    store.save(
        StoredWallet(
            wallet_id=data["wallet_id"],
            operator=code,
            operator_url=network.operator(code).url,
            private_key=signer.key.private_bytes(),
            public_key=signer.key.public_key,
            wallet_class=str(data.get("wallet_class") or body.get("wallet_class") or "IV"),
            name=name,
            certificate=data.get("certificate"),
        )
    )
    nickname = f" as '{name}'" if name else ""
    _say(f"saved the new wallet's key{nickname} in {store.directory}")


def send(
    network: NetworkConfig,
    *,
    method: str,
    path: str,
    who: str | None,
    service: str | None,
    data: str | None,
    order: str | None,
    idempotency_key: str | None,
    curl: bool,
) -> int:
    """Build, sign and send (or print as curl) one request; the exit code."""
    method = method.upper()
    if _METHOD.fullmatch(method) is None:
        raise UsageError(f"{method!r}: not an HTTP method (GET, POST, ...)")
    if not path.startswith("/"):
        raise UsageError(f"{path}: the path starts with / (e.g. /v1/info)")
    signer = resolve_signer(network, who)
    if order is not None and (signer is None or signer.wallet is None):
        raise UsageError("--order is signed by a wallet: add --as <nickname or wallet:id>")
    code = infer_service(network, path, signer, service)
    base = network.central_bank.url if code == CB else network.operator(code).url
    audience = CB if code == CB else operator_audience(code)
    body = request_body(data, order, signer, network.currency)
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    url = request_url(base, path)
    target = url.raw_path.decode("ascii")  # what goes on the wire, so what the server checks
    headers = {"Content-Type": "application/json"} if body is not None else {}
    binding = None
    if signer is not None:
        envelope = sign_request(
            signer.key,
            signer.key_id,
            method,
            target,
            raw,
            audience=audience,
            idempotency_key=idempotency_key,
        )
        headers |= envelope
        binding = RequestBinding(
            audience=audience,
            method=method,
            target=target,
            key_id=signer.key_id,
            nonce=envelope[H_NONCE],
            idempotency_key=idempotency_key or "",
            body_sha256=sha256_hex(raw),
        )
    elif idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if curl:
        if signer is not None and signer.key_id == "new-wallet":
            raise UsageError("--curl with --as new-wallet would lose the new wallet's key")
        if signer is not None:
            _say(f"# signed: good for one use within {MAX_SKEW_SECONDS} s")
        typer.echo(curl_command(method, str(url), headers, raw))
        return 0
    try:
        with httpx.Client(timeout=60) as http:
            response = http.request(method, url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        _say(f"failed: no answer from {code} at {base}: {exc}")
        return 1
    _say(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
    answer = _print_answer(response)
    ok = 200 <= response.status_code < 300
    if binding is not None and code == CB and ok:
        signature = response.headers.get(H_RESPONSE_SIG, "")
        public_key = network.central_bank.public_key
        if not verify_response(
            public_key, binding, response.status_code, response.content, signature
        ):
            _say("failed: the answer has no valid central bank signature for this request")
            return 1
    if not ok and isinstance(answer, dict) and "code" in answer:
        _say(f"refused {answer['code']}: {answer.get('title', '')}: {answer.get('detail', '')}")
    if ok and signer is not None and signer.key_id == "new-wallet":
        _save_new_wallet(network, code, signer, body, answer)
    return 0 if ok else 1


Who = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="who signs: a wallet nickname or wallet:ID, staff:CODE, admin, central-bank, "
        "regulator, new-wallet (default: unsigned)",
    ),
]


def register(app: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    @app.command("api")
    def api(
        method: Annotated[str, typer.Argument(help="GET, POST, PUT, ...")],
        path: Annotated[str, typer.Argument(help="e.g. /v1/wallets/BKA1...; ?query allowed")],
        who: Who = None,
        data: Annotated[
            str | None, typer.Option("--data", help="JSON body, or @file, or @- for stdin")
        ] = None,
        order: Annotated[
            str | None,
            typer.Option("--order", help="an order (JSON or @file) for --as wallet to sign"),
        ] = None,
        service: Annotated[
            str | None,
            typer.Option(help="central-bank or an operator code (default: from the path)"),
        ] = None,
        idempotency_key: Annotated[
            str | None, typer.Option("--idempotency-key", help="Idempotency-Key (signed)")
        ] = None,
        curl: Annotated[
            bool, typer.Option("--curl", help="print the signed request as curl; do not send")
        ] = False,
        data_dir: Annotated[
            Path | None, typer.Option("--data-dir", help="network data directory")
        ] = None,
    ) -> None:
        """Send one request to the running network, signed as --as; print the status (stderr)
        and the answer (stdout). Exit 0 on 2xx, 1 otherwise, 2 for a usage error."""
        network = load_network(data_dir)
        try:
            code = send(
                network,
                method=method,
                path=path,
                who=who,
                service=service,
                data=data,
                order=order,
                idempotency_key=idempotency_key,
                curl=curl,
            )
        except UsageError as exc:
            _say(f"error: {exc}")
            raise typer.Exit(2) from None
        raise typer.Exit(code)
