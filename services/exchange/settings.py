from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class ExchangeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore", frozen=True)

    http_port: int = 8002
    ingest_batch_size: int = 2000  # data changes written per MongoDB transaction
