"""The hot path of an operator: `POST /v1/payments` and `POST /v1/payments/batch` as raw ASGI.

A payment through FastAPI costs more in the framework than in the payment: middleware layers,
routing through every route's pattern, dependency resolution, validation into models and
`model_dump` back out, `jsonable_encoder` over the receipt, the metrics middleware's wrapper.
`PaymentsFastPath` stands in front of the app's whole middleware stack
(`cbdc.web.app.add_front_door`) and answers those two routes itself, for a well-formed body:

- the body is read once, up to the service's body limit (413 `body_too_large` past it);
- it is parsed once (`cbdc.strictjson.loads_unique`: no repeated keys) and validated once, in
  python mode against the same models FastAPI uses (`SignedPayment`, `SignedPaymentBatch`);
  the validated dicts are the orders (what `model_dump(exclude_unset=True)` gave: strict
  models, no extra fields, no coercion, so the dicts already are exactly what was checked);
- the payment goes where the FastAPI route sends it (`OperatorState.pay`, or
  `signed_batch.pay_signed` in the request's transaction, in a thread), and is counted as
  there (`count_receipt`, `count_payments`, `count_batch`) along with the request histogram;
- the answer is written with one `json.dumps`; a refusal or an error gets exactly the answer
  the app's exception handlers give (`cbdc.web.app.exception_response`: problem+json, 503
  `database_unavailable` with Retry-After during an outage).

Anything that is not a well-formed body of the right content type (not JSON, a repeated key,
a missing field, a wrong type, too deep, a Content-Length over the limit) is handed, with the
bytes already read, to the FastAPI route, which answers it as it always has: bad input gets the
same problem+json whichever door it came in, and the routes stay declared and documented in
OpenAPI. Only well-formed payments, the load that matters, skip the framework.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cbdc.errors import DomainError
from cbdc.strictjson import loads_unique
from cbdc.web.app import TOO_LARGE, exception_response, read_body, replay_body, too_large
from cbdc.web.metrics import UNMATCHED
from operators.payments import signed_batch
from operators.payments.schemas import PaymentOrder, SignedPayment, SignedPaymentBatch
from operators.state import OperatorState

SINGLE = "/v1/payments"
BATCH = "/v1/payments/batch"
ORDER_FIELDS = tuple(PaymentOrder.model_fields)  # model_dump's order of the fields
_validate_single = SignedPayment.__pydantic_validator__.validate_python
_validate_batch = SignedPaymentBatch.__pydantic_validator__.validate_python
_JSON_HEADERS = [(b"content-type", b"application/json")]


async def pay_one(state: OperatorState, order: dict[str, Any], signature: str) -> dict[str, Any]:
    """`POST /v1/payments`, whichever door: the validated order paid (`OperatorState.pay`)
    and counted; its receipt, or its refusal raised."""
    result = await state.pay(order, signature)
    if isinstance(result, DomainError):
        state.metrics.count_payments("single", "refused", result.code)
        raise result
    state.metrics.count_receipt("single", result)
    return result


def pay_batch(state: OperatorState, items: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """`POST /v1/payments/batch`, whichever door (blocking: run it in a thread): the validated
    orders paid in one transaction (`signed_batch.pay_signed`) and counted; the answer."""
    try:
        results = state.uow.run(None, lambda s: signed_batch.pay_signed(s, state.ctx, items=items))
    except DomainError as exc:  # the whole batch refused: so is each of its orders
        state.metrics.count_payments("batch", "refused", exc.code, n=len(items))
        raise
    state.metrics.count_batch(results)
    state.wake_worker()
    accepted = sum(1 for r in results if r["ok"])
    return {"accepted": accepted, "refused": len(results) - accepted, "results": results}


class _NotForUs(Exception):
    """The body is not a well-formed payment: the FastAPI route answers it."""


class PaymentsFastPath:
    """ASGI: the two payment routes answered here, everything else passed to `app`."""

    def __init__(self, app: ASGIApp, *, owner: FastAPI, state: OperatorState) -> None:
        self.app, self.owner, self.state = app, owner, state
        self.max_bytes: int = owner.state.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path != SINGLE and path != BATCH:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        json_body, length = _headers(scope)
        if not json_body or length > self.max_bytes:
            await self.app(scope, receive, send)  # the app answers: 413, or its own parse
            return
        body = await read_body(receive, self.max_bytes)
        if body is None:  # the client went away
            return
        if body is TOO_LARGE:
            await self._answer(scope, send, too_large(self.max_bytes), UNMATCHED, start)
            return
        try:
            if path == SINGLE:
                await self._single(scope, send, body, start)
            else:
                await self._batch(scope, send, body, start)
        except _NotForUs:
            await self.app(scope, replay_body(body, receive), send)
        except Exception as exc:  # a bug here: answered as the app answers one (500, logged)
            await self._error(scope, send, exc, path, start)

    # ------------------------------------------------------------ the routes

    async def _single(self, scope: Scope, send: Send, body: bytes, start: float) -> None:
        signed = _parse(body, _validate_single)
        raw = signed["order"]
        order = {k: raw[k] for k in ORDER_FIELDS if k in raw}
        try:
            receipt = await pay_one(self.state, order, signed["signature"])
        except Exception as exc:
            await self._error(scope, send, exc, SINGLE, start)
            return
        await _send_json(send, 201, receipt)
        self.state.metrics.observe_request("POST", SINGLE, 201, time.perf_counter() - start)

    async def _batch(self, scope: Scope, send: Send, body: bytes, start: float) -> None:
        signed = _parse(body, _validate_batch)
        items = [
            ({k: o["order"][k] for k in ORDER_FIELDS if k in o["order"]}, o["signature"])
            for o in signed["orders"]
        ]
        try:
            answer = await run_in_threadpool(pay_batch, self.state, items)
        except Exception as exc:
            await self._error(scope, send, exc, BATCH, start)
            return
        await _send_json(send, 200, answer)
        self.state.metrics.observe_request("POST", BATCH, 200, time.perf_counter() - start)

    # ------------------------------------------------------------ plumbing

    async def _error(
        self, scope: Scope, send: Send, exc: Exception, route: str, start: float
    ) -> None:
        response = await exception_response(self.owner, scope, exc)
        await self._answer(scope, send, response, route, start)

    async def _answer(
        self, scope: Scope, send: Send, response: Any, route: str, start: float
    ) -> None:
        await response(scope, _no_body, send)
        self.state.metrics.observe_request(
            "POST", route, response.status_code, time.perf_counter() - start
        )


def _headers(scope: Scope) -> tuple[bool, int]:
    """(is the body declared `application/json`, its Content-Length or 0)."""
    json_body, length = False, 0
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            json_body = media == b"application/json"
        elif name == b"content-length":
            length = int(value) if value.isdigit() else 0
    return json_body, length


def _parse(body: bytes, validate: Any) -> dict[str, Any]:
    """The body parsed (no repeated keys) and validated, or `_NotForUs`."""
    try:
        parsed = loads_unique(body)
        validate(parsed)
    except (ValueError, ValidationError, DomainError) as exc:
        # not JSON, a repeated key, too deep, invalid: the route answers it (the same way)
        raise _NotForUs from exc
    return parsed  # type: ignore[no-any-return]


async def _send_json(send: Send, status: int, content: Mapping[str, Any]) -> None:
    """What FastAPI's JSONResponse writes, without `jsonable_encoder` (the answers here are
    built of JSON types already; anything else goes through it as a fallback)."""
    body = json.dumps(
        content,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        default=jsonable_encoder,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
