"""A one-time login link used by many browsers at once opens exactly one session (the token is
consumed by one UPDATE ... WHERE used_at IS NULL ... RETURNING)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.conftest import InProcessNetwork
from tests.dashboard.test_dashboard import browser, new_login


def test_a_login_link_used_at_once_by_many_opens_one_session(network: InProcessNetwork) -> None:
    url = new_login(network)["url"]

    def use(_: int) -> int:
        return browser(network).get(url, follow_redirects=False).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(use, range(6)))
    assert statuses == [303] + [401] * 5
    with network.cb_app.state.cb.factory() as s:
        assert s.execute(text("SELECT count(*) FROM dashboard_sessions")).scalar() == 1
