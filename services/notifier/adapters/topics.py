"""Each department's notice topic, `notifier.notices.<department code>`, as schemas/topics.toml's
`topic_family` declares it, made with the admin client the first time it is needed. Kafka's ACLs separate
by topic, not by key: a prefixed READ ACL on `notifier.notices.<code>` for the department's adapter
principal lets it read its own notices only."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace

from common.identifiers import InvalidIdentifier, validate_credit_code
from common.kafka import KafkaPublisher
from common.topics import TOPICS_FILE, TopicSpec


def family_spec(prefix: str, replication_factor: int | None) -> TopicSpec:
    """The declared topic family with `prefix`, as a spec whose name is the prefix."""
    data = tomllib.loads(TOPICS_FILE.read_text(encoding="utf-8"))
    defaults = data.get("defaults", {})
    for entry in data.get("topic_family", []):
        if entry["prefix"] == prefix:
            return TopicSpec(
                name=prefix,
                partitions=int(entry["partitions"]),
                cleanup_policy=entry.get("cleanup_policy", "delete"),
                events=tuple(entry.get("events", [])),
                retention_ms=int(entry.get("retention_ms", defaults.get("retention_ms", 604800000))),
                replication_factor=replication_factor or int(defaults.get("replication_factor", 1)),
            )
    raise ValueError(f"{TOPICS_FILE} declares no topic_family with prefix {prefix!r}")


class KafkaDepartmentTopics:
    PREFIX = "notifier.notices."

    def __init__(self, publisher: KafkaPublisher, replication_factor: int | None) -> None:
        self.publisher = publisher
        self.family = family_spec(self.PREFIX, replication_factor)
        self._opened: set[str] = set()
        self._lock = asyncio.Lock()

    def topic(self, department_code: str) -> str:
        return self.PREFIX + department_code

    async def open(self, department_code: str) -> None:
        """Make the department's topic unless this process made or found it before; known to the publisher
        from then on, so that notices may be written to it."""
        if department_code in self._opened:
            return
        try:  # a topic name from a department's code only: nothing else reaches the cluster's namespace
            validate_credit_code(department_code)
        except InvalidIdentifier as exc:
            raise ValueError(f"department_code: {exc}") from None
        async with self._lock:
            if department_code in self._opened:
                return
            spec = replace(self.family, name=self.topic(department_code))
            await self.publisher.ensure_topics([spec])
            # the producer learns the new topic's partitions now, not when the relay's first send to it fails
            # (which would send the transaction's other messages again)
            await asyncio.wait_for(self.publisher._producer_or_raise().partitions_for(spec.name), 10)
            self.publisher.topics[spec.name] = spec
            self._opened.add(department_code)
