"""The platform as `make up` runs it, watched by a real Prometheus with the repository's alert rules: traffic moves
the metrics the README and the dashboard name, a poison event makes the dead-letter alert's expression true and
the alert fire, and every dashboard's queries are valid. Prometheus is Debian's `prometheus` package's binary
(.ci/run unpacks it and sets PROMETHEUS); the test brings up the whole platform, so `make test-full-size` runs it,
not `make test`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from devstack.processes import ROOT, SERVICES, Proc, free_port, service_procs, start, start_infra, stop, wait_http_ready
from tests.sizes import FULL_SIZE

pytestmark = [
    pytest.mark.full_size,
    pytest.mark.skipif(not FULL_SIZE, reason="brings up the platform and Prometheus: `make test-full-size` runs it"),
]

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
POISONED = "catalog.entry-events"  # consumed by the exchange, the notifier and the auditor (trail and oversight)


def prometheus_binary() -> str:
    found = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing: .ci/run unpacks Debian's prometheus package and sets PROMETHEUS")
        pytest.skip("prometheus is not installed (Debian's prometheus package ships it); CI runs this")
    return found


def scrape_config(procs: list[Proc], rules: Path) -> dict[str, Any]:
    """Every process with an HTTP port, scraped each second as the ServiceMonitors do on the cluster (the
    `namespace` label the alert rules select on included)."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": p.name,
                "static_configs": [{"targets": [f"127.0.0.1:{p.port}"], "labels": {"namespace": "datashare"}}],
            }
            for p in procs
            if p.ready_path
        ],
    }


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, list[Proc], str]]:
    """Broker, database, every service as `make up` starts them, and Prometheus scraping them: (bootstrap,
    processes, Prometheus's URL)."""
    binary = prometheus_binary()
    infra = start_infra(tmp_path / "infra")
    procs = service_procs(ports={name: free_port() for name in SERVICES}, infra=infra)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(procs, ALERTS)))
    prometheus = Proc(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        "127.0.0.1",
        port,
        f"http://127.0.0.1:{port}",
        ready_path="/-/ready",
        stop_timeout=10,
    )
    try:
        for proc in procs:
            start(proc, tmp_path / "log", detach=False)
        start(prometheus, tmp_path / "log", detach=False)
        for proc in [*procs, prometheus]:
            wait_http_ready(proc, timeout=120)
        yield infra.bootstrap, procs, prometheus.url
    finally:
        stop(infra.procs + procs + [prometheus])


class Prometheus:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def query(self, expr: str) -> list[dict[str, Any]]:
        answer = await self.client.get("/api/v1/query", params={"query": expr})
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    async def value(self, expr: str) -> float:
        """The value of a single-series expression (`sum(...)`); 0 while the series does not exist yet."""
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    async def eventually(
        self, expr: str, enough: Callable[[list[dict[str, Any]]], bool] = bool, timeout: float = 90
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not enough(result := await self.query(expr)):
            assert time.monotonic() < deadline, f"{expr} returned {result} for {timeout}s"
            await asyncio.sleep(1)
        return result

    async def firing(self, alert: str, groups: set[str] | None = None, timeout: float = 90) -> list[dict[str, Any]]:
        """The alert's firing instances, once there are some (for each of `groups`, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = await self.client.get("/api/v1/alerts")
            alerts = [a for a in answer.json()["data"]["alerts"] if a["labels"]["alertname"] == alert]
            fired = [a for a in alerts if a["state"] == "firing"]
            if fired and (groups is None or groups <= {a["labels"].get("group") for a in fired}):
                return fired
            assert time.monotonic() < deadline, f"{alert} did not fire within {timeout}s: {alerts}"
            await asyncio.sleep(1)


def rule_expr(alert: str) -> str:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return next(r["expr"] for g in groups for r in g["rules"] if r.get("alert") == alert)


# What the README says the dashboard shows, as the totals that must grow while the platform works.
MOVING = {
    "events consumed and handled": 'sum(datashare_events_consumed_total{outcome="handled"})',
    "events published": "sum(datashare_events_published_total)",
    "outbox messages relayed": "sum(datashare_outbox_relayed_total)",
    "handler timings": "sum(datashare_event_handler_seconds_count)",
    "HTTP requests": "sum(datashare_http_requests_total)",
    "refused requests": "sum(datashare_auth_failures_total)",
    "access trail entries": "sum(datashare_trail_entries_appended_total)",
}


async def test_traffic_moves_the_documented_metrics_and_a_poison_event_fires_the_dead_letter_alerts(
    platform, tmp_path
) -> None:
    bootstrap, procs, url = platform
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        prometheus = Prometheus(client)
        # every process is scraped, and says its broker and database answer
        scraped = len([p for p in procs if p.ready_path])
        await prometheus.eventually(f'count(up{{namespace="datashare"}} == 1) == {scraped}')
        # ... every one but the console, which has no broker or database of its own
        depending = 'count(min by (job) (datashare_dependency_up{namespace="datashare"}) == 1)'
        await prometheus.eventually(f"{depending} == {scraped - 1}")
        dead_letters = rule_expr("DatashareEventsDeadLettered")
        assert await prometheus.query(dead_letters) == []
        before = {what: await prometheus.value(expr) for what, expr in MOVING.items()}

        await asyncio.to_thread(load_demo_directory, procs, tmp_path / "demo-credentials.tsv")
        auditor = next(p for p in procs if p.name == "auditor")
        refused = httpx.get(f"http://{auditor.host}:{auditor.port}/trail/entries", timeout=10)
        assert refused.status_code == 401
        grown: dict[str, float] = {}
        deadline = time.monotonic() + 90
        while len(grown) < len(MOVING):
            assert time.monotonic() < deadline, f"did not grow within 90s: {set(MOVING) - set(grown)}; {before}"
            for what, expr in MOVING.items():
                if what not in grown and (now := await prometheus.value(expr)) > before[what]:
                    grown[what] = now
            await asyncio.sleep(1)

        await poison(bootstrap, POISONED)
        turned = await prometheus.eventually(
            dead_letters, lambda result: {"notifier", "auditor-trail"} <= {s["metric"]["group"] for s in result}
        )
        assert {series["metric"]["topic"] for series in turned} == {POISONED}
        fired = await prometheus.firing("DatashareEventsDeadLettered", {"notifier", "auditor-trail"})
        assert {a["labels"]["topic"] for a in fired} == {POISONED}
        await prometheus.firing("DatashareTrailEventsRefused")  # the trail's own consumer among them
        signed = await prometheus.value("time() - max(datashare_trail_last_checkpoint_timestamp_seconds)")
        assert 0 <= signed < 300, signed  # the trail's first append signed a checkpoint
        # every dashboard's every query is PromQL this Prometheus answers
        for dashboard in sorted((ROOT / "deploy" / "grafana").glob("*.json")):
            for panel in json.loads(dashboard.read_text(encoding="utf-8"))["panels"]:
                for target in panel["targets"]:
                    await prometheus.query(target["expr"])  # asserts a 200
        # and nothing else is wrong with the platform
        alerts = (await client.get("/api/v1/alerts")).json()["data"]["alerts"]
        firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        assert firing == {"DatashareEventsDeadLettered", "DatashareTrailEventsRefused"}, alerts


def load_demo_directory(procs: list[Proc], credentials: Path) -> None:
    """`make demo`'s directory: departments, people and machines become directory events every service reads."""
    directory = next(p for p in procs if p.name == "directory")
    result = subprocess.run(
        [sys.executable, "-m", "services.directory.cli", "demo", "--credentials", str(credentials)],
        env={**os.environ, **directory.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def poison(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not an Avro event", key=b"poison")
    finally:
        await producer.stop()
