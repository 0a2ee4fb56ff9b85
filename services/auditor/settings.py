from datetime import date

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from services.auditor.domain.scoring import DEFAULT_WEIGHTS, Scoring


class AuditorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITOR_", extra="ignore", frozen=True)

    http_port: int = 8004
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
    oversight_batch_size: int = Field(default=2000, ge=1, le=20000)
    # Fixes the date deadlines are counted to (drills and tests); never in production.
    today: date | None = None

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
