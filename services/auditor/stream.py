"""The auditor's stateful stream work (faust): data accesses counted per consumer department.

The count lives in a faust table (its changelog topic makes it survive restarts and rebalances) and is
projected to MongoDB for the REST facade. Run with `python -m services.auditor.stream`.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from pymongo import AsyncMongoClient

from common.codec import DecodeError, EventCodec
from common.kafka import connection_options
from common.logs import configure_logging
from common.mongo import connect
from common.settings import load_settings
from common.streams import broker_urls
from services.auditor.adapters.mongo import ACCESS_COUNTS
from services.auditor.domain.evaluation import NOT_COUNTED, data_access_counted_for
from services.auditor.settings import AuditorSettings

log = logging.getLogger(__name__)
ACCESSES = "exchange.data-accesses"


def create_stream_app(settings: AuditorSettings, codec: EventCodec, mongo: AsyncMongoClient) -> faust.App:
    app = faust.App(
        "auditor-evaluation",
        broker=broker_urls(
            settings.kafka_bootstrap_servers, settings.kafka_idle_pause_seconds, settings.kafka_idle_pause_max_seconds
        ),
        store="memory://",
        topic_partitions=6,
        topic_replication_factor=settings.kafka_replication_factor or 1,
        web_enabled=False,
        web_port=settings.stream_web_port,
        producer_acks=-1,
        consumer_group_instance_id=f"auditor-evaluation:{settings.consumer_instance_id}",
        broker_credentials=_credentials(settings),
    )
    accesses = app.topic(ACCESSES, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw")
    dead_letters = app.topic(ACCESSES + ".dlq", key_type=bytes, value_type=bytes, value_serializer="raw")
    counts = app.Table("data-accesses-by-consumer", default=int, partitions=6)
    projection = mongo[settings.mongo_database][ACCESS_COUNTS]

    def consumer_of(value: bytes) -> str:
        try:
            return data_access_counted_for(codec.decode(value)[1])
        except (DecodeError, KeyError) as exc:
            return f"!undecodable:{exc}"

    @counts.on_recover
    async def project_restored() -> None:
        """Once the table is restored from its changelog (a start, a rebalance), its counts go to MongoDB: the
        projection is whole again before the next access comes."""
        for consumer, count in list(counts.items()):
            await projection.update_one({"_id": consumer}, {"$set": {"count": count}}, upsert=True)

    @app.agent(accesses)
    async def count_accesses(stream: Any) -> None:
        async for event in stream.group_by(consumer_of, name="by-consumer").events():
            consumer = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
            if consumer.startswith("!undecodable:"):
                await dead_letters.send(key=b"", value=event.value, headers=[("dlq.reason", consumer[1:].encode())])
                continue
            if consumer == NOT_COUNTED:
                continue
            counts[consumer] += 1
            await projection.update_one({"_id": consumer}, {"$set": {"count": counts[consumer]}}, upsert=True)

    return app


def _credentials(settings: AuditorSettings) -> faust.types.auth.CredentialsT | None:
    """The same broker security as the services' aiokafka clients (common.kafka.connection_options)."""
    options = connection_options(settings)
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=options.get("ssl_context"),
        )
    if "ssl_context" in options:
        return faust.SSLCredentials(options["ssl_context"])
    return None


def main() -> None:
    settings = load_settings(AuditorSettings)
    configure_logging("auditor-stream", settings.log_level)
    app = create_stream_app(settings, EventCodec.from_folder(), connect(settings))
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
