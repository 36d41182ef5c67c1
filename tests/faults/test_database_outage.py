"""PostgreSQL vanishes from the network during a stream of creates, updates and deletes.

tests/test_server_behaviour.py covers reads against a refused connection. Here the
outage is a silent one (:class:`tests.faults.proxy.SilentProxy`: every new connection
waits out the pool's 2 s connect timeout) and the load writes: what the table holds
afterwards is checked against every answer (:mod:`tests.faults.load`).
"""

from __future__ import annotations

from typing import Any

from core.registry import REGISTRY
from tests.conftest import PG_HOST, PG_PORT, dsn_through
from tests.faults.load import ACKNOWLEDGED, UNAVAILABLE, ProjectLoad
from tests.faults.proxy import SilentProxy


def refusals() -> dict[str, float]:
    """``nve_db_unavailable_total`` by cause (the registry is the process's: the server runs in it)."""
    return {cause: REGISTRY.get_sample_value("nve_db_unavailable_total", {"cause": cause}) or 0.0
            for cause in ("failed", "rejected")}


async def test_writes_during_a_silent_outage_are_fast_503s_and_nothing_is_half_written(
        migrated_dsn: str, start_server: Any) -> None:
    proxy = SilentProxy(PG_HOST, PG_PORT)
    await proxy.start()
    database = migrated_dsn.rsplit("/", 1)[1]
    server = await start_server(database_url=dsn_through(proxy.port, database),
                                rate_limit_writes=10**6)
    load = ProjectLoad(f"http://127.0.0.1:{server.port}")
    await load.start()
    try:
        await load.wait_until_each_writer(0, 3, ACKNOWLEDGED)
        async with load.fault():
            await proxy.silence()
        # Every writer has had the request that was in flight at the cut answered.
        await load.wait_until_each_writer(load.clock, 1, frozenset({UNAVAILABLE}))

        before, since = refusals(), load.tick()
        await load.wait_until_each_writer(since, 10, frozenset({UNAVAILABLE}))
        after = refusals()
        burst = load.writes(since)
        assert {write.status for write in burst} == {UNAVAILABLE}
        # The cause of fast answers: once the latch was down no request tried PostgreSQL,
        # so none waited for a connect that the silent host would never answer.
        # (Refused uses, not requests: the writes of one loop turn share one use, core/projects.py.)
        assert after["failed"] == before["failed"], (before, after)
        assert after["rejected"] > before["rejected"], (before, after, len(burst))
        # Connects do hang meanwhile (the latch's probe and the job-events listener knock): this
        # is the outage in which trying per request would have cost every request 2 s.
        await load.wait_for(lambda: proxy.unanswered > 0, "a connect to the silent host")

        await proxy.restore()
        restored = load.tick()
        await load.wait_until_each_writer(restored, 3, ACKNOWLEDGED)
    finally:
        await load.stop()
        await proxy.close()
    await load.check(migrated_dsn)
