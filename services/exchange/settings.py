from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class ExchangeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore", frozen=True)

    http_port: int = 8002
    # Data changes written per MongoDB transaction: a transaction's fixed costs (digest leaves, commit,
    # outbox) are shared by more changes; the outbox document holds one event per change.
    ingest_batch_size: int = Field(default=5000, ge=1, le=20000)
