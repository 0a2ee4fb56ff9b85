import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from common.settings import Networks, ServiceSettings, networks
from services.directory.adapters.keys import retired_keys
from services.directory.adapters.secrets import HashCost

DEV_KEY_FILE = Path(__file__).resolve().parents[2] / ".var" / "directory-signing-key.pem"
# The services as `make up` runs them (devstack.processes.SERVICES): their /docs sign in at this directory.
LOCAL_ORIGINS = tuple(f"http://{host}:{port}" for host in ("127.0.0.1", "localhost") for port in range(8001, 8006))


class DirectorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DIRECTORY_", extra="ignore", frozen=True)

    http_port: int = 8005
    signing_key: SecretStr | None = None  # Ed25519 private key, PKCS#8 PEM
    # Public halves of keys the directory signed with before, each with the time it was retired (PEM blocks, each
    # after a line `retired_at: <ISO time>`, or a JWKS whose keys carry `"retired_at": <unix seconds>`): published
    # beside the current key so that events appended before that time still verify; never a token, never signing.
    retired_signing_keys: str = ""
    access_token_minutes: int = Field(default=15, ge=1, le=120)
    refresh_token_hours: int = Field(default=8, ge=1, le=720)
    # Failed sign-ins of a login from one client address before each further attempt must wait (growing);
    # from all addresses together, four times as many.
    signin_free_failures: int = Field(default=5, ge=2, le=50)
    signin_max_delay_minutes: int = Field(default=15, ge=1, le=1440)  # the longest wait between attempts
    # Web pages that may call /token from a browser (CORS): the services' /docs. Comma-separated origins.
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = LOCAL_ORIGINS
    # How costly a new password or client-secret hash is: `standard` (RFC 9106, 64 MiB) everywhere but in test
    # suites, which may take `cheapest`; production refuses it.
    password_hash_cost: HashCost = "standard"
    # Addresses or networks (comma-separated, e.g. `10.0.0.0/8,127.0.0.1`) whose `X-Forwarded-For` is believed:
    # the web console passes on its browser's address so that sign-ins are throttled per browser, not all as
    # the console's. Empty: every sign-in counts against the address it comes from.
    trusted_proxies: Annotated[Networks, NoDecode] = ()

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(o.strip() for o in value.split(",") if o.strip())
        for origin in value if isinstance(value, tuple | list) else ():
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?", origin):
                raise ValueError(f"{origin!r} is not an origin such as https://catalog.example.gov.cn (no path, no *)")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        return networks(value)

    @field_validator("retired_signing_keys")
    @classmethod
    def _retired(cls, value: str) -> str:
        retired_keys(value)  # raises saying what is wrong
        return value

    @model_validator(mode="after")
    def _key_in_production(self) -> "DirectorySettings":
        if self.environment == "production" and self.signing_key is None:
            raise ValueError(
                "signing_key: production needs DIRECTORY_SIGNING_KEY (an Ed25519 private key in PKCS#8 PEM; "
                "create one with `openssl genpkey -algorithm ed25519`)"
            )
        if self.environment == "production" and self.password_hash_cost != "standard":
            raise ValueError("password_hash_cost: production hashes passwords at the standard cost")
        return self
