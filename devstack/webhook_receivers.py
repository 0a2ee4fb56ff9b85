"""Webhook receivers on loopback for tests and benchmarks: a bare asyncio HTTP/1.1 server (keep-alive,
Content-Length bodies) that records every request it is sent and answers the status it is told to. It can
be stopped and started again on the same port, as a receiver that goes down and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REASONS = {200: "OK", 204: "No Content", 500: "Internal Server Error", 503: "Service Unavailable"}
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: str
    at: float  # time.time() when it arrived
    status: int  # what the receiver answered

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    port: int = 0
    answer: Callable[[Received], int] = field(default=lambda _r: 200)
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    def accepted_ids(self) -> list[str]:
        return [r.webhook_id for r in self.accepted()]

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Down: the port refuses connections and open ones are closed."""
        if self.server is not None:
            self.server.close()
            for writer in list(self.connections):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None

    async def wait_for(self, count: int, timeout: float, accepted_only: bool = True) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.accepted() if accepted_only else self.received
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEADER_BYTES:
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(headers, body.decode(), time.time(), 0)
                status = self.answer(request)
                self.received.append(Received(headers, request.body, request.at, status))
                self.arrived.set()
                reason = REASONS.get(status, "Status")
                writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self.connections.discard(writer)
            writer.close()
