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
ROOT = K8S.parents[2]
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


DASHBOARDS = sorted((K8S.parents[1] / "grafana").glob("*.json"))


def test_there_is_a_dashboard_per_service_besides_the_platforms() -> None:
    names = {p.stem for p in DASHBOARDS}
    assert names == {"datashare-dashboard", "datashare-console"} | {f"datashare-{s}" for s in SERVICE_NAMES}


def test_the_service_monitor_scrapes_the_console_as_it_scrapes_the_services() -> None:
    docs = [d for p in sorted(K8S.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name in ("console", *SERVICE_NAMES):
        service = services[name]
        scraped = [
            m
            for m in monitors
            if m["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            and {e["port"] for e in m["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
            and all(e["path"] == "/metrics" for e in m["spec"]["endpoints"])
        ]
        assert scraped, f"no ServiceMonitor scrapes {name}'s /metrics"


SERVICE_NAMES = ("directory", "catalog", "exchange", "notifier", "auditor")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_only_metrics_and_label_values_the_services_export(path: Path) -> None:
    import importlib.util
    import json
    import re
    import sys

    from prometheus_client import REGISTRY

    import common.metrics  # noqa: F401 - each import registers its metrics
    import services.auditor.adapters.trail_metrics
    import services.auditor.oversight.adapters.metrics
    import services.console.metrics
    import services.notifier.adapters.webhooks_delivery  # noqa: F401
    from common.topics import load_topics
    from tests.unit.test_routes import routes

    spec = importlib.util.spec_from_file_location("deploy_generate_tables", ROOT / "deploy" / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate
    spec.loader.exec_module(generate)
    exported = {s.name for family in REGISTRY.collect() for s in family.samples if s.name.startswith("datashare_")}
    exported |= {f.name for f in REGISTRY.collect() if f.name.startswith("datashare_")}
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"datashare_\w+", e)}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    unknown = {m for m in queried if m not in exported and not any(m.removesuffix(s) in exported for s in suffixes)}
    assert queried and not unknown, unknown
    # the label values they select on exist: event types, topics, consumer groups, processes and routes
    schemas = {p.stem for p in (ROOT / "schemas" / "avro").glob("*.avsc")}
    topics = set(load_topics())
    groups = {g for p in generate.PROCESSES.values() for g in p.groups}
    for expr in exprs:
        for label, value in re.findall(r'\b(event_type|topic|group|job|route)=~?"([^"]+)"', expr):
            for one in value.split("|"):
                if label == "event_type":
                    assert one in schemas, (path.name, one)
                elif label == "topic":
                    assert one in topics, (path.name, one)
                elif label == "group":
                    assert one in groups, (path.name, one)
                elif label == "job":
                    assert one in generate.PROCESSES or one == "console", (path.name, one)
        job = re.search(r'job="([\w-]+)"', expr)
        for route in re.findall(r'route=~?"([^"]+)"', expr):
            assert job and job.group(1) in (*SERVICE_NAMES, "console"), (path.name, expr)
            paths = {p for p, _ in routes(job.group(1))} if job.group(1) != "console" else console_paths()
            assert any(re.fullmatch(route, p) for p in paths), (path.name, route)


def console_paths() -> set[str]:
    from fastapi.routing import APIRoute, iter_route_contexts

    from services.console.main import build
    from services.console.settings import ConsoleSettings

    contexts = iter_route_contexts(build(ConsoleSettings()).routes)
    return {c.path for c in contexts if isinstance(c.original_route, APIRoute)}
