"""Two ``synmag serve`` replicas on one PostgreSQL: one leads (advisory lock), every frame once.

When the leader is killed (``kill -9``), PostgreSQL drops its connection and
with it the lock; the follower takes over on its next tick and the feed goes on.
"""

from __future__ import annotations

import httpx
import pytest

from tests.commands.test_serve_e2e import (  # noqa: F401 - cluster and val_source are fixtures
    Db,
    _minute_key,
    cluster,
    metric,
    published_minutes,
    val_source,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.servers]

MINUTES = 8


def _leader(api: str) -> float:
    return metric(api, "synmag_scheduler_leader")


def test_two_replicas_process_every_minute_once_and_fail_over(cluster, val_source, postgres_url):  # noqa: F811
    archive = cluster.replay(val_source, "--cadence", "4", "--rewind", "20", "--backlog", "1",
                             "--limit", str(MINUTES))
    env = cluster.serve_env(archive, database_url=postgres_url)
    db = Db(postgres_url)
    (a, api_a), (b, api_b) = cluster.serve(env, "a"), cluster.serve(env, "b")
    for api in (api_a, api_b):
        wait_for(lambda api=api: httpx.get(api + "/healthz", timeout=2).status_code == 200, 60, "both APIs")
    wait_for(lambda: _leader(api_a) + _leader(api_b) == 1, 30, "one leader")
    leader, follower_api = (a, api_b) if _leader(api_a) == 1 else (b, api_a)
    wait_for(lambda: len(db.products()) >= 3, 90, "three products")

    leader.kill9()
    at_kill = len(db.products())
    wait_for(lambda: _leader(follower_api) == 1, 30, "the follower to take over")
    wait_for(lambda: len(published_minutes(archive)) == MINUTES, 60, "the replay's last minute")
    expected = published_minutes(archive)
    wait_for(lambda: expected <= db.final_minutes(), 120, "every minute done")

    products = db.products()
    minutes = [_minute_key(p.obs_minute) for p in products]
    assert len(products) > at_kill
    assert sorted(minutes) == sorted(expected)  # one product per minute, none lost
    # Each minute was worked on by one replica only: no run found the product already made.
    runs = db.rows("SELECT obs_minute, detail FROM runs")
    assert not [r for r in runs if '"outcome":"exists"' in (r[1] or "")]
    db.close()
