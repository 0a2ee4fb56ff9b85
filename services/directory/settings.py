from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

DEV_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "directory-signing-key.pem"


class DirectorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DIRECTORY_", extra="ignore", frozen=True)

    http_port: int = 8005
    signing_key: SecretStr | None = None  # Ed25519 private key, PKCS#8 PEM
    access_token_minutes: int = Field(default=15, ge=1, le=120)
    refresh_token_hours: int = Field(default=8, ge=1, le=720)
    # Failed sign-ins of a login from one client address before each further attempt must wait (growing);
    # from all addresses together, four times as many.
    signin_free_failures: int = Field(default=5, ge=2, le=50)
    signin_max_delay_minutes: int = Field(default=15, ge=1, le=1440)  # the longest wait between attempts

    @model_validator(mode="after")
    def _key_in_production(self) -> "DirectorySettings":
        if self.environment == "production" and self.signing_key is None:
            raise ValueError(
                "signing_key: production needs DIRECTORY_SIGNING_KEY (an Ed25519 private key in PKCS#8 PEM; "
                "create one with `openssl genpkey -algorithm ed25519`)"
            )
        return self
