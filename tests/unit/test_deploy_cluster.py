"""The cluster manifests, checked without a cluster: every overlay builds with `kubectl kustomize`; every object
validates against the Kubernetes schemas (kubernetes-validate), the Prometheus Operator's CRDs (models generated
from them) or, for Strimzi and the MongoDB operator, their published CRDs shipped in deploy/crds/ (made strict);
topics agree with schemas/topics.toml; each process's Kafka ACLs agree with the consumers the services build and
the topics their code names; alert rules use only metrics that exist; promtool checks and tests the rules."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring

from common.topics import DLQ_SUFFIX, load_topic_family, load_topics
from tests.unit.crd_schemas import schemas

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
KUBERNETES = "1.32.0"  # the API version the manifests are written for (kubectl's on the build machine)
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
# kubernetes-validate reads its schema files again for every object; read each once (5 times faster)
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)  # type: ignore[assignment]
CRD_SCHEMAS = schemas()
SERVICE_PORTS = {"directory": 8005, "catalog": 8001, "exchange": 8002, "notifier": 8003, "auditor": 8004}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate = _generator()


@cache
def built(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in built(overlay) if d["kind"] == kind}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# -- building and validating ------------------------------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    assert generate.main(["--check"]) == 0, "run: python deploy/generate.py"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_its_schema(overlay: str) -> None:
    problems, kinds = [], set()
    for doc in built(overlay):
        kind, name = doc["kind"], doc["metadata"]["name"]
        kinds.add(kind)
        try:
            if doc["apiVersion"].split("/")[0] in ("kafka.strimzi.io", "mongodbcommunity.mongodb.com"):
                schema = CRD_SCHEMAS.get((doc["apiVersion"], kind))
                assert schema is not None, f"{doc['apiVersion']} {kind} is not served by the shipped CRDs"
                jsonschema.validate(doc, schema)
            elif doc["apiVersion"].startswith("monitoring.coreos.com/"):
                model = getattr(monitoring, kind).model_validate(doc)
                # the models ignore unknown fields: an object that does not come back whole had one
                assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc, "unknown field"
            else:
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except Exception as exc:
            problems.append(f"{kind}/{name}: {str(exc)[:400]}")
    assert not problems, "\n".join(problems)
    expected = {"Deployment", "Service", "CronJob", "NetworkPolicy", "Kafka", "KafkaNodePool", "KafkaTopic"}
    expected |= {"KafkaUser", "MongoDBCommunity", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert expected <= kinds


def test_a_misspelt_field_fails_each_kind_of_validation() -> None:
    """The validators above refuse what they should, so a green run means something."""
    docs = {d["kind"]: d for d in built("prod")}
    deployment = yaml.safe_load(yaml.safe_dump(docs["Deployment"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    monitor = yaml.safe_load(yaml.safe_dump(docs["ServiceMonitor"]))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    dumped = monitoring.ServiceMonitor.model_validate(monitor).model_dump(by_alias=True, exclude_unset=True)
    assert dumped != monitor
    user = yaml.safe_load(yaml.safe_dump(docs["KafkaUser"]))
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(user, CRD_SCHEMAS[(user["apiVersion"], "KafkaUser")])
    kafka = yaml.safe_load(yaml.safe_dump(docs["Kafka"]))
    kafka["spec"]["kafka"]["listenrs"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(kafka, CRD_SCHEMAS[(kafka["apiVersion"], "Kafka")])
    mongo = yaml.safe_load(yaml.safe_dump(docs["MongoDBCommunity"]))
    mongo["spec"]["members"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(mongo, CRD_SCHEMAS[(mongo["apiVersion"], "MongoDBCommunity")])


# -- topics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_are_exactly_the_declared_ones_with_their_partitions_and_configs(overlay: str) -> None:
    declared = load_topics()
    topics = {d["spec"]["topicName"]: d["spec"] for d in of_kind(overlay, "KafkaTopic").values()}
    assert set(topics) == set(declared)
    brokers = of_kind(overlay, "KafkaNodePool")["combined"]["spec"]["replicas"]
    factor = int(of_kind(overlay, "ConfigMap")["datashare-config"]["data"]["kafka_replication_factor"])
    for name, spec in declared.items():
        assert topics[name]["partitions"] == spec.partitions, name
        assert topics[name]["config"] == spec.config(), name
        assert topics[name]["replicas"] == factor <= brokers, name
    kafka = of_kind(overlay, "Kafka")["datashare-kafka"]["spec"]["kafka"]
    assert kafka["config"]["min.insync.replicas"] < factor or factor == 1
    assert kafka["config"]["auto.create.topics.enable"] is False


def test_the_production_cluster_is_kraft_with_three_brokers_and_tls_listeners() -> None:
    kafka = of_kind("prod", "Kafka")["datashare-kafka"]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1" and "zookeeper" not in kafka["spec"]  # Strimzi 1.x: KRaft only
    pool = of_kind("prod", "KafkaNodePool")["combined"]["spec"]
    assert pool["replicas"] == 3 and set(pool["roles"]) == {"controller", "broker"}
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(lis["tls"] and lis["authentication"]["type"] == "scram-sha-512" for lis in listeners)
    config = of_kind("prod", "ConfigMap")["datashare-config"]["data"]
    port = int(config["kafka_bootstrap_servers"].rsplit(":", 1)[1])
    assert config["kafka_security_protocol"] == "SASL_SSL" and config["kafka_sasl_mechanism"] == "SCRAM-SHA-512"
    assert port in {lis["port"] for lis in listeners if lis["type"] == "internal"}


# -- users and ACLs ---------------------------------------------------------------------------------------


def _settings_class(service: str) -> type:
    module = importlib.import_module(f"services.{service}.settings")
    return next(v for k, v in vars(module).items() if isinstance(v, type) and k.lower() == f"{service}settings")


@cache
def consumers_the_code_builds() -> dict[str, dict[str, tuple[str, ...]]]:
    """Each REST process's consumer groups and their topics, from the services' own bootstrap."""
    found = {}
    for process, (service, role) in {
        "directory": ("directory", None),
        "catalog": ("catalog", None),
        "exchange": ("exchange", "api"),
        "exchange-ingest": ("exchange", "ingest"),
        "notifier": ("notifier", None),
        "auditor": ("auditor", "trail"),
        "auditor-oversight": ("auditor", "oversight"),
    }.items():
        main = importlib.import_module(f"services.{service}.main")
        settings = _settings_class(service)(**({"role": role} if role else {}))
        _, runtime = main.build(settings)
        found[process] = {c.group: tuple(c.topics) for c in runtime.consumers}
    return found


def test_each_process_reads_exactly_what_its_consumers_consume() -> None:
    from services.auditor import stream

    built_groups = consumers_the_code_builds()
    for process, groups in built_groups.items():
        assert generate.PROCESSES[process].groups == groups, process
    # the faust worker: its app id is its group and the prefix of its internal topics
    assert generate.PROCESSES["auditor-stream"].groups == {"auditor-evaluation": (stream.ACCESSES,)}
    assert set(generate.PROCESSES) == set(built_groups) | {"auditor-stream"}


def _topics_named_in(service: str) -> set[str]:
    declared = {n for n in load_topics() if not n.endswith(DLQ_SUFFIX)}
    named = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        named |= {m for m in re.findall(r'"([a-z]+\.[a-z.\-]+)"', path.read_text(encoding="utf-8")) if m in declared}
    return named


def test_each_service_writes_only_topics_its_code_names_and_every_topic_has_one_writer() -> None:
    processes = generate.PROCESSES
    for service in SERVICE_PORTS:
        mine = [p for name, p in processes.items() if name == service or name.startswith(service + "-")]
        named = _topics_named_in(service)
        writes = {t for p in mine for t in p.writes}
        reads = {t for p in mine for t in p.reads()}
        assert writes <= named, (service, writes - named)
        assert named <= reads | writes, (service, named - reads - writes)
    writers: dict[str, list[str]] = {}
    for name, process in processes.items():
        for topic in process.writes:
            writers.setdefault(topic, []).append(name)
    declared = {n for n in load_topics() if not n.endswith(DLQ_SUFFIX)}
    assert set(writers) == declared
    assert all(len(names) == 1 for names in writers.values()), writers


def _granted(user: dict[str, Any]) -> dict[tuple[str, str, str], set[str]]:
    acls = user["spec"]["authorization"]["acls"]
    return {
        (a["resource"]["type"], a["resource"]["name"], a["resource"].get("patternType", "literal")): set(
            a["operations"]
        )
        for a in acls
    }


def test_kafka_users_grant_read_write_and_groups_as_declared_and_nothing_else() -> None:
    users = of_kind("prod", "KafkaUser")
    assert set(users) == set(generate.PROCESSES)
    for name, process in generate.PROCESSES.items():
        granted = _granted(users[name])
        reads = {n for (kind, n, _), ops in granted.items() if kind == "topic" and "Read" in ops}
        writes = {n for (kind, n, _), ops in granted.items() if kind == "topic" and "Write" in ops}
        groups = {n for (kind, n, _), ops in granted.items() if kind == "group"}
        prefixed = {n for (kind, n, pattern) in granted if pattern == "prefix"}
        assert reads - prefixed == process.reads()
        assert writes - prefixed == set(process.writes) | process.dead_letters()
        assert groups == set(process.groups)
        assert prefixed == set(process.prefixes)
        assert all(kind in ("topic", "group") for kind, _, _ in granted)


def test_the_notifier_may_make_department_topics_where_the_notifier_names_them() -> None:
    from services.notifier.adapters.topics import KafkaDepartmentTopics

    granted = _granted(of_kind("prod", "KafkaUser")["notifier"])
    assert granted[("topic", KafkaDepartmentTopics.PREFIX, "prefix")] == {"Create", "Describe", "Write"}
    assert load_topic_family(KafkaDepartmentTopics.PREFIX).name == generate.NOTICES


def test_an_adapter_writes_only_data_changes_and_reads_only_its_own_notices() -> None:
    from datashare_adapter import client

    from services.notifier.adapters.topics import KafkaDepartmentTopics, normalised

    code = "11360800MB0000002D"
    user = generate.adapter_user(code.lower())
    jsonschema.validate(user, CRD_SCHEMAS[(user["apiVersion"], "KafkaUser")])
    own_topic = KafkaDepartmentTopics.PREFIX + normalised(code)
    assert own_topic == client.NOTICES_PREFIX + code
    assert _granted(user) == {
        ("topic", client.DATA_CHANGES, "literal"): {"Describe", "Write"},
        ("topic", own_topic, "literal"): {"Describe", "Read"},
        ("group", f"adapter-{code}", "literal"): {"Read"},
    }
    with pytest.raises(ValueError):
        generate.adapter_user("11360800MB0000002X")  # a wrong check character


# -- processes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_runs_hardened_with_its_own_credentials_by_reference(overlay: str) -> None:
    users = of_kind(overlay, "KafkaUser")
    mongo_users = {
        u["connectionStringSecretName"]: u
        for u in of_kind(overlay, "MongoDBCommunity")["datashare-mongo"]["spec"]["users"]
    }
    deployments = of_kind(overlay, "Deployment")
    assert set(deployments) == set(generate.PROCESSES) | {"console"}  # the console: no topic, no database
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
        env = env_of(container)
        prefix = container["command"][-1].split(".")[1].upper() + "_"
        for variable, entry in env.items():
            if re.search(r"(PASSWORD|_KEYS?|_SECRET|_URI|_IDENTITY)$", variable):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {variable} is not from a Secret"
        if name == "console":
            assert not [v for v in env if "KAFKA" in v or "MONGO" in v] and "ports" in container
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            continue
        user = env[prefix + "KAFKA_SASL_USERNAME"]["value"]
        assert user == name and user in users
        assert env[prefix + "KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": user, "key": "password"}
        mongo = env[prefix + "MONGO_URI"]["valueFrom"]["secretKeyRef"]
        assert mongo["key"] == "connectionString.standard"
        roles = mongo_users[mongo["name"]]["roles"]
        assert roles == [{"name": "readWrite", "db": "datashare_" + prefix.strip("_").lower()}], name
        if "ports" in container:  # a REST process: probes on its health routes
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            assert name == "auditor-stream"  # faust's web server is off: nothing to probe
            # faust makes its data directory at start, by default in the working directory, which is read-only
            assert env["FAUST_DATADIR"]["value"].startswith("/tmp/")
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_backup_user_may_only_back_up() -> None:
    users = {u["name"]: u for u in of_kind("prod", "MongoDBCommunity")["datashare-mongo"]["spec"]["users"]}
    assert users["backup"]["roles"] == [{"name": "backup", "db": "admin"}]
    job = of_kind("prod", "CronJob")["mongo-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert (
        env_of(container)["MONGO_URI"]["valueFrom"]["secretKeyRef"]["name"]
        == users["backup"]["connectionStringSecretName"]
    )
    assert "--oplog" in container["args"][0] and "--archive" in container["args"][0]
    assert any(v.get("persistentVolumeClaim") for v in job["volumes"])


def test_dev_runs_one_of_everything_and_prod_keeps_replicas_through_disruptions() -> None:
    assert {d["spec"]["replicas"] for d in of_kind("dev", "Deployment").values()} == {1}
    assert of_kind("dev", "MongoDBCommunity")["datashare-mongo"]["spec"]["members"] == 1
    assert not of_kind("dev", "HorizontalPodAutoscaler") and not of_kind("dev", "PodDisruptionBudget")
    deployments = of_kind("prod", "Deployment")
    budgets, scalers = of_kind("prod", "PodDisruptionBudget"), of_kind("prod", "HorizontalPodAutoscaler")
    assert set(budgets) == set(scalers) == set(deployments)
    assert of_kind("prod", "MongoDBCommunity")["datashare-mongo"]["spec"]["members"] == 3
    topics = load_topics()
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2 and budgets[name]["spec"]["minAvailable"] == 1
        assert scalers[name]["spec"]["minReplicas"] >= 2
    # processes that only consume gain nothing past their topics' partitions
    assert scalers["exchange-ingest"]["spec"]["maxReplicas"] <= topics["exchange.data-changes"].partitions
    assert scalers["auditor-stream"]["spec"]["maxReplicas"] <= topics["exchange.data-accesses"].partitions


# -- network policies -------------------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        inside = labels.get(expression["key"]) in expression.get("values", [])
        ok = {"In": inside, "NotIn": not inside, "Exists": present, "DoesNotExist": not present}
        if not ok[expression["operator"]]:
            return False
    return True


def _egress_peers(policies: dict[str, Any], labels: dict[str, str]) -> list[tuple[dict[str, Any], list[Any]]]:
    return [
        (peer, rule.get("ports", []))
        for policy in policies.values()
        if _selects(policy["spec"]["podSelector"], labels) and "Egress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [{}])
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_let_services_reach_only_kafka_mongodb_and_the_directory(
    overlay: str,
) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    kafka = {"strimzi.io/cluster": "datashare-kafka", "strimzi.io/kind": "Kafka"}
    mongo = {"app": "datashare-mongo-svc"}
    directory = {"app.kubernetes.io/name": "directory"}
    for name, deployment in of_kind(overlay, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        peers = _egress_peers(policies, labels)
        in_cluster = [p for p, _ in peers if "podSelector" in p and "namespaceSelector" not in p]
        reached = [p["podSelector"] for p in in_cluster]
        if name == "console":
            continue  # test_the_console_reaches_the_five_services_and_nothing_else
        assert any(_selects(s, kafka) for s in reached), name
        assert any(_selects(s, mongo) for s in reached), name
        assert any(_selects(s, directory) for s in reached), name
        others = [s for s in reached if not any(_selects(s, target) for target in (kafka, mongo, directory))]
        assert not others, (name, others)
        outside = [p for p, _ in peers if "ipBlock" in p]
        assert not outside or name in ("notifier", "exchange"), name  # webhooks; departments' hosted services


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_reaches_the_five_services_and_nothing_else_and_they_let_it_in(overlay: str) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    labels = of_kind(overlay, "Deployment")["console"]["spec"]["template"]["metadata"]["labels"]
    peers = _egress_peers(policies, labels)
    dns = [p for p, _ in peers if "namespaceSelector" in p]
    assert all(p["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"} for p in dns)
    reached = {
        (p["podSelector"]["matchLabels"]["app.kubernetes.io/name"], port["port"])
        for p, ports in peers
        if "namespaceSelector" not in p
        for port in ports
    }
    assert reached == set(SERVICE_PORTS.items())  # no Kafka, no MongoDB, no address outside the cluster
    console = {"app.kubernetes.io/name": "console"}
    for service in SERVICE_PORTS:
        pod = {"app.kubernetes.io/name": service}
        admitted = [
            peer
            for policy in policies.values()
            if _selects(policy["spec"]["podSelector"], pod) and "Ingress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        ]
        assert any("podSelector" in p and _selects(p["podSelector"], console) for p in admitted), service


# -- alerts -----------------------------------------------------------------------------------------------

# Metrics the alerts may use that the services do not export, with who does.
THIRD_PARTY_METRICS = {
    "up": "Prometheus, for every target",
    "kafka_consumergroup_lag": "Strimzi's Kafka Exporter (Kafka CR, kafkaExporter)",
    "kafka_topic_partition_current_offset": "Strimzi's Kafka Exporter",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_deployment_spec_replicas": "kube-state-metrics",
}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "offset", "bool", "on", "ignoring", "group_left", "group_right"}


def exported_metrics() -> set[str]:
    from prometheus_client import REGISTRY

    import common.metrics  # noqa: F401 - each import registers its metrics
    import services.auditor.adapters.trail_metrics
    import services.auditor.oversight.adapters.metrics
    import services.notifier.adapters.webhooks_delivery  # noqa: F401

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    families = [f for f in REGISTRY.collect() if f.name.startswith("datashare_")]
    return {f.name + suffix for f in families for suffix in suffixes.get(f.type, ("",))}


def metrics_in(expr: str) -> set[str]:
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", n)}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_use_only_metrics_and_label_values_that_exist() -> None:
    exported = exported_metrics()
    schemas = {p.stem for p in (ROOT / "schemas" / "avro").glob("*.avsc")}
    groups = {g for p in generate.PROCESSES.values() for g in p.groups}
    rules = alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        expr = rule["expr"]
        unknown = {m for m in metrics_in(expr) if m not in exported and m not in THIRD_PARTY_METRICS}
        assert not unknown, (rule["alert"], unknown)
        for event_type in re.findall(r'event_type="(\w+)"', expr):
            assert event_type in schemas, (rule["alert"], event_type)
        for group in re.findall(r'\b(?:group|consumergroup)="([\w-]+)"', expr):
            assert group in groups, (rule["alert"], group)
        for outcome in re.findall(r'outcome="(\w+)"', expr):
            assert outcome in {"handled", "duplicate", "dead_lettered", "delivered", "retry", "dead"}, outcome
    assert metrics_in('sum by (group) (increase(datashare_x_total{a="b"}[5m])) > 0 and up offset 5m') == {
        "datashare_x_total",
        "up",
    }


def test_the_alert_names_cover_what_operations_must_hear_of() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    for needed in (
        "TargetDown",
        "ReplicasUnavailable",
        "ConsumerLagGrowing",
        "EventsDeadLettered",
        "OutboxBacklogGrowing",
        "ShareDecisionsOverdue",
        "CatalogUpdatesOverdue",
        "WebhooksDead",
        "TrailBehind",
        "TrailVerificationFailed",
        "TrailCheckpointsStale",
    ):
        assert "Datashare" + needed in names


def _promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs it (Debian's prometheus package) and sets PROMTOOL")
        pytest.skip("promtool is not installed (Debian's prometheus package ships it); CI runs this")
    return found


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    promtool = _promtool()
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts_test.yaml"]):
        out = subprocess.run(
            [promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout
