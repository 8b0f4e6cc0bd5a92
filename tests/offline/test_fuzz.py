"""Fuzzed offline bodies never get a 500: batches signed by the device itself (so every check
past the batch signature runs) carrying transfers with junk fields, payments with junk
certificates, and junk claims from a peer operator."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbdc import offline as kernel
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, SignedClient
from tests.offline.helpers import fund, register

TEXT = st.text(max_size=44)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    TEXT,
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


def test_fuzzed_syncs_and_claims_never_500(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob = network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKB1", bob)
    fund(network, "BKA1", pa, 100_00)
    key = SigningKey.from_private_bytes(pa.state()["sealed_key"])
    pb_key = SigningKey.from_private_bytes(pb.state()["sealed_key"])
    now = network.state("BKA1").ctx.now()
    template = pa.pay(pb.device_id, bob.wallet_id, 1_00, now)
    peer = SignedClient(
        network.operator_http["BKA1"],
        key=network.operator_keys["BKB1"],
        key_id="operator:BKB1",
        audience="operator:BKA1",
    )
    statuses: dict[int, int] = {}

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        payee=st.one_of(st.just(pb.device_id), TEXT),
        payee_wallet=st.one_of(st.just(bob.wallet_id), TEXT),
        at=st.one_of(st.just(template["transfer"]["at"]), TEXT),
        counter=st.integers(min_value=1, max_value=2**62),
        amount=st.integers(min_value=1, max_value=10**15),
        cert_field=st.sampled_from(["device", "public_key", "operator", "limits", "expires_at"]),
        junk=JUNK,
    )
    def check(
        payee: str,
        payee_wallet: str,
        at: str,
        counter: int,
        amount: int,
        cert_field: str,
        junk: Any,
    ) -> None:
        document = {
            **template["transfer"],
            "payee": payee,
            "payee_wallet": payee_wallet,
            "at": at,
            "counter": counter,
            "amount": amount,
        }
        signed = {"transfer": document, "signature": key.sign_json(document)}
        batch = kernel.sync_batch(
            device=pa.device_id, counter=counter, sent=[signed], received=[], at=now
        )
        response = network.operator_http["BKA1"].post(
            f"/v1/offline/devices/{pa.device_id}/sync",
            json={"batch": batch, "signature": key.sign_json(batch)},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        # the same transfer, handed to bob's device with a junk certificate field
        payment = copy.deepcopy({**template, **signed})
        payment["certificate"]["document"][cert_field] = junk
        batch = kernel.sync_batch(
            device=pb.device_id, counter=0, sent=[], received=[payment], at=now
        )
        response = network.operator_http["BKB1"].post(
            f"/v1/offline/devices/{pb.device_id}/sync",
            json={"batch": batch, "signature": pb_key.sign_json(batch)},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        # and forwarded by bob's operator as a claim
        try:
            claims = peer.request("POST", "/v1/interop/offline/claims", {"claims": [payment]})
        except RemoteError as exc:
            assert exc.status < 500, exc.body
        else:
            assert len(claims["results"]) == 1

    check()
    assert statuses.get(200, 0) > 0
