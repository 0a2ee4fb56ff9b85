"""Credentials that changed after a token was issued: a revoked machine identity or a rotated secret, a
person whose roles changed, who was deactivated, whose password was reset or whose refresh token was
replayed. Each such change raises the principal's credential generation; tokens carry the generation they
were issued under (claim `gen`). Every service follows the directory's events and refuses a token whose
generation is older than the latest it knows, at once rather than when it expires.

Only events signed by the directory count: anyone able to write the topic could otherwise shut anyone out.
The same events announce adapters' signing keys (common.adapter_keys), followed here too.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from common.adapter_keys import KEY_EVENTS, AdapterKeys
from common.auth import verify_event_signature
from common.codec import DecodeError, EventCodec
from common.kafka import LOG_APPEND_TIME, IdleBackoff, consumer_options, event_from_record, fetch_once
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
FETCH_WAIT_MS = 100  # how long the broker holds an empty fetch: how soon a waiting check learns key state
APPEND_MARGIN = 0.2  # seconds: between the broker answering a fetch and the answer being read here


class Revocations:
    def __init__(self) -> None:
        self.generations: dict[str, int] = {}
        self.caught_up = False
        self.adapter_keys = AdapterKeys()

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
        appended_at = (
            datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp_type == LOG_APPEND_TIME else None
        )
        try:
            headers = list(record.headers or ())
            verify_event_signature(keys.verifier.keys, headers, record.key or b"", record.value, appended_at)
            event = event_from_record(record, codec)
        except (Unauthenticated, DecodeError) as exc:
            if _header(record, "event_type") in SUBJECT_OF.keys() | KEY_EVENTS:  # others matter to no one here
                log.warning(
                    "ignored a directory event: %s",
                    exc,
                    extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
                )
            return
        self.apply(event.event_type, event.payload)
        if event.event_type in KEY_EVENTS:
            self.adapter_keys.apply(event.event_type, event.payload, event.occurred_at)

    async def follow(self, settings: ServiceSettings, codec: EventCodec, keys: KeySource) -> None:
        """Read the directory's events from the beginning, then keep up (no consumer group: every process
        needs all of them)."""
        consumer = AIOKafkaConsumer(
            **consumer_options(settings), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS
        )
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
                batches = await fetch_once(consumer)
                for records in batches.values():
                    for record in records:
                        self.receive(record, codec, keys)
                if not self.caught_up and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    self.caught_up = True
                if self.caught_up:
                    await self._note_known(consumer, partitions)
                if batches:
                    backoff.busy()
                else:
                    await self._idle(consumer, partitions, backoff.idle())
        finally:
            self.caught_up = False
            await asyncio.shield(consumer.stop())

    async def _note_known(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Every event the broker held when it last answered each partition's fetch has been read: key state
        is known for messages appended before the earliest of those answers."""
        answered = []
        for tp in partitions:
            highwater, at = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
            if highwater is None or at is None or await consumer.position(tp) < highwater:
                return
            answered.append(at / 1000)
        self.adapter_keys.advanced(min(answered) - APPEND_MARGIN)

    async def _idle(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition], pause: float) -> None:
        """Nothing new: stop fetching for `pause` (an idle follower costs next to nothing), unless a check
        waits for newer key state."""
        wanted = self.adapter_keys.wanted
        if wanted.is_set():
            wanted.clear()
            return
        consumer.pause(*partitions)
        try:
            await asyncio.wait_for(wanted.wait(), pause)
        except TimeoutError:
            pass
        finally:
            consumer.resume(*partitions)
        wanted.clear()


def _header(record: ConsumerRecord, name: str) -> str:
    return next((v.decode("utf-8", "replace") for k, v in record.headers or () if k == name), "")
