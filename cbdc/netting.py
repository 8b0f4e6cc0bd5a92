"""Digests of cleared payments, computed the same way by the central bank (which signs them in
a pair-settlement receipt) and by the operators (which check the items they receive).

An item is `{"reference", "payee_wallet", "payer_alias", "amount"}`; a submission is a list of
items in the order submitted. A direction (A -> B in one clearing cycle) is a set of
submissions.

    submission digest = SHA-256(canonical_json([[reference, payee_wallet, payer_alias, amount],
                                                ...]))            (items in submitted order)
    direction digest  = SHA-256(canonical_json([[submission_id, submission digest], ...]))
                                                                  (sorted by submission id)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cbdc.crypto import canonical_json, sha256_hex

MAX_SUBMISSION_ITEMS = 10_000


def submission_digest(items: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [str(i["reference"]), str(i["payee_wallet"]), str(i["payer_alias"]), int(i["amount"])]
        for i in items
    ]
    return sha256_hex(canonical_json(rows))


def direction_digest(submissions: Iterable[tuple[str, str]]) -> str:
    """`submissions`: (submission id, submission digest) pairs, in any order."""
    return sha256_hex(canonical_json([[sid, digest] for sid, digest in sorted(submissions)]))
