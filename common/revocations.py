"""Credentials that changed after a token was issued: a revoked machine identity, a person whose roles
changed or who was deactivated. Every service follows the directory's events and refuses such tokens at
once, rather than when they expire."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import DecodeError, EventCodec
from common.kafka import IdleBackoff, connection_options, event_from_record, poll
from common.policy import Principal, Unauthenticated
from common.settings import ServiceSettings

log = logging.getLogger(__name__)
DIRECTORY_EVENTS = "directory.events"
SUBJECT_OF = {"MachineIdentityRevoked": "client_id", "PersonRolesChanged": "person_id"}


class Revocations:
    def __init__(self) -> None:
        self.changed_at: dict[str, datetime] = {}
        self.caught_up = False

    def apply(self, event_type: str, payload: dict, occurred_at: datetime) -> None:
        field = SUBJECT_OF.get(event_type)
        if field is None:
            return
        subject = payload[field]
        if subject not in self.changed_at or self.changed_at[subject] < occurred_at:
            self.changed_at[subject] = occurred_at

    def check(self, principal: Principal) -> None:
        changed = self.changed_at.get(principal.subject)
        # Tokens carry whole seconds: a change within the second a token was issued is not caught.
        if changed is not None and principal.issued_at is not None and principal.issued_at < int(changed.timestamp()):
            raise Unauthenticated("credentials revoked or roles changed after this token was issued; sign in again")

    async def follow(self, settings: ServiceSettings, codec: EventCodec) -> None:
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
                        if record.value is None:
                            continue
                        try:
                            event = event_from_record(record, codec)
                        except DecodeError:
                            continue  # the directory's own consumers dead-letter it
                        self.apply(event.event_type, event.payload, event.occurred_at)
                if not self.caught_up and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    self.caught_up = True
        finally:
            self.caught_up = False
            await asyncio.shield(consumer.stop())
