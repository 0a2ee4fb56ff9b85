"""Each department's notice topic, `notifier.notices.<department code>`, as schemas/topics.toml's
`topic_family` declares it, made with the admin client the first time it is needed. Kafka's ACLs separate
by topic, not by key: a prefixed READ ACL on `notifier.notices.<code>` for the department's adapter
principal lets it read its own notices only."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import replace

from aiokafka.admin import AIOKafkaAdminClient

from common.identifiers import InvalidIdentifier, validate_credit_code
from common.kafka import KafkaPublisher, connection_options
from common.settings import ServiceSettings
from common.topics import TopicSpec, ensure_topics, load_topic_family


def normalised(department_code: str) -> str:
    """The code as the directory and the adapter kit spell it (upper case): topic names come from departments'
    codes only, so nothing else reaches the cluster's namespace."""
    try:
        return validate_credit_code(department_code)
    except InvalidIdentifier as exc:
        raise ValueError(f"department_code: {exc}") from None


class KafkaDepartmentTopics:
    PREFIX = "notifier.notices."

    def __init__(self, publisher: KafkaPublisher, settings: ServiceSettings) -> None:
        self.publisher = publisher
        self.settings = settings
        self.family = load_topic_family(self.PREFIX, replication_factor=settings.kafka_replication_factor)
        self._opened: set[str] = set()
        self._lock = asyncio.Lock()
        self._admin: AIOKafkaAdminClient | None = None  # kept: a connection per new department cost ~0.2 s

    async def _ensure(self, specs: list[TopicSpec]) -> None:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**connection_options(self.settings), request_timeout_ms=10000)
            await admin.start()
            self._admin = admin
        try:
            await ensure_topics(self._admin, specs)
        except Exception:
            admin, self._admin = self._admin, None
            await admin.close()
            raise

    def topic(self, department_code: str) -> str:
        return self.PREFIX + normalised(department_code)

    async def open(self, department_codes: Collection[str]) -> None:
        """Make the departments' topics this process did not make or find before, in one request to the
        cluster; known to the publisher from then on, so that notices may be written to them."""
        codes = {normalised(code) for code in department_codes}
        if not codes - self._opened:
            return
        async with self._lock:
            missing = sorted(codes - self._opened)
            if not missing:
                return
            specs = [replace(self.family, name=self.topic(code)) for code in missing]
            await self._ensure(specs)
            producer = self.publisher._producer_or_raise()
            for spec in specs:
                # the producer learns the new topic's partitions now, not when the relay's first send to it
                # fails (which would send the transaction's other messages again)
                await asyncio.wait_for(producer.partitions_for(spec.name), 10)
                self.publisher.topics[spec.name] = spec
            self._opened.update(missing)
