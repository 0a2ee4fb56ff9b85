"""The Kubernetes manifests parse, and every environment variable they set is a setting the process reads."""

from pathlib import Path

import pytest
import yaml

from common.settings import ServiceSettings
from services.auditor.settings import AuditorSettings
from services.catalog.settings import CatalogSettings
from services.console.settings import ConsoleSettings
from services.directory.settings import DirectorySettings
from services.exchange.settings import ExchangeSettings
from services.notifier.settings import NotifierSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"
SETTINGS: dict[str, tuple[str, type[ServiceSettings]]] = {
    "services.catalog": ("CATALOG_", CatalogSettings),
    "services.exchange": ("EXCHANGE_", ExchangeSettings),
    "services.notifier": ("NOTIFIER_", NotifierSettings),
    "services.auditor": ("AUDITOR_", AuditorSettings),
    "services.auditor.stream": ("AUDITOR_", AuditorSettings),
    "common.topics": ("TOPICS_", ServiceSettings),
    "services.directory": ("DIRECTORY_", DirectorySettings),
    "services.console": ("CONSOLE_", ConsoleSettings),
}


def containers() -> list[dict]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("Deployment", "Job") and doc["metadata"]["name"] != "mongo-backup":
                found += doc["spec"]["template"]["spec"]["containers"]
    return found


def test_every_manifest_parses_and_lists_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {str(p.relative_to(K8S)) for p in K8S.rglob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("container", containers(), ids=lambda c: c["name"])
def test_container_env_names_are_real_settings(container: dict) -> None:
    module = container["command"][-1]
    prefix, settings = SETTINGS[module]
    names = {e["name"] for e in container["env"] if not e["name"].startswith("FAUST_")}  # faust reads its own
    fields = {prefix + f.upper() for f in settings.model_fields}
    assert names <= fields, f"unknown settings: {sorted(names - fields)}"
    if module == "services.console":  # no broker, no database: only the services' addresses
        assert not {n for n in names if "KAFKA" in n or "MONGO" in n}
        assert {f"CONSOLE_{s}_URL" for s in ("DIRECTORY", "CATALOG", "EXCHANGE", "NOTIFIER", "AUDITOR")} <= names
    else:
        assert prefix + "KAFKA_BOOTSTRAP_SERVERS" in names


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    import json
    import re

    from prometheus_client import REGISTRY

    import common.metrics  # noqa: F401 - registers the platform's metrics

    exported = {s.name for family in REGISTRY.collect() for s in family.samples if s.name.startswith("datashare_")}
    exported |= {f.name for f in REGISTRY.collect() if f.name.startswith("datashare_")}
    dashboard = json.loads((K8S.parents[1] / "grafana" / "datashare-dashboard.json").read_text())
    queried = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"datashare_\w+", t["expr"])}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    unknown = {m for m in queried if m not in exported and not any(m.removesuffix(s) in exported for s in suffixes)}
    assert queried and not unknown, unknown
