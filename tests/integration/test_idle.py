"""What an idle process wakes up for: the HTTP server and the database driver schedule next to nothing
while nothing happens, and still act at once when something does."""

import asyncio
import signal
import time

import uvicorn

from common.mongo import connect
from common.server import QuietServer
from devstack.processes import free_port
from tests.integration.conftest import settings_for
from tests.wakeups import timers_scheduled


async def test_the_idle_http_server_wakes_once_a_second_and_stops_at_once() -> None:
    # on a loop of its own: the tests' shared loop also runs what earlier tests left open (their database clients)
    await asyncio.to_thread(asyncio.run, _idle_http_server())


async def _idle_http_server() -> None:
    config = uvicorn.Config(lambda scope, receive, send: None, port=free_port(), log_config=None, lifespan="off")
    config.load()
    server = QuietServer(config)
    with timers_scheduled() as timers:
        looping = asyncio.create_task(server.main_loop())  # what uvicorn runs between start-up and shutdown
        await asyncio.sleep(3.2)
    assert sum(timers.values()) <= 5, f"the idle server scheduled {dict(timers)} in 3 s (uvicorn's own: 32)"
    assert dict(server.server_state.default_headers)[b"date"]  # renewed each second
    asked = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(looping, 5)
    assert time.monotonic() - asked < 0.3


async def test_an_idle_database_client_holds_no_waiting_requests_open(infra) -> None:
    # on a loop of its own: the tests' shared loop also runs what earlier tests left open (their database clients)
    await asyncio.to_thread(asyncio.run, _idle_database_client(infra))


async def _idle_database_client(infra) -> None:  # type: ignore[no-untyped-def]
    client = connect(settings_for(infra))
    try:
        await client.admin.command("ping")
        await asyncio.sleep(1)  # the first checks are done
        # pymongo's own tasks look at a flag every 0.5 s (its monitor and its cursor reaper: 12 in 3 s); a
        # streaming monitor adds an open request checked every 0.5 s and a round-trip monitor (another 12).
        # A heartbeat that times out on a loaded machine makes the monitor look every 0.5 s until the server is
        # known again, so a window may be spent recovering: the client must be quiet in one of three.
        windows = []
        for _ in range(3):
            with timers_scheduled() as timers:
                await asyncio.sleep(3)
            windows.append(dict(timers))
            if sum(timers.values()) <= 14:
                break
        assert sum(windows[-1].values()) <= 14, windows
    finally:
        await client.close()
