"""The regulator's side: its keys, signed disclosure orders, opening identity escrow, and
checking operators' disclosure logs.

The regulator has two keys, kept in its own directory and read by no service:
an Ed25519 key that signs disclosure orders (and authenticates `CBDC-Key-Id: regulator`
requests) and an X25519 key that opens the identity records operators seal to it.

Its directory also keeps `log_heads.json`, the (length, head) of each operator's disclosure log
as last known: the link each disclosure order got back (`record_disclosure_head`) and the head
of each log `cbdc regulator log` verified. It only moves forward. It is an anchor of its own,
besides those operators register at the central bank, and the one a superuser of the central
bank's database cannot reach: `cbdc audit`, run where this directory is, compares every
operator's log with it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from cbdc.disclosure_log import verify_anchor_chain
from cbdc.disclosure_log import verify_log as check_disclosure_log
from cbdc.files import private_dir
from cbdc.hashchain import verify_chain
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.sealing import SealingKey


@dataclass
class RegulatorKeys:
    signing: SigningKey
    sealing: SealingKey

    @classmethod
    def generate(cls) -> RegulatorKeys:
        return cls(SigningKey.generate(), SealingKey.generate())

    def public(self) -> dict[str, str]:
        return {
            "signing_public_key": self.signing.public_key,
            "sealing_public_key": self.sealing.public_key,
        }

    def save(self, directory: Path) -> None:
        private_dir(directory)  # 0700 when made, before a key goes in
        self.signing.save(directory / "signing.key")
        self.sealing.save(directory / "sealing.key")
        (directory / "public.json").write_text(json.dumps(self.public(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> RegulatorKeys:
        return cls(
            SigningKey.load(directory / "signing.key"), SealingKey.load(directory / "sealing.key")
        )

    @classmethod
    def load_or_create(cls, directory: Path) -> RegulatorKeys:
        if (directory / "signing.key").exists():
            return cls.load(directory)
        keys = cls.generate()
        keys.save(directory)
        return keys


def disclosure_order(
    keys: RegulatorKeys,
    *,
    wallet_id: str,
    legal_basis: str,
    requester: str,
    as_of: str | None = None,
) -> dict[str, Any]:
    """A signed order; with `as_of` (ISO 8601) it asks for the identity in force at that
    time, without it for every identity version the wallet had."""
    order = {
        "type": "disclosure-order",
        "order_id": str(uuid.uuid4()),
        "wallet_id": wallet_id,
        "legal_basis": legal_basis,
        "requester": requester,
        "issued_at": iso(utcnow()),
    }
    if as_of is not None:
        order["as_of"] = as_of
    return {"order": order, "signature": keys.signing.sign_json(order)}


def open_escrow(keys: RegulatorKeys, disclosure: dict[str, Any]) -> dict[str, Any]:
    """Decrypt the escrow record an operator released (bound to the wallet id)."""
    record = keys.sealing.open_json(disclosure["escrow"], context=disclosure["wallet_id"].encode())
    return dict(record)


def open_escrow_versions(keys: RegulatorKeys, disclosure: dict[str, Any]) -> list[dict[str, Any]]:
    """Decrypt every identity version an operator released, each with its validity period
    (`valid_from`, `valid_until`: None while in force). An operator that keeps no versions
    released only the current record."""
    context = disclosure["wallet_id"].encode()
    released = disclosure.get("versions") or [{"escrow": disclosure["escrow"]}]
    opened = []
    for item in released:
        record = dict(keys.sealing.open_json(item["escrow"], context=context))
        # Version, start and author are sealed with the record (records sealed before
        # versions were kept lack them: the operator's listing gives them); the end of a
        # period is the next version's start, known only from the listing.
        for field in ("version", "valid_from", "changed_by"):
            if field in item:
                record.setdefault(field, item[field])
        record["valid_until"] = item.get("valid_until")
        opened.append(record)
    return opened


def verify_log_rows(
    rows: list[dict[str, Any]], *, anchor: tuple[int, str] | None = None
) -> dict[str, Any]:
    """The hash chain alone (and a head seen before); `check_operator_log` checks it all."""
    return verify_chain(
        ((r["seq"], r["prev_hash"], r["entry"], r["hash"]) for r in rows), anchor=anchor
    )


def check_operator_log(
    keys: RegulatorKeys,
    key_dir: Path,
    *,
    code: str,
    rows: list[dict[str, Any]],
    central: dict[str, Any],
    central_bank_key: str | None = None,
) -> dict[str, Any]:
    """Check an operator's disclosure log as the regulator: its hash chain, this regulator's
    signature on every order, the head this regulator saw last (its anchor file), and every
    head the operator anchored at the central bank (`central`: the answer of
    `GET /v1/disclosure-anchors`; a conflicting registration there counts as a problem), and,
    given the central bank's public key, the central bank's signed chain over those anchors.
    The anchor file moves on only when everything holds."""
    listed = [a for a in central["anchors"] if a["operator"] == code]
    anchors = [(int(a["seq"]), str(a["hash"])) for a in listed]
    result = check_disclosure_log(
        rows,
        regulator_key=keys.signing.public_key,
        operator=code,
        anchors=anchors,
        seen_head=load_anchors(key_dir).get(code),
    )
    conflicts = [
        {"seq": int(c["seq"]), "reason": "anchor_conflict"}
        for c in central["conflicts"]
        if c["operator"] == code
    ]
    if central_bank_key is not None:
        conflicts += verify_anchor_chain(
            listed,
            central_bank_key=central_bank_key,
            operator=code,
            chain_head=central.get("anchor_chains", {}).get(code),
        )
    if conflicts:
        problems = sorted(result["problems"] + conflicts, key=lambda p: (p["seq"], p["reason"]))
        result = {**result, "ok": False, "problems": problems, "broken_at": problems[0]["seq"]}
    if result["ok"] and rows:
        save_anchor(key_dir, code, result["length"], result["head"])
    return result


def load_anchors(directory: Path) -> dict[str, tuple[int, str]]:
    """The (length, head) of each operator's log as last verified by this regulator."""
    path = directory / "log_heads.json"
    if not path.exists():
        return {}
    return {code: (int(v[0]), str(v[1])) for code, v in json.loads(path.read_text()).items()}


def save_anchor(directory: Path, code: str, length: int, head: str) -> None:
    anchors = load_anchors(directory)
    anchors[code] = (length, head)
    path = directory / "log_heads.json"
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(anchors, indent=2) + "\n")
    partial.replace(path)  # whole or not at all


class HeadNotExtended(Exception):
    """An operator answered a disclosure with a log head that does not extend the one this
    regulator knew: its disclosure log was cut or rewritten."""


def record_disclosure_head(
    directory: Path,
    code: str,
    link: dict[str, Any],
    *,
    fetch_log: Callable[[], list[dict[str, Any]]],
) -> tuple[int, str]:
    """Record in the head file the log link an operator returned for a disclosure order
    (`{"seq", "prev_hash", "hash"}`), if it extends the head known for that operator: directly
    (its prev_hash is the known head), or through the log (`fetch_log`: the operator's
    `GET /v1/regulator/disclosure-log` rows) whose chain runs from the known head to this
    link. Raises HeadNotExtended (and keeps the known head) otherwise."""
    seq, head = int(link["seq"]), str(link["hash"])
    known = load_anchors(directory).get(code)
    if known is not None:
        length, known_head = known
        if seq <= length:
            raise HeadNotExtended(
                f"{code} logged the order as entry #{seq}, but its log was already "
                f"{length} entries long (head {known_head[:16]}...): entries were removed"
            )
        if not (seq == length + 1 and link.get("prev_hash") == known_head):
            rows = fetch_log()
            chain = verify_log_rows(rows[:seq], anchor=known)
            if not chain["ok"] or len(rows) < seq or rows[seq - 1]["hash"] != head:
                raise HeadNotExtended(
                    f"{code}'s log does not run from the known head #{length} "
                    f"({known_head[:16]}...) to the new entry #{seq} ({head[:16]}...): "
                    f"it was rewritten"
                )
    save_anchor(directory, code, seq, head)
    return seq, head


def send_disclosure(
    http: httpx.Client,
    code: str,
    signed: dict[str, Any],
    *,
    keys: RegulatorKeys,
    key_dir: Path,
    audience: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Send a signed order to operator `code` (its `http` client) and record the log link it
    answers with in the head file (`record_disclosure_head`). Returns (the release, None) or
    (the release, why the head could not be recorded): the identity was released all the same,
    but the operator's log does not extend the head known before, which must be shown loudly."""
    released = SignedClient(http).request("POST", "/v1/regulator/disclosures", signed, signed=False)
    log_client = SignedClient(http, key=keys.signing, key_id="regulator", audience=audience)
    try:
        record_disclosure_head(
            key_dir,
            code,
            released["log"],
            fetch_log=lambda: list(
                log_client.request("GET", "/v1/regulator/disclosure-log")["entries"]
            ),
        )
    except HeadNotExtended as exc:
        return released, str(exc)
    except (RemoteError, RemoteUnavailable) as exc:
        return released, f"the log could not be fetched to check the new head: {exc}"
    return released, None
