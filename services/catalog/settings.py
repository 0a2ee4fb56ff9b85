from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore", frozen=True)

    http_port: int = 8001
    overdue_check_seconds: float = Field(default=3600, gt=0, description="how often overdue entries are announced")
    synonyms_refresh_seconds: float = Field(
        default=60, gt=0, description="how often search takes up the data-element dictionary's aliases"
    )
    version_contents_kept: int = Field(
        default=20,
        ge=2,
        le=30,
        description="an entry keeps the full content of this many latest versions (and of those in force and being "
        "worked on); older ones as metadata and the content's digest",
    )
