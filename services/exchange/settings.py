from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

DEV_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "exchange-signing-key.pem"
DEV_SUBJECT_SECRET_FILE = Path(__file__).resolve().parents[2] / ".var" / "exchange-subject-secret"
DEV_DOWNLOAD_DIR = Path(__file__).resolve().parents[2] / ".var" / "downloads"
DEV_CREDENTIAL_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "exchange-hosted-credential-key"
DEV_PACKAGE_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "exchange-package-key.pem"
DEV_PACKAGE_IDENTITY_FILE = Path(__file__).resolve().parents[2] / ".var" / "exchange-package-age-identity"
# The ingestion process's own outbox: the API process does not relay a flood of ResourceChanged events.
INGEST_OUTBOX = "outbox_ingest"


class ExchangeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore", frozen=True)

    http_port: int = 8002
    # What this process runs. `api`: the REST facade, uploads, sharing and the catalog and directory
    # consumers; `ingest`: the ingestion of departments' data changes, with only health and metrics over
    # HTTP; `all`: both in one process. Ingestion is the heavy path: run it apart (`make up` does, as a
    # Deployment of its own on Kubernetes) and a flood of changes slows neither the API nor its probes.
    # `ingest` relays its events from an outbox of its own (`outbox_ingest`): before going back to `all`, stop
    # the ingestion processes once that outbox is empty (`datashare_outbox_pending` 0), or its rest stays.
    role: Literal["all", "api", "ingest"] = "all"
    # Data changes written per MongoDB transaction: a transaction's fixed costs (digest leaves, commit,
    # outbox) are shared by more changes; the outbox document holds one event per change.
    ingest_batch_size: int = Field(default=5000, ge=1, le=20000)
    # Uploads handled at once: each is a CPU-bound worker process and a copy of the file; one more is
    # answered 503 with Retry-After.
    upload_concurrency: int = Field(default=2, ge=1, le=16)
    # Ed25519 private key (PKCS#8 PEM) the exchange signs uploaded files' changes with; its ingestion trusts it.
    signing_key: SecretStr | None = None
    # The secret data access events hash subject keys with (HMAC-SHA256): never a key in clear on the bus.
    subject_secret: SecretStr | None = Field(default=None, min_length=32)
    # API channel: how long a grant or a resource's terms read from the database are trusted (a revocation or
    # withdrawal takes effect within this), and how data access events are written (group commit).
    grant_cache_seconds: float = Field(default=1.0, ge=0, le=10)
    access_flush_ms: float = Field(default=2.0, ge=0, le=100)
    access_flush_events: int = Field(default=500, ge=1, le=5000)
    access_record_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Working days each step of a share request has (Art. 15): the provider's decision, the IT office's
    # ruling on a dispute, the leadership group's ruling on an escalation.
    sharing_decision_days: int = Field(default=10, ge=1, le=60)
    sharing_ruling_days: int = Field(default=10, ge=1, le=60)
    sharing_final_ruling_days: int = Field(default=10, ge=1, le=60)
    # How often passed deadlines are announced and grants whose period ended are ended.
    sharing_sweep_seconds: float = Field(default=600, gt=0)
    # Fixes the date the sharing lifecycle counts deadlines and periods from (drills and tests); never in
    # production, where the date is the city's.
    sharing_today: date | None = None
    # File downloads: where the files are written (a volume shared by the API replicas on Kubernetes) and how
    # long a finished file is kept before it and its job are deleted.
    download_dir: Path = DEV_DOWNLOAD_DIR
    download_keep_seconds: float = Field(default=86400, gt=0, le=30 * 86400)
    # how often a replica says its running downloads are alive; a job not said alive for 3 beats is FAILED
    download_beat_seconds: float = Field(default=600, gt=0, le=86400)
    # Department-hosted services the center proxies (sharing.proxy). Base URLs on loopback, private or
    # link-local addresses: allowed unless set to false in development (tests run a service on loopback),
    # refused in production unless set to true. A call waits `connect` seconds to connect and `timeout`
    # seconds in all before its 504; bodies are bounded both ways.
    hosted_allow_private_targets: bool | None = None
    hosted_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    hosted_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    hosted_max_request_bytes: int = Field(default=1024 * 1024, ge=1, le=16 * 1024 * 1024)
    hosted_max_answer_bytes: int = Field(default=4 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    # subjects one proxied answer may name: their hashes go into its DataAccessed event (Kafka's 900 KiB)
    hosted_max_subjects: int = Field(default=5000, ge=1, le=10_000)
    # The key the credentials the center calls those services with are sealed under (AES-256-GCM); in
    # development one kept in .var/. Changing it makes the stored credentials unreadable: register them again.
    hosted_credential_key: SecretStr | None = Field(default=None, min_length=32)

    @property
    def hosted_allow_private(self) -> bool:
        if self.hosted_allow_private_targets is None:
            return self.environment != "production"
        return self.hosted_allow_private_targets

    # Offline exchange packages: the Ed25519 private key (PKCS#8 PEM) the center signs them with, published at
    # /.well-known/offline-package-keys; the age secret key (AGE-SECRET-KEY-1…) departments' hand-ins are
    # encrypted to, its public half published there too; and how many days a package may be opened.
    package_signing_key: SecretStr | None = None
    package_age_identity: SecretStr | None = None
    package_days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _key_in_production(self) -> "ExchangeSettings":
        if self.environment == "production" and self.signing_key is None:
            raise ValueError(
                "signing_key: production needs EXCHANGE_SIGNING_KEY (an Ed25519 private key in PKCS#8 PEM; "
                "create one with `openssl genpkey -algorithm ed25519`)"
            )
        if self.environment == "production" and self.subject_secret is None:
            raise ValueError(
                "subject_secret: production needs EXCHANGE_SUBJECT_SECRET (at least 32 random characters, e.g. "
                "`openssl rand -hex 32`); data access events hash subject keys with it"
            )
        if self.environment == "production" and self.role != "ingest" and self.hosted_credential_key is None:
            raise ValueError(
                "hosted_credential_key: production needs EXCHANGE_HOSTED_CREDENTIAL_KEY (at least 32 random "
                "characters, e.g. `openssl rand -hex 32`); the credentials of department-hosted services are "
                "sealed under it"
            )
        packages = self.package_signing_key is not None and self.package_age_identity is not None
        if self.environment == "production" and self.role != "ingest" and not packages:
            raise ValueError(
                "package_signing_key, package_age_identity: production needs EXCHANGE_PACKAGE_SIGNING_KEY (an Ed25519 "
                "private key in PKCS#8 PEM, `openssl genpkey -algorithm ed25519`) and EXCHANGE_PACKAGE_AGE_IDENTITY "
                "(an age secret key, `datashare-adapter package keygen`) for offline exchange packages"
            )
        if self.environment == "production" and self.sharing_today is not None:
            raise ValueError("sharing_today: a fixed date is for drills and tests; unset EXCHANGE_SHARING_TODAY")
        return self
