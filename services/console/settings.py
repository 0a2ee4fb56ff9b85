from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from common.settings import Networks, ServiceSettings, networks

SERVICE_NAMES = ("directory", "catalog", "exchange", "notifier", "auditor")


class ConsoleSettings(ServiceSettings):
    """The web console holds no data: it needs only the addresses of the services it shows (by default where
    `make run` starts them) and how to keep a signed-in person's token in the browser."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", frozen=True)

    http_port: int = 8006
    directory_url: str = "http://127.0.0.1:8005"
    catalog_url: str = "http://127.0.0.1:8001"
    exchange_url: str = "http://127.0.0.1:8002"
    notifier_url: str = "http://127.0.0.1:8003"
    auditor_url: str = "http://127.0.0.1:8004"
    # One call to a service; a page waits for at most a few of them.
    service_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    # Cookies only over HTTPS (and named __Host-…, so no other site of the domain can set them): by default in
    # production; development serves plain HTTP on 127.0.0.1.
    secure_cookies: bool | None = None
    # The browser forgets the sign-in after this, whatever the token's own lifetime (the directory's refresh
    # token, 8 hours by default, keeps the access token fresh until then).
    session_hours: int = Field(default=8, ge=1, le=24)
    # Pages list this many items at once.
    page_size: int = Field(default=20, ge=5, le=100)
    # The proxies in front of the console (an ingress controller: addresses or networks, comma-separated) whose
    # X-Forwarded-For names the browser; the console passes the browser's address on to the directory, which
    # throttles failed sign-ins per browser. Empty: the browser is whoever connects.
    trusted_proxies: Annotated[Networks, NoDecode] = ()

    @field_validator("directory_url", "catalog_url", "exchange_url", "notifier_url", "auditor_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be the service's base URL, e.g. http://catalog:8001 (no query, no path needed)")
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        return networks(value)

    @model_validator(mode="after")
    def _production(self) -> "ConsoleSettings":
        if self.environment != "production":
            return self
        if self.secure_cookies is False:
            raise ValueError("secure_cookies: production sends the sign-in cookie over HTTPS only; unset it")
        local = [name for name in SERVICE_NAMES if urlsplit(self.url_of(name)).hostname in ("127.0.0.1", "localhost")]
        if local:
            variables = ", ".join(f"CONSOLE_{name.upper()}_URL" for name in local)
            raise ValueError(f"production needs the services' addresses in the cluster, not loopback: set {variables}")
        return self

    @property
    def cookies_secure(self) -> bool:
        return self.environment == "production" if self.secure_cookies is None else self.secure_cookies

    def url_of(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))
