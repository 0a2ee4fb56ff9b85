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
