import os
import subprocess
import sys

import pytest

from common.settings import ServiceSettings, SettingsError, load_settings
from services.catalog.settings import CatalogSettings


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CATALOG_HTTP_PORT": "eighty"}, "CATALOG_HTTP_PORT"),
        ({"CATALOG_KAFKA_BOOTSTRAP_SERVERS": "kafka-0"}, "CATALOG_KAFKA_BOOTSTRAP_SERVERS"),
        ({"CATALOG_MONGO_URI": "postgres://x"}, "CATALOG_MONGO_URI"),
        ({"CATALOG_ENVIRONMENT": "production"}, "mongo_uri: production needs the replica set"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_the_variable(env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.catalog"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert named in result.stderr


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("CATALOG_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CATALOG_KAFKA_SASL_PASSWORD", "s3cret-value")
    with pytest.raises(SettingsError):
        load_settings(CatalogSettings)
    err = capsys.readouterr().err
    assert "kafka_sasl_username" in err and "s3cret-value" not in err


def test_defaults_are_the_local_stack() -> None:
    settings = CatalogSettings()
    assert settings.http_port == 8001
    assert "retryWrites=false" in settings.mongo_uri
    assert isinstance(settings, ServiceSettings)


def test_the_token_url_is_the_directorys_beside_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CatalogSettings().auth_token_url == "http://127.0.0.1:8005/token"  # `make up`'s directory
    monkeypatch.setenv("CATALOG_AUTH_JWKS_URL", "https://directory.example.gov.cn/.well-known/jwks.json")
    assert CatalogSettings().auth_token_url == "https://directory.example.gov.cn/token"
    monkeypatch.setenv("CATALOG_AUTH_TOKEN_URL", "https://sso.example.gov.cn/token")
    assert CatalogSettings().auth_token_url == "https://sso.example.gov.cn/token"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CATALOG_AUTH_JWKS_URL": "https://idp.example/certs"}, "CATALOG_AUTH_TOKEN_URL"),
        ({"CATALOG_AUTH_TOKEN_URL": "/token"}, "absolute http(s) URL"),
    ],
)
def test_a_token_url_that_cannot_be_known_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError):
        load_settings(CatalogSettings)
    assert named in capsys.readouterr().err


def test_the_directory_believes_forwarded_addresses_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ipaddress import ip_network

    from services.directory.settings import DirectorySettings

    assert DirectorySettings().trusted_proxies == ()
    monkeypatch.setenv("DIRECTORY_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,fd00::/8")
    assert DirectorySettings().trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("127.0.0.1/32"),
        ip_network("fd00::/8"),
    )
    for bad in ("*", "console.example.gov.cn", "10.0.0.0/33"):
        monkeypatch.setenv("DIRECTORY_TRUSTED_PROXIES", bad)
        with pytest.raises(SettingsError):
            load_settings(DirectorySettings)
        assert "DIRECTORY_TRUSTED_PROXIES: Value error" in capsys.readouterr().err


def test_the_directory_lets_only_the_configured_pages_call_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.directory.settings import DirectorySettings

    assert set(DirectorySettings().cors_allowed_origins) == {
        f"http://{host}:{port}" for host in ("127.0.0.1", "localhost") for port in (8001, 8002, 8003, 8004, 8005)
    }
    monkeypatch.setenv(
        "DIRECTORY_CORS_ALLOWED_ORIGINS", "https://catalog.example.gov.cn, https://exchange.example.gov.cn"
    )
    assert DirectorySettings().cors_allowed_origins == (
        "https://catalog.example.gov.cn",
        "https://exchange.example.gov.cn",
    )
    monkeypatch.setenv("DIRECTORY_CORS_ALLOWED_ORIGINS", "")
    assert DirectorySettings().cors_allowed_origins == ()
    for bad in ("*", "https://catalog.example.gov.cn/docs"):
        monkeypatch.setenv("DIRECTORY_CORS_ALLOWED_ORIGINS", bad)
        with pytest.raises(SettingsError):
            load_settings(DirectorySettings)


def test_the_directorys_retired_keys_are_public_halves_with_their_retirement_time_as_pem_or_jwks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import serialization

    from common.auth import RetiredKey, generate_signing_key, jwks, key_id, load_signing_key
    from services.directory.adapters.keys import retired_keys
    from services.directory.settings import DirectorySettings

    old, older = (load_signing_key(generate_signing_key()) for _ in range(2))
    pem = {
        k: k.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        for k in (old, older)
    }
    pems = f"retired_at: 2026-11-01T08:00:00+08:00\n{pem[old]}retired_at=2026-06-30T00:00:00Z\n{pem[older]}"
    times = [datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC)]
    wanted = [(key_id(old.public_key()), times[0]), (key_id(older.public_key()), times[1])]
    assert [(key_id(k.public), k.retired_at) for k in retired_keys(pems)] == wanted
    published = json.dumps(jwks(*(RetiredKey(k.public_key(), t) for k, t in zip((old, older), times, strict=True))))
    assert [(key_id(k.public), k.retired_at) for k in retired_keys(published)] == wanted  # as the directory serves
    assert retired_keys("") == []
    monkeypatch.setenv("DIRECTORY_RETIRED_SIGNING_KEYS", pems)
    assert DirectorySettings().retired_signing_keys == pems
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    refused = {
        pem[old]: "needs the time it was retired",  # the format without times: refused, no time guessed
        json.dumps(jwks(old)): "needs the time it was retired",
        f"retired_at: 2026-11-01T08:00:00\n{pem[old]}": "needs its zone",
        f"retired_at: yesterday\n{pem[old]}": "not an ISO 8601 time",
        f"retired_at: {future}\n{pem[old]}": "in the future",
        generate_signing_key(): "give its public half",
        json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA", "kid": "k"}]}): "private",
        "{not json": "not valid JSON",
        "an old key": "neither PEM public keys nor a JWKS document",
    }
    for value, said in refused.items():
        monkeypatch.setenv("DIRECTORY_RETIRED_SIGNING_KEYS", value)
        with pytest.raises(SettingsError):
            load_settings(DirectorySettings)
        printed = capsys.readouterr().err
        assert said in printed and value not in printed  # what to fix, and no key pasted there echoed
