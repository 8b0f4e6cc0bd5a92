"""`cbdc api` usage errors that need no network: each is one line (UsageError, exit 2), never a
traceback (cli/api.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from cbdc.settings import NetworkConfig
from cli.api import UsageError, read_json, request_url, send


def test_a_body_file_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    binary = tmp_path / "body.json"
    binary.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_json(f"@{binary}", "--data")
    with pytest.raises(UsageError, match="cannot read"):
        read_json(f"@{tmp_path}", "--data")
    with pytest.raises(UsageError, match="malformed JSON"):
        read_json('{"a": ', "--data")


@pytest.mark.parametrize("path", ["/v1/info\n", "/v1/wallets/\x00", "/" + "a" * 70_000])
def test_a_path_httpx_cannot_send_is_a_usage_error(path: str) -> None:
    with pytest.raises(UsageError, match="not a path that can be sent"):
        request_url("http://127.0.0.1:8701", path)
    assert str(request_url("http://127.0.0.1:8701", "/v1/x y")).endswith("/v1/x%20y")


@pytest.mark.parametrize("method", ["GE T", "GET\r\nX-Evil: 1", "", "P0ST"])
def test_a_method_that_is_no_method_is_a_usage_error(method: str) -> None:
    no_network = cast(NetworkConfig, None)  # refused before the network is looked at
    kwargs: dict[str, Any] = dict(
        who=None, service=None, data=None, order=None, idempotency_key=None, curl=True
    )
    with pytest.raises(UsageError, match="not an HTTP method"):
        send(no_network, method=method, path="/v1/info", **kwargs)
