from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from services.auditor.domain.scoring import DEFAULT_WEIGHTS, Scoring

DEV_CHECKPOINT_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "auditor-checkpoint-key.pem"
DEV_SUBJECT_SECRET_FILE = Path(__file__).resolve().parents[2] / ".var" / "auditor-subject-secret"


class AuditorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITOR_", extra="ignore", frozen=True)

    http_port: int = 8004
    # What this process runs. `trail`: the REST facade and the trail's consumer; `oversight`: the oversight's
    # consumer (the evaluation's counts and the findings it raises), its deadline watch and figures, and the
    # relay of auditor.findings, with only health and metrics over HTTP; `all`: both in one process. Both read
    # every data access: apart (`make up` does, as a Deployment of its own on Kubernetes) they use two cores
    # where one process's interpreter lock held them to one (bench/trail.py). Their consumer groups and what
    # each has committed are the same in either arrangement: switching needs no move of offsets.
    role: Literal["all", "trail", "oversight"] = "all"
    stream_web_port: int = 6066  # faust binds it even with its web server off; give each worker its own
    # Evaluation (Art. 23): the weight of each indicator in the score (JSON, e.g. AUDITOR_EVALUATION_WEIGHTS=
    # '{"catalog_current": 20, ...}'; indicators left out weigh 0), and how many other departments must use a
    # department's data in a period for full marks on `data_used`.
    evaluation_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    evaluation_usage_target: int = Field(default=3, ge=1, le=1000)
    # The evaluation metrics are recomputed when events changed them, at most this often.
    evaluation_metrics_seconds: float = Field(default=60, ge=1, le=3600)
    # Violations (Art. 24): working days a department has to correct a finding, per category.
    finding_catalog_days: int = Field(default=10, ge=1, le=120)
    finding_provision_days: int = Field(default=5, ge=1, le=120)
    finding_consistency_days: int = Field(default=10, ge=1, le=120)
    finding_purpose_days: int = Field(default=5, ge=1, le=120)
    # Working days a resource's data may come after its declared update cycle before it is stale (a finding).
    stale_grace_days: int = Field(default=5, ge=0, le=120)
    # Events the oversight projects per transaction. As large as the trail's: a batch's data accesses fold into
    # one count per provider, resource, consumer and day (written once), so larger batches write less per event.
    oversight_batch_size: int = Field(default=5000, ge=1, le=20000)
    # Fixes the date deadlines are counted to (drills and tests); never in production.
    today: date | None = None

    # Trail entries appended per MongoDB transaction (one consumed batch): the chain is computed in memory.
    trail_batch_size: int = Field(default=5000, ge=1, le=20000)
    # Entries stored together in one document (a block); queries and verification read whole blocks.
    trail_block_entries: int = Field(default=1000, ge=1, le=10_000)
    # Ed25519 private key (PKCS#8 PEM) the trail's checkpoints are signed with; its public half is served
    # at /.well-known/trail-checkpoint-key for anyone to check them.
    checkpoint_key: SecretStr | None = None
    # A checkpoint every this many entries, and at an append once the last checkpoint is older than this.
    checkpoint_every_entries: int = Field(default=10_000, ge=1, le=10_000_000)
    checkpoint_every_seconds: float = Field(default=300, gt=0, le=86_400)
    # The key of the keyed hash (HMAC-SHA256) that replaces citizen IDs and credit codes left in events' text.
    subject_secret: SecretStr | None = Field(default=None, min_length=32)

    @field_validator("evaluation_weights")
    @classmethod
    def _known_indicators(cls, weights: dict[str, float]) -> dict[str, float]:
        Scoring(weights)  # raises naming the unknown indicator or the bad weight
        return weights

    @model_validator(mode="after")
    def _no_fixed_date_in_production(self) -> "AuditorSettings":
        if self.environment == "production" and self.today is not None:
            raise ValueError("today: a fixed date is for drills and tests; unset AUDITOR_TODAY")
        return self

    @model_validator(mode="after")
    def _keys_in_production(self) -> "AuditorSettings":
        if self.role == "oversight":
            return self  # neither signs nor hashes the trail
        if self.environment == "production" and self.checkpoint_key is None:
            raise ValueError(
                "checkpoint_key: production needs AUDITOR_CHECKPOINT_KEY (an Ed25519 private key in PKCS#8 PEM; "
                "create one with `openssl genpkey -algorithm ed25519`)"
            )
        if self.environment == "production" and self.subject_secret is None:
            raise ValueError(
                "subject_secret: production needs AUDITOR_SUBJECT_SECRET (at least 32 random characters, e.g. "
                "`openssl rand -hex 32`); the trail hashes identifiers with it"
            )
        return self
