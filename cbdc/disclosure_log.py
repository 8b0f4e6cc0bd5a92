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
bank (operators/jobs.py, central_bank/anchors.py); the regulator also keeps the heads it saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cbdc.crypto import SigningKey, verify_json
from cbdc.hashchain import GENESIS, verify_chain

ANCHOR_TYPE = "disclosure-anchor"
MAX_PROBLEMS = 20  # a report names the first problems; one is enough to fail


def anchor_document(operator: str, seq: int, head: str) -> dict[str, Any]:
    """What an operator signs when it registers the head of its disclosure log."""
    return {"type": ANCHOR_TYPE, "operator": operator, "seq": seq, "hash": head}


def sign_anchor(key: SigningKey, operator: str, seq: int, head: str) -> str:
    return key.sign_json(anchor_document(operator, seq, head))


def anchor_signed(public_key: str, operator: str, seq: int, head: str, signature: str) -> bool:
    return verify_json(public_key, anchor_document(operator, seq, head), signature)


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
) -> dict[str, Any]:
    """Check a disclosure log as served by `GET /v1/regulator/disclosure-log` (rows with seq,
    prev_hash, entry, hash, in seq order).

    regulator_key: the regulator's Ed25519 public key (None: no order can be trusted).
    operator: the operator's routing code, if known: every entry must be for it.
    anchors: (seq, hash) heads registered outside the operator's database.
    seen_head: (length, head) this checker saw before (the regulator's own anchor file).

    Returns {"ok", "length", "head", "broken_at", "problems"}: `broken_at` is the lowest seq
    with a problem (None when intact); `problems` lists [{"seq", "reason"}] by seq, where
    reason is one of chain, order_signature, order_for_another_operator, order_repeated,
    entry_malformed, anchor_mismatch, anchor_missing, truncated.
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
    problems.sort(key=lambda p: (p["seq"], p["reason"]))
    return {
        "ok": not problems,
        "length": len(rows),
        "head": rows[-1]["hash"] if rows else GENESIS,
        "broken_at": problems[0]["seq"] if problems else None,
        "problems": problems[:MAX_PROBLEMS],
        "anchored": max((seq for seq, _ in anchors), default=0),
    }


def describe(result: Mapping[str, Any]) -> str:
    """One line naming the problems of a `verify_log` result, for the CLI and the audit."""
    if result["ok"]:
        return "intact"
    return ", ".join(f"#{p['seq']} {p['reason']}" for p in result["problems"])
