"""Checking an operator's disclosure log: one function for the operator's verify endpoint,
`cbdc audit` and `cbdc regulator log`, so the three can never disagree about what "intact"
means.

A log is intact when
  - its hash chain links (cbdc/hashchain.py): no entry was edited, dropped or reordered without
    recomputing the hashes after it;
  - every entry's disclosure order carries a valid signature of the regulator's key, names a
    wallet of this operator, and no order appears twice: a database superuser who rewrites an
    entry (its legal basis, say) and recomputes every hash still cannot sign the new order;
  - every head anchored outside the operator's database is still there unchanged, and the log
    is at least as long as the highest anchor: rewriting the fields the order signature does not
    cover, or cutting entries off the end, changes or removes an anchored head.

Anchors are (seq, hash) pairs: the head of the chain after entry `seq`. Because each hash
covers the previous one, an anchored head vouches for the whole log up to `seq`. After each
disclosure the operator signs its new head (`anchor_document`) and registers it with the central
bank (operators/jobs.py, central_bank/analysis/anchors.py); the regulator also keeps the heads
it saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cbdc.crypto import SigningKey, verify_json
from cbdc.hashchain import GENESIS, link_hash, verify_chain

ANCHOR_TYPE = "disclosure-anchor"
ANCHOR_CHAIN_TYPE = "disclosure-anchor-chain"
MAX_PROBLEMS = 20  # a report names the first problems; one is enough to fail


def anchor_document(operator: str, seq: int, head: str) -> dict[str, Any]:
    """What an operator signs when it registers the head of its disclosure log."""
    return {"type": ANCHOR_TYPE, "operator": operator, "seq": seq, "hash": head}


def sign_anchor(key: SigningKey, operator: str, seq: int, head: str) -> str:
    return key.sign_json(anchor_document(operator, seq, head))


def anchor_signed(public_key: str, operator: str, seq: int, head: str, signature: str) -> bool:
    return verify_json(public_key, anchor_document(operator, seq, head), signature)


def anchor_link_entry(operator: str, n: int, seq: int, head: str, signature: str) -> dict[str, Any]:
    """What link `n` of an operator's anchor chain at the central bank covers: the anchor."""
    return {
        "type": ANCHOR_TYPE,
        "operator": operator,
        "n": n,
        "seq": seq,
        "hash": head,
        "signature": signature,
    }


def anchor_chain_document(operator: str, n: int, link: str) -> dict[str, Any]:
    """What the central bank signs for each new head of an operator's anchor chain."""
    return {"type": ANCHOR_CHAIN_TYPE, "operator": operator, "n": n, "link": link}


def verify_anchor_chain(
    anchors: Sequence[Mapping[str, Any]],
    *,
    central_bank_key: str | None,
    operator: str,
    chain_head: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Check an operator's anchors as listed by `GET /v1/disclosure-anchors` (each with its
    `link`: n, prev, hash, signature) against the central bank's public key: every anchor is a
    link of one unbroken chain 1..n, each link's hash covers the anchor and the link before, and
    each link carries the central bank's signature. A superuser of the central bank's database
    who edits or deletes an anchor row breaks the chain, and cannot sign a recomputed one.
    `chain_head`: the chain's last link as the central bank listed it (`anchor_chains`): the
    anchors must reach it, so an anchor row deleted while its link stayed shows.
    Returns problems [{"seq", "reason"}] with reason anchor_unlinked, anchor_chain,
    anchor_chain_signature or anchor_chain_cut (none: intact)."""
    problems: list[dict[str, Any]] = []
    linked = []
    for a in anchors:
        link = a.get("link")
        if not isinstance(link, Mapping):
            problems.append({"seq": int(a["seq"]), "reason": "anchor_unlinked"})
        else:
            linked.append((int(link["n"]), a, link))
    previous = GENESIS
    for expected, (n, a, link) in enumerate(sorted(linked, key=lambda x: x[0]), start=1):
        seq = int(a["seq"])
        entry = anchor_link_entry(operator, n, seq, str(a["hash"]), str(a["signature"]))
        if (
            n != expected
            or link.get("prev") != previous
            or link_hash(previous, entry) != link.get("hash")
        ):
            problems.append({"seq": seq, "reason": "anchor_chain"})
        elif central_bank_key is None or not verify_json(
            central_bank_key,
            anchor_chain_document(operator, n, str(link["hash"])),
            str(link.get("signature", "")),
        ):
            problems.append({"seq": seq, "reason": "anchor_chain_signature"})
        previous = str(link.get("hash"))
    if chain_head is not None:
        n = int(chain_head["n"])
        reached = {int(link["n"]): str(link.get("hash")) for _, _, link in linked}
        if reached.get(n) != chain_head.get("hash") or not verify_json(
            central_bank_key or "",
            anchor_chain_document(operator, n, str(chain_head.get("hash"))),
            str(chain_head.get("signature", "")),
        ):
            last = max((int(a["seq"]) for a in anchors), default=0)
            problems.append({"seq": last + 1, "reason": "anchor_chain_cut"})
    return sorted(problems, key=lambda p: (p["seq"], p["reason"]))


def _order_problem(
    entry: Any, *, regulator_key: str | None, operator: str | None, seen: set[str]
) -> str | None:
    """Why this log entry's order is not a genuine order for this operator (None: it is)."""
    if not isinstance(entry, Mapping):
        return "entry_malformed"
    order, signature = entry.get("order"), entry.get("signature")
    if not isinstance(order, Mapping) or not isinstance(signature, str):
        return "entry_malformed"
    if regulator_key is None or not verify_json(regulator_key, dict(order), signature):
        return "order_signature"
    if operator is not None and (
        entry.get("operator") != operator
        or not str(order.get("wallet_id", "")).startswith(operator)
    ):
        return "order_for_another_operator"
    order_id = str(order.get("order_id", ""))
    if order_id in seen:
        return "order_repeated"
    seen.add(order_id)
    return None


def verify_log(
    rows: Iterable[Mapping[str, Any]],
    *,
    regulator_key: str | None,
    operator: str | None = None,
    anchors: Sequence[tuple[int, str]] = (),
    seen_head: tuple[int, str] | None = None,
    anchors_complete: bool = False,
) -> dict[str, Any]:
    """Check a disclosure log as served by `GET /v1/regulator/disclosure-log` (rows with seq,
    prev_hash, entry, hash, in seq order).

    regulator_key: the regulator's Ed25519 public key (None: no order can be trusted).
    operator: the operator's routing code, if known: every entry must be for it.
    anchors: (seq, hash) heads registered outside the operator's database.
    seen_head: (length, head) this checker saw before (the regulator's own anchor file).
    anchors_complete: every head up to `seen_head` must be anchored by now (the audit, which
    drains the operators' outboxes first).

    Returns {"ok", "length", "head", "broken_at", "problems"}: `broken_at` is the lowest seq
    with a problem (None when intact); `problems` lists [{"seq", "reason"}] by seq, where
    reason is one of chain, order_signature, order_for_another_operator, order_repeated,
    entry_malformed, anchor_mismatch, anchor_missing, truncated (shorter than, or not
    extending, `seen_head`), anchors_behind (with `anchors_complete`: fewer anchors than
    `seen_head` says exist, so one was deleted at the central bank or is still owed).
    """
    rows = list(rows)
    by_seq = {int(r["seq"]): r for r in rows}
    problems: list[dict[str, Any]] = []
    chain = verify_chain(
        ((int(r["seq"]), r["prev_hash"], r["entry"], r["hash"]) for r in rows), anchor=seen_head
    )
    if not chain["ok"]:
        broken = "truncated" if chain.get("truncated") else "chain"
        problems.append({"seq": int(chain["broken_at"]), "reason": broken})
    seen: set[str] = set()
    for row in rows:
        reason = _order_problem(
            row["entry"], regulator_key=regulator_key, operator=operator, seen=seen
        )
        if reason is not None:
            problems.append({"seq": int(row["seq"]), "reason": reason})
    for seq, head in sorted(set(anchors)):
        anchored = by_seq.get(seq)
        if anchored is None:
            problems.append({"seq": seq, "reason": "anchor_missing"})
        elif anchored["hash"] != head:
            problems.append({"seq": seq, "reason": "anchor_mismatch"})
    anchored_up_to = max((seq for seq, _ in anchors), default=0)
    if anchors_complete and seen_head is not None and anchored_up_to < seen_head[0]:
        problems.append({"seq": anchored_up_to + 1, "reason": "anchors_behind"})
    problems.sort(key=lambda p: (p["seq"], p["reason"]))
    return {
        "ok": not problems,
        "length": len(rows),
        "head": rows[-1]["hash"] if rows else GENESIS,
        "broken_at": problems[0]["seq"] if problems else None,
        "problems": problems[:MAX_PROBLEMS],
        "anchored": anchored_up_to,
    }


def describe(result: Mapping[str, Any]) -> str:
    """One line naming the problems of a `verify_log` result, for the CLI and the audit."""
    if result["ok"]:
        return "intact"
    return ", ".join(f"#{p['seq']} {p['reason']}" for p in result["problems"])
