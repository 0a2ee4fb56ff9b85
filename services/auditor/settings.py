from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class AuditorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITOR_", extra="ignore", frozen=True)

    http_port: int = 8004
