"""The consumer's handling of a fetched batch, without a broker: records as aiokafka hands them over."""

import asyncio

from aiokafka import ConsumerRecord

from common.codec import EventCodec
from common.events import Event
from common.kafka import EventConsumer
from common.settings import ServiceSettings

CODEC = EventCodec.from_folder()


def record(offset: int) -> ConsumerRecord:
    payload = {"grant_id": f"g{offset}", "resource_code": "101001/000001", "consumer_code": "c", "reason": "期满"}
    event = Event("GrantRevoked", f"g{offset}", payload | {"revoked_by": "admin"}, producer="test")
    value = CODEC.encode(event.event_type, event.payload)
    return ConsumerRecord("t", 0, offset, 0, 0, event.key.encode(), value, None, 0, len(value), event.headers())


async def test_a_big_fetched_batch_is_decoded_in_turns_with_the_rest_of_the_event_loop() -> None:
    """Decoding thousands of records at once held the event loop for hundreds of milliseconds: probes and
    the consumers' heartbeats waited. Other tasks run while a batch is decoded, and the handler still gets
    the whole batch, in order."""
    records = [record(n) for n in range(2000)]
    ticks: list[int] = []  # how many times another task ran before the handler was called
    handled: list[list[str]] = []

    async def handler(events: list[Event]) -> dict[str, str]:
        handled.append([e.key for e in events])
        ticks.append(turns)
        return {}

    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    consumer = EventConsumer(
        group="g",
        topics=["t"],
        handlers={},
        codec=CODEC,
        publisher=None,  # type: ignore[arg-type]  # nothing is dead-lettered here
        processed=None,  # type: ignore[arg-type]  # a batch handler de-duplicates by itself
        settings=ServiceSettings(),
        batch_handler=handler,
    )
    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    started_at = turns
    try:
        await consumer.process(records)
    finally:
        other.cancel()
    assert handled == [[f"g{n}" for n in range(2000)]]
    assert ticks[0] - started_at >= 5, "the event loop ran nothing else while the batch was decoded"
