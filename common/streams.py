"""faust plumbing: the aiokafka transport with the services' idle pause (common.kafka.poll). faust's
consumer fetches again the moment a fetch comes back empty; a broker that answers empty fetches at once
instead of holding them for fetch.max.wait.ms (the local one does) keeps an idle worker spinning. After an
empty fetch this one stops fetching for a while, growing like IdleBackoff, and takes up again at once when
records come. Use it with the broker URL scheme `datashare-kafka://`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from common.kafka import ANSWER_CHECK_MS, FETCHER_IDLE_WAKE_MS, IDLE_POLL_MS

SCHEME = "datashare-kafka"


class IdlePausingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    first_pause = 0.25
    longest_pause = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pause = self.first_pause

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # As common.kafka.consumer_options: no 200 ms wake-ups of the background fetcher (faust cannot pass it).
        consumer._consumer_timeout = FETCHER_IDLE_WAKE_MS / 1000
        return consumer

    async def _fetch_records(  # type: ignore[override]
        self, consumer: Any, active_partitions: Any, timeout: float | None = None, max_records: int | None = None
    ) -> Any:
        if not self.first_pause:
            return await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        # As common.kafka.fetch_once: until records come or the broker answered each partition's fetch once;
        # while faust waits for records, aiokafka fetches again and again.
        asked_ms, deadline = int(time.time() * 1000), time.monotonic() + IDLE_POLL_MS / 1000
        if not _fetched(consumer, active_partitions):  # nothing to fetch: no need to wait for an answer
            deadline = 0.0
        while True:
            records = await super()._fetch_records(
                consumer, active_partitions, timeout=ANSWER_CHECK_MS / 1000, max_records=max_records
            )
            if records or not self.consumer.flow_active or time.monotonic() >= deadline:
                break
            if _answered(consumer, active_partitions, asked_ms):
                # the answer may have stored records after the fetch stopped waiting: take them now
                records = await super()._fetch_records(consumer, active_partitions, timeout=0, max_records=max_records)
                break
        if records:
            self._pause = self.first_pause
            return records
        # Everything the consumer would fetch: the agents' partitions and the tables' changelogs alike. What
        # faust itself paused stays paused.
        idle = consumer.assignment() - consumer.paused()
        consumer.pause(*idle)
        try:
            await asyncio.sleep(self._pause)
        finally:
            consumer.resume(*(idle & consumer.assignment()))
        self._pause = min(self._pause * 2, self.longest_pause)
        return records


def _fetched(consumer: Any, partitions: Any) -> set[Any]:
    return set(partitions) & (consumer.assignment() - consumer.paused())


def _answered(consumer: Any, partitions: Any, asked_ms: int) -> bool:
    fetched = _fetched(consumer, partitions)
    return bool(fetched) and all((consumer.last_poll_timestamp(tp) or 0) >= asked_ms for tp in fetched)


class IdlePausingConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> IdlePausingConsumerThread:
        return IdlePausingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = IdlePausingConsumer


def broker_urls(bootstrap_servers: str, idle_pause: float, longest_pause: float) -> list[str]:
    """faust broker URLs for `bootstrap_servers` through this transport, with the services' idle pause."""
    IdlePausingConsumerThread.first_pause = idle_pause
    IdlePausingConsumerThread.longest_pause = max(idle_pause, longest_pause)
    return [f"{SCHEME}://{host.strip()}" for host in bootstrap_servers.split(",")]


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
