from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class AuditorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITOR_", extra="ignore", frozen=True)

    http_port: int = 8004
    stream_web_port: int = 6066  # faust binds it even with its web server off; give each worker its own
