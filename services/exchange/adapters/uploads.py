"""Uploaded files go onto the bus from a worker process. Reading, checking, encoding, signing and sending
hundreds of thousands of rows is Python work: in a thread of the service it held the GIL that the event loop
needs, and every socket call of a probe or a heartbeat waited for it; handing the messages back to the
service's producer still cost its event loop a third of its time. The worker checks the file, then sends
the signed messages with a producer of its own and tells the service how many were acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Iterable
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from datashare_adapter.signing import ChangeSigner, value_digest
from datashare_adapter.sources import SourceError, iter_table

from common.adapter_keys import change_signing_input
from common.auth import load_signing_key
from common.codec import EventCodec
from common.errors import DomainError, Invalid
from common.events import Event, Signature
from common.kafka import KafkaPublisher
from common.metrics import EVENTS_PUBLISHED
from common.settings import ServiceSettings
from common.topics import load_topics
from services.exchange.domain.resources import ResourceSchema
from services.exchange.handlers import problems_refused, upload_batches, upload_problems
from services.exchange.ports import DATA_CHANGES, UploadedTable

ACK_SECONDS = 10.0  # for each batch of an upload: while the broker is away the uploader gets a 503 by then
WORKER_SILENCE = 1.0  # how often the event loop looks whether a silent worker is still alive

Message = tuple[str, bytes, list[tuple[str, bytes]]]  # key, value, headers


class ProcessUploads:
    """Implements UploadSender. Workers fork from a server process that imported this module once, so an
    upload starts within milliseconds (the first one starts the server)."""

    def __init__(self, settings: ServiceSettings, own_key: Ed25519PrivateKey) -> None:
        self.settings = settings
        self.key_pem = own_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([__name__])

    async def start(self) -> None:
        """Start the server the workers fork from; it imports this module, which takes seconds on a busy
        machine. A setup step: the service says it is ready once an upload would start at once."""
        worker = self.context.Process(target=_warm_up, name="upload-warm-up", daemon=True)
        await asyncio.to_thread(worker.start)
        await asyncio.to_thread(worker.join)

    async def send(
        self, schema: ResourceSchema, table: UploadedTable, deletions: list[str], version: int, uploaded_by: str
    ) -> int:
        out: Queue[tuple[Any, ...]] = self.context.Queue()
        job = (schema, table.path, table.filename, deletions, version, uploaded_by, self.key_pem, self.settings)
        worker = self.context.Process(target=prepare, args=(out, *job), name="upload", daemon=True)
        # Started in a thread that a cancellation does not stop: the worker is ended below whenever it started.
        starting = asyncio.ensure_future(asyncio.to_thread(worker.start))
        try:
            await asyncio.shield(starting)
            sent = 0
            while (acknowledged := await self._next(out, worker)) is not None:
                EVENTS_PUBLISHED.labels(DATA_CHANGES, "DataChanged").inc(acknowledged)
                sent += acknowledged
            return sent
        finally:
            with contextlib.suppress(Exception):
                await starting
            if worker.is_alive():
                worker.terminate()  # the broker went away, or the uploader left: the rest is not sent
            if worker.pid is not None:
                await asyncio.to_thread(worker.join, 5)
            out.close()

    @staticmethod
    async def _next(out: Queue[tuple[Any, ...]], worker: Any) -> int | None:
        """How many more messages the broker acknowledged, None once all were; the worker's refusal raised
        as it would be here."""
        while True:
            try:
                kind, *rest = await asyncio.to_thread(out.get, True, WORKER_SILENCE)
            except queue.Empty:
                if not worker.is_alive():
                    raise RuntimeError(f"the upload worker ended silently (exit code {worker.exitcode})") from None
                continue
            if kind == "sent":
                return rest[0]  # type: ignore[no-any-return]
            if kind == "done":
                return None
            if kind == "problems":
                raise problems_refused(*rest)
            if kind == "invalid":
                raise Invalid(*rest)
            if kind == "broker":
                raise KafkaTimeoutError(rest[0])
            raise RuntimeError(f"the upload worker failed: {rest[0]}")


def _warm_up() -> None:
    """In the first worker: nothing; the server it forked from has imported all a worker needs."""


def prepare(
    out: Queue[tuple[Any, ...]],
    schema: ResourceSchema,
    path: Path,
    filename: str,
    deletions: list[str],
    version: int,
    uploaded_by: str,
    key_pem: str,
    settings: ServiceSettings,
) -> None:
    """In the worker: check the whole table, then send its rows as signed messages, batch by batch."""
    _end_with_parent(path)
    try:
        with path.open("rb") as stream:
            shown, problems = upload_problems(schema, iter_table(stream, filename), deletions)
        if problems:
            out.put(("problems", shown, problems))
            return
        signer = ChangeSigner(load_signing_key(key_pem))
        with path.open("rb") as stream:
            batches = upload_batches(schema, iter_table(stream, filename), deletions, version, uploaded_by)
            asyncio.run(_send(out, settings, signer, batches))
        out.put(("done",))
    except KafkaError as exc:
        out.put(("broker", f"{type(exc).__name__}: {exc}"))
    except SourceError as exc:
        out.put(("invalid", "file", str(exc)))
    except DomainError as exc:
        out.put(("invalid", exc.field, exc.rule))
    except Exception as exc:
        out.put(("failed", f"{type(exc).__name__}: {exc}"))
    out.close()
    out.join_thread()  # everything put reaches the event loop before the worker ends


async def _send(
    out: Queue[tuple[Any, ...]], settings: ServiceSettings, signer: ChangeSigner, batches: Iterable[list[Event]]
) -> None:
    """Send batch after batch with a producer of the worker's own: the next batch is read and signed in a
    thread while the event loop hands the last one to the broker; each acknowledged batch is counted to the
    service."""
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    try:
        await asyncio.wait_for(publisher.start(), ACK_SECONDS)
    except TimeoutError:
        raise KafkaTimeoutError(f"the broker did not answer within {ACK_SECONDS:.0f}s") from None
    pending = iter(batches)

    def next_messages() -> list[tuple[str, str, bytes, list[tuple[str, bytes]]]] | None:
        batch = next(pending, None)
        return None if batch is None else [(DATA_CHANGES, *signed(publisher.codec, signer, e)) for e in batch]

    try:
        sending: asyncio.Task[int] | None = None
        while (messages := await asyncio.to_thread(next_messages)) is not None:
            if sending is not None:
                out.put(("sent", await sending))
            sending = asyncio.create_task(publisher.send_all(messages, ACK_SECONDS))
        if sending is not None:
            out.put(("sent", await sending))
    finally:
        await publisher.stop()


def _end_with_parent(path: Path) -> None:
    """In the worker: ended by the exchange (terminate), or should the exchange end without ending it
    (killed, out of memory, stopped before it could), remove the copy of the file and end. Nobody would read
    the queue, so a put would wait forever; the server the workers fork from lives on while a worker does;
    and an exchange that is gone, or stops before its cleanup ran, leaves the copy behind."""
    signal.signal(signal.SIGTERM, lambda *_: _leave(path))
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_leave_with, args=(parent.sentinel, path), name="parent-watch", daemon=True).start()


def _leave_with(sentinel: int, path: Path) -> None:
    wait([sentinel])
    _leave(path)


def _leave(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the file's own folder, once empty
    os._exit(1)


def signed(codec: EventCodec, signer: ChangeSigner, event: Event) -> Message:
    """The message an adapter would send: the value, and headers carrying the exchange's signature."""
    value = codec.encode(event.event_type, event.payload)
    sent_at, digest = event.occurred_at.isoformat(), value_digest(value)
    covered = change_signing_input(event, digest, sent_at)
    signature = Signature(signer.header(covered).decode(), sent_at, digest)
    return event.key, value, replace(event, signature=signature).headers()
