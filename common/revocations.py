"""Credentials that changed after a token was issued: a revoked machine identity or a rotated secret, a
person whose roles changed, who was deactivated, whose password was reset or whose refresh token was
replayed. Each such change raises the principal's credential generation; tokens carry the generation they
were issued under (claim `gen`). Every service follows the directory's events and refuses a token whose
generation is older than the latest it knows, at once rather than when it expires.

Only events signed by the directory count: anyone able to write the topic could otherwise shut anyone out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from common.auth import verify_event_signature
from common.codec import DecodeError, EventCodec
from common.kafka import IdleBackoff, connection_options, event_from_record, poll
from common.keys import KeySource
from common.policy import Principal, Unauthenticated
from common.settings import ServiceSettings

log = logging.getLogger(__name__)
DIRECTORY_EVENTS = "directory.events"
SUBJECT_OF = {
    "MachineIdentityRevoked": "client_id",
    "MachineCredentialsRotated": "client_id",
    "PersonRolesChanged": "person_id",
    "PersonTokensRevoked": "person_id",
}


class Revocations:
    def __init__(self) -> None:
        self.generations: dict[str, int] = {}
        self.caught_up = False

    def apply(self, event_type: str, payload: dict[str, Any]) -> None:
        field = SUBJECT_OF.get(event_type)
        if field is None:
            return
        subject, generation = payload[field], payload.get("generation", 0)
        if generation > self.generations.get(subject, 0):  # replayed or reordered events never lower it
            self.generations[subject] = generation

    def check(self, principal: Principal) -> None:
        if (principal.generation or 0) < self.generations.get(principal.subject, 0):
            raise Unauthenticated("credentials revoked or roles changed after this token was issued; sign in again")

    def receive(self, record: ConsumerRecord, codec: EventCodec, keys: KeySource) -> None:
        """Apply one record of the directory's topic if the directory signed it."""
        if record.value is None:
            return
        if keys.verifier is None:
            raise RuntimeError("token signing keys not loaded yet")  # the supervisor restarts the follower
        try:
            verify_event_signature(keys.verifier.keys, list(record.headers or ()), record.key or b"", record.value)
            event = event_from_record(record, codec)
        except (Unauthenticated, DecodeError) as exc:
            if _header(record, "event_type") in SUBJECT_OF:  # other events matter to no one here
                log.warning(
                    "ignored a directory event: %s",
                    exc,
                    extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
                )
            return
        self.apply(event.event_type, event.payload)

    async def follow(self, settings: ServiceSettings, codec: EventCodec, keys: KeySource) -> None:
        """Read the directory's events from the beginning, then keep up (no consumer group: every process
        needs all of them)."""
        consumer = AIOKafkaConsumer(**connection_options(settings), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [
                TopicPartition(DIRECTORY_EVENTS, p) for p in consumer.partitions_for_topic(DIRECTORY_EVENTS) or []
            ]
            if not partitions:
                raise RuntimeError(f"topic {DIRECTORY_EVENTS} not found")
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            backoff = IdleBackoff(settings)
            while True:
                batches = await poll(consumer, settings, backoff=backoff)
                for records in batches.values():
                    for record in records:
                        self.receive(record, codec, keys)
                if not self.caught_up and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    self.caught_up = True
        finally:
            self.caught_up = False
            await asyncio.shield(consumer.stop())


def _header(record: ConsumerRecord, name: str) -> str:
    return next((v.decode("utf-8", "replace") for k, v in record.headers or () if k == name), "")
