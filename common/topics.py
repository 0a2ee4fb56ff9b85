"""The declared list of Kafka topics (schemas/topics.toml) and their explicit creation."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

TOPICS_FILE = Path(__file__).resolve().parent.parent / "schemas" / "topics.toml"
DLQ_SUFFIX = ".dlq"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup_policy: str
    events: tuple[str, ...]
    retention_ms: int
    replication_factor: int = 1
    configs: tuple[tuple[str, str], ...] = ()

    def dead_letter(self) -> TopicSpec:
        return TopicSpec(
            self.name + DLQ_SUFFIX, self.partitions, "delete", (), self.retention_ms, self.replication_factor
        )

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup_policy} | dict(self.configs)
        if self.cleanup_policy == "delete":
            config["retention.ms"] = str(self.retention_ms)
        return config


def _spec(name: str, entry: dict, defaults: dict, replication_factor: int | None) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=int(entry["partitions"]),
        cleanup_policy=entry.get("cleanup_policy", "delete"),
        events=tuple(entry.get("events", [])),
        retention_ms=int(entry.get("retention_ms", defaults.get("retention_ms", 604800000))),
        replication_factor=replication_factor or int(defaults.get("replication_factor", 1)),
        configs=tuple((k, str(v)) for k, v in entry.get("configs", {}).items()),
    )


def load_topics(path: Path = TOPICS_FILE, replication_factor: int | None = None) -> dict[str, TopicSpec]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    defaults = data.get("defaults", {})
    specs = {}
    for entry in data["topic"]:
        spec = _spec(entry["name"], entry, defaults, replication_factor)
        specs[spec.name] = spec
        specs[spec.dead_letter().name] = spec.dead_letter()
    return specs


def load_topic_family(prefix: str, path: Path = TOPICS_FILE, replication_factor: int | None = None) -> TopicSpec:
    """The declared `topic_family` with `prefix` (topics made at run time, one per department), as a spec named
    by the prefix: `replace(spec, name=prefix + key)` is one of its topics."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for entry in data.get("topic_family", []):
        if entry["prefix"] == prefix:
            return _spec(prefix, entry, data.get("defaults", {}), replication_factor)
    raise ValueError(f"{path} declares no topic_family with prefix {prefix!r}")


async def ensure_topics(admin, specs: list[TopicSpec]) -> list[str]:
    """Create the topics the cluster lacks and bring the declared configs of existing ones in line;
    return the names created. `admin` is a started AIOKafkaAdminClient."""
    from aiokafka.admin import NewTopic

    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if missing:
        await admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config()) for s in missing]
        )
        log.info("created topics", extra={"topics": [s.name for s in missing]})
    await _align_configs(admin, [s for s in specs if s.name in existing and s.configs])
    return [s.name for s in missing]


async def _align_configs(admin, specs: list[TopicSpec]) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    for spec in specs:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name)])
        current = {e[0]: e[1] for response in described for r in response.resources for e in r[4]}
        if all(current.get(k) == v for k, v in spec.config().items()):
            continue
        # AlterConfigs replaces the topic's settings, so it is given the whole declared config.
        responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.config())])
        errors = [r for response in responses for r in response.resources if r[0] != 0]
        if errors:
            log.warning("could not align the config of %s: %s", spec.name, errors)
        else:
            log.info("aligned topic config", extra={"topic": spec.name, "config": spec.config()})


def main() -> None:
    """`python -m common.topics`: create every declared topic (a cluster's init job). Configured like a
    service, with the prefix TOPICS_ (TOPICS_KAFKA_BOOTSTRAP_SERVERS, TOPICS_KAFKA_SASL_..., ...)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from pydantic_settings import SettingsConfigDict

    from common.kafka import connection_options
    from common.settings import ServiceSettings, load_settings

    class TopicsSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TOPICS_", extra="ignore", frozen=True)

    settings = load_settings(TopicsSettings)

    async def run() -> None:
        admin = AIOKafkaAdminClient(**connection_options(settings))
        await admin.start()
        try:
            specs = load_topics(replication_factor=settings.kafka_replication_factor)
            created = await ensure_topics(admin, list(specs.values()))
            print(f"created {len(created)} topics: {', '.join(created) or '-'}")
        finally:
            await admin.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
