"""Talking to the platform: an access token from the directory, schemas and digests from the exchange over
REST, data changes onto the bus, the department's notifications off it.

Each change is signed with the adapter's Ed25519 key (`datashare_adapter.signing`), whose public half the
department's data administrator registered with the directory; no credentials travel on the bus.

Delivery: the producer is idempotent with acks from all replicas; `flush` returns once the broker has every
change. A change's id is derived from (resource, subject, source version, operation), so a change sent
twice — after a crash, say — is stored once by the center.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastavro import parse_schema, schemaless_reader

from datashare_adapter.avro import HEADER_LEN, MARKER, SingleObjectWriter, schema_fingerprint
from datashare_adapter.identifiers import change_id, validate_subject_key
from datashare_adapter.signing import (
    SIGNATURE_HEADER,
    ChangeSigner,
    InvalidKey,
    load_private_key_file,
    signing_input,
    value_digest,
)

DATA_CHANGES = "exchange.data-changes"
NOTICES_PREFIX = "notifier.notices."  # one topic per department: the broker's ACLs let each read its own only
IN_FLIGHT = 5000  # changes sent before waiting for the broker's acknowledgements


@dataclass(frozen=True)
class PlatformConfig:
    """Where the platform is and who the adapter is. `from_env` reads DATASHARE_* variables (the signing key's
    path from DATASHARE_SIGNING_KEY_FILE: needed to send changes, not to read notifications)."""

    directory_url: str
    exchange_url: str
    bootstrap_servers: str
    client_id: str
    client_secret: str
    department_code: str
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    signing_key_file: str | None = None  # the adapter's Ed25519 private key (PEM); `datashare-adapter keygen`

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PlatformConfig:
        names = (
            "DIRECTORY_URL",
            "EXCHANGE_URL",
            "KAFKA",
            "CLIENT_ID",
            "CLIENT_SECRET",
            "DEPARTMENT",
            "SIGNING_KEY_FILE",
        )
        missing = [f"DATASHARE_{n}" for n in names if not env.get(f"DATASHARE_{n}")]
        if missing:
            raise SystemExit(f"set {', '.join(missing)} (see the adapter kit's README)")
        return cls(
            env["DATASHARE_DIRECTORY_URL"],
            env["DATASHARE_EXCHANGE_URL"],
            env["DATASHARE_KAFKA"],
            env["DATASHARE_CLIENT_ID"],
            env["DATASHARE_CLIENT_SECRET"],
            env["DATASHARE_DEPARTMENT"],
            env.get("DATASHARE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            env.get("DATASHARE_KAFKA_SSL_CAFILE"),
            env.get("DATASHARE_SIGNING_KEY_FILE"),
        )

    def kafka_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.ssl_cafile:
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options


class PlatformError(RuntimeError):
    pass


@dataclass
class Platform:
    """The REST side. The token is fetched with the client-credentials grant and renewed before expiry,
    unless `access_token` gives one issued otherwise, used as it is."""

    config: PlatformConfig
    access_token: str | None = None
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))
    _token: str | None = None
    _expires: float = 0.0

    async def close(self) -> None:
        await self._http.aclose()

    async def token(self) -> str:
        if self.access_token is not None:
            return self.access_token
        if self._token is None or time.monotonic() > self._expires - 60:
            response = await self._http.post(
                f"{self.config.directory_url}/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.config.client_id,
                    "client_secret": self.config.client_secret,
                },
            )
            if response.status_code != 200:
                raise PlatformError(f"sign-in refused: {response.status_code} {response.text}")
            grant = response.json()
            self._token, self._expires = grant["access_token"], time.monotonic() + grant["expires_in"]
        return self._token

    async def get(self, path: str, *, public: bool = False, **params: Any) -> Any:
        headers = {} if public else {"authorization": f"Bearer {await self.token()}"}
        response = await self._http.get(f"{self.config.exchange_url}{path}", params=params, headers=headers)
        if response.status_code != 200:
            raise PlatformError(f"GET {path}: {response.status_code} {response.text}")
        return response.json()

    async def schema(self, event_type: str) -> dict[str, Any]:
        return await self.get(f"/schemas/{event_type}", public=True)

    async def resource(self, resource_code: str) -> dict[str, Any]:
        """The resource as the exchange knows it from the catalog: data items, key item, change-feed position."""
        return await self.get(f"/resources/{resource_code}")

    async def digest_tops(self, resource_code: str) -> list[str]:
        return (await self.get(f"/resources/{resource_code}/digest"))["tops"]

    async def digest_leaves(self, resource_code: str, tops: list[int]) -> dict[int, list[tuple[int, int]]]:
        found: dict[int, list[tuple[int, int]]] = {}
        for start in range(0, len(tops), 64):
            part = await self.get(f"/resources/{resource_code}/digest/leaves", top=tops[start : start + 64])
            found |= {int(t): [(s, c) for s, c in leaves] for t, leaves in part.items()}
        return found

    async def bucket_records(self, resource_code: str, buckets: list[int]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(buckets), 512):
            found += await self.get(f"/resources/{resource_code}/records", bucket=buckets[start : start + 512])
        return found

    async def changes(self, resource_code: str, since: int, limit: int = 1000) -> list[dict[str, Any]]:
        """The change feed: stored changes after sequence number `since`."""
        return await self.get(f"/resources/{resource_code}/changes", since=since, limit=limit)


class Adapter:
    """Publishes a department's data changes. Use as `async with Adapter(config) as adapter:`."""

    def __init__(self, config: PlatformConfig, platform: Platform | None = None) -> None:
        self.config = config
        self.platform = platform or Platform(config)
        self._producer: AIOKafkaProducer | None = None
        self._writer: SingleObjectWriter | None = None
        self._signer: ChangeSigner | None = None
        self._pending: list[asyncio.Future] = []
        self.sent = 0

    async def __aenter__(self) -> Adapter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if not self.config.signing_key_file:
            raise PlatformError("no signing key: set DATASHARE_SIGNING_KEY_FILE (see `datashare-adapter keygen`)")
        try:
            self._signer = ChangeSigner(load_private_key_file(Path(self.config.signing_key_file)))
        except InvalidKey as exc:
            raise PlatformError(str(exc)) from None
        self._writer = SingleObjectWriter(await self.platform.schema("DataChanged"))
        await self.platform.token()
        self._producer = AIOKafkaProducer(
            **self.config.kafka_options(),
            client_id=f"adapter-{self.config.client_id}",
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            max_batch_size=512 * 1024,
            compression_type="gzip",  # changes cross the network from the department
        )
        await self._producer.start()

    async def stop(self) -> None:
        try:
            if self._producer is not None:
                await self.flush()
                await self._producer.stop()
        finally:
            self._producer = None
            await self.platform.close()

    async def upsert(
        self,
        resource_code: str,
        subject_key: str,
        fields: Mapping[str, Any],
        source_version: int,
        changed_at: datetime | None = None,
    ) -> str:
        """Send a record's new content. Raises InvalidIdentifier before sending a key that is valid neither as
        a citizen ID nor as a credit code; the center checks it as the resource's key item declares."""
        return await self._send(resource_code, subject_key, "UPSERT", dict(fields), source_version, changed_at)

    async def delete(
        self, resource_code: str, subject_key: str, source_version: int, changed_at: datetime | None = None
    ) -> str:
        return await self._send(resource_code, subject_key, "DELETE", {}, source_version, changed_at)

    async def _send(
        self,
        resource_code: str,
        subject_key: str,
        operation: str,
        fields: dict[str, Any],
        source_version: int,
        changed_at: datetime | None,
    ) -> str:
        if self._producer is None or self._writer is None or self._signer is None:
            raise PlatformError("start the adapter first (async with Adapter(config) as adapter)")
        _, key = validate_subject_key(subject_key)
        ident = change_id(resource_code, key, source_version, operation)
        value = self._writer.encode(
            {
                "change_id": ident,
                "resource_code": resource_code,
                "provider_code": self.config.department_code,
                "operation": operation,
                "subject_key": key,
                "fields": fields,
                "source_version": source_version,
                "changed_at": changed_at or datetime.now(UTC),
            }
        )
        sent_at, producer = datetime.now(UTC).isoformat(), f"adapter-{self.config.client_id}"
        covered = signing_input(
            ident, resource_code, key, operation, source_version, value_digest(value), sent_at, producer
        )
        headers = [
            ("event_id", ident.encode()),
            ("event_type", b"DataChanged"),
            ("occurred_at", sent_at.encode()),
            ("producer", producer.encode()),
            (SIGNATURE_HEADER, self._signer.header(covered)),
        ]
        self._pending.append(
            await self._producer.send(DATA_CHANGES, value=value, key=f"{resource_code}|{key}".encode(), headers=headers)
        )
        self.sent += 1
        if len(self._pending) >= IN_FLIGHT:
            await self.flush()
        return ident

    async def flush(self) -> None:
        """Wait until the broker acknowledged every change sent so far; raises if one was lost."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


def notices_topic(department_code: str) -> str:
    return NOTICES_PREFIX + department_code.upper()


async def notifications(config: PlatformConfig, group_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """The department's notifications, from where the adapter last acknowledged (its consumer group): read off
    the department's own topic, `notifier.notices.<department code>`, the only one its credentials may read."""
    platform = Platform(config)
    schema = await platform.schema("NotificationIssued")
    await platform.close()
    parsed, fingerprint = parse_schema(schema), schema_fingerprint(schema)
    consumer = AIOKafkaConsumer(
        notices_topic(config.department_code),
        **config.kafka_options(),
        group_id=group_id or f"adapter-{config.department_code}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for message in consumer:
            value = message.value or b""
            if value[:2] == MARKER and value[2:HEADER_LEN] == fingerprint:
                notice = schemaless_reader(io.BytesIO(value[HEADER_LEN:]), parsed, None)
                if isinstance(notice, dict) and notice.get("recipient_code") == config.department_code:
                    yield notice
            await consumer.commit()
    finally:
        await consumer.stop()
