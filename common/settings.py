"""Settings every service shares. Each service subclasses `ServiceSettings` with its own env prefix,
builds it once in its entry point and passes it down."""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.calendar_source import DEFAULT_SCHEDULE_DIR

LOCAL_MONGO_URI = "mongodb://127.0.0.1:27017/?retryWrites=false&directConnection=true"
JWKS_PATH = "/.well-known/jwks.json"
# Addresses whose X-Forwarded-For a service believes (common.http.client_address).
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(value: object) -> object:
    """Comma-separated addresses or networks (`10.0.0.0/8,127.0.0.1`) as a tuple; a pydantic before-validator."""
    if not isinstance(value, str):
        return value
    found = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or network such as 10.0.0.0/8 or 10.1.2.3") from None
    return tuple(found)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # Request bodies over these sizes are refused with 413 before they are read; routes that take a file
    # (table imports, data uploads) have the larger limit.
    http_max_body_bytes: int = Field(default=1 << 20, ge=1024)
    http_max_upload_bytes: int = Field(default=64 << 20, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_replication_factor: int | None = Field(default=None, ge=1, le=10)
    # The largest event a service writes; keep it below the broker's message.max.bytes (1 MiB by default).
    # A bigger one is refused when it is written, never stored where it would block the outbox.
    kafka_max_message_bytes: int = Field(default=900 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    # After a poll that found nothing, a consumer stops fetching for this long. A broker that answers an
    # empty fetch at once instead of holding it for fetch_max_wait_ms (the local one does) would otherwise
    # keep every idle consumer, and the broker, busy. 0 leaves idle waiting to the broker's long poll.
    kafka_idle_pause_seconds: float = Field(default=0.25, ge=0, le=5)
    # Each further empty poll doubles the pause up to this: an event reaching an idle service waits at most
    # this long, and an idle platform costs next to nothing.
    kafka_idle_pause_max_seconds: float = Field(default=5.0, ge=0, le=30)

    mongo_uri: str = LOCAL_MONGO_URI
    # How the driver watches the database servers. "poll" asks each one every `mongo_heartbeat_seconds`; a
    # failed operation makes it ask at once, so a new primary is found when it matters. "stream" holds a
    # request open on every server and measures round trips on a second connection: news of a failover
    # sooner, for a constant cost even when nothing happens.
    mongo_server_monitoring: Literal["auto", "stream", "poll"] = "poll"
    mongo_heartbeat_seconds: float = Field(default=30.0, ge=0.5, le=300)
    # Each service owns its database: by default `datashare_<service>`, from the prefix (see _own_database).
    mongo_database: str = Field(default="datashare", min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_\-]+$")

    auth_jwks_url: str = "http://127.0.0.1:8005/.well-known/jwks.json"
    auth_jwks: str | None = None  # a JWKS document inline; overrides auth_jwks_url
    auth_issuer: str = "jian-datashare"
    auth_audience: str = "jian-datashare"
    # The directory's token endpoint as browsers and clients reach it: the OAuth2 flows of every service's
    # OpenAPI (and so its /docs) point there. By default the directory's address from auth_jwks_url.
    auth_token_url: str = Field(default="", validate_default=True)

    calendar_dir: Path = DEFAULT_SCHEDULE_DIR
    consumer_group_prefix: str = ""  # e.g. "staging-": environments sharing one cluster keep their own groups
    # Static group membership (KIP-345): a process restarted under the same id takes its place in its
    # consumer groups at once, even on a broker that never expires a member killed with SIGKILL. Unique per
    # replica and stable across its restarts: the pod name on Kubernetes, the host name by default.
    consumer_instance_id: str = Field(
        default_factory=socket.gethostname, min_length=1, max_length=200, pattern=r"^[\w.\-:]+$"
    )
    consumer_max_attempts: int = Field(default=5, ge=1, le=50)
    consumer_retry_backoff_seconds: float = Field(default=0.2, gt=0, le=60)
    # The relay wakes when a transaction of its process wrote events; this is how long events written by
    # another replica (or a CLI) wait at most.
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=60)
    outbox_relay_enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _own_database(cls, values: object) -> object:
        """Without a configured database, each service gets its own: CATALOG_ -> datashare_catalog."""
        prefix = cls.model_config.get("env_prefix", "").strip("_").lower()
        if isinstance(values, dict) and not values.get("mongo_database") and prefix:
            return {**values, "mongo_database": f"datashare_{prefix}"}
        return values

    @model_validator(mode="before")
    @classmethod
    def _token_url_of_the_directory(cls, values: object) -> object:
        """Without a configured token URL, the directory's /token beside the JWKS it serves."""
        if not isinstance(values, dict) or values.get("auth_token_url"):
            return values
        jwks_url = str(values.get("auth_jwks_url") or cls.model_fields["auth_jwks_url"].default)
        if not jwks_url.endswith(JWKS_PATH):
            return values  # not the directory's: _token_url asks for the setting
        return {**values, "auth_token_url": jwks_url.removesuffix(JWKS_PATH) + "/token"}

    @field_validator("auth_token_url", mode="after")
    @classmethod
    def _token_url(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "auth_jwks_url is not the directory's (…/.well-known/jwks.json): set auth_token_url to the "
                "directory's public /token URL, e.g. https://directory.example.gov.cn/token"
            )
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an absolute http(s) URL without query, e.g. https://directory.example/token")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in value.split(","):
            if not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", host.strip()):
                raise ValueError(f"{host!r} is not host:port; give a comma-separated list such as kafka-0:9092")
        return value

    @field_validator("mongo_uri")
    @classmethod
    def _mongo(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be a MongoDB connection string starting with mongodb:// or mongodb+srv://")
        return value

    @model_validator(mode="after")
    def _production(self) -> ServiceSettings:
        if self.environment == "production" and self.mongo_uri == LOCAL_MONGO_URI:
            raise ValueError("mongo_uri: production needs the replica set's connection string, not the local one")
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("kafka_sasl_mechanism is set: kafka_sasl_username and kafka_sasl_password are needed")
        return self


S = TypeVar("S", bound=ServiceSettings)


class SettingsError(SystemExit):
    pass


def describe_errors(cls: type[ServiceSettings], exc: ValidationError) -> str:
    prefix = cls.model_config.get("env_prefix", "")
    lines = [f"{cls.__name__}: the configuration is not valid; fix these environment variables:"]
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "(settings)"
        name = f"{prefix}{field}".upper() if error["loc"] else "(settings)"
        secret = any(word in field for word in ("password", "key", "secret"))  # a key pasted in the wrong place too
        shown = "" if not error["loc"] or secret else f" (got {error.get('input')!r})"
        lines.append(f"  {name}: {error['msg']}{shown}")
    return "\n".join(lines)


def load_settings(cls: type[S]) -> S:
    """Build the settings or stop the start with a message naming each bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        print(describe_errors(cls, exc), file=sys.stderr)
        raise SettingsError(2) from None
