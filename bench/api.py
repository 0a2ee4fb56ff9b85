"""What a read through the platform's HTTP path costs, against a bare app doing the same read.

Measured in one run with wrk (2 threads, 32 connections, on loopback), each after a short warm-up, in ROUNDS
rounds that take turns, so that a shared machine's changing load falls on all of them alike:
- the baseline: a bare FastAPI app under uvicorn with uvloop and httptools (bench/bare.py) that reads the
  same MongoDB document by id;
- the exchange's record read, `GET /resources/<code>/records/<key>`, with the provider's own bearer token:
  token check, revocation check, access rule, the read and the response model included;
- the exchange's `/healthz`: the HTTP path alone.
Each gets requests/s, p50/p99 latency, the server process's CPU share and CPU time per request (what a request
costs however busy the machine is) and its ratio to the baseline in the same round; the round with the median
ratio is reported. Goal for each exchange target: >= 1,000 requests/s, p99 <= 50 ms and >= 50% of the
baseline.

- the API channel's single-subject query `GET /services/<code>/records/<key>` and batch query (BATCH keys) by
  a consumer system under its grant: token, grant and scope check, masking and the access event included;
  the batch reports subjects/s beside requests/s.
Each target is one `Target` in `targets()`; `measure(url, headers)` loads one URL on its own.

wrk is a Debian package: `apt-get install -y wrk`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pymongo import AsyncMongoClient

from bench.ingest import ITEM_SPECS, ITEMS, PROVIDER, cpu_seconds, enterprise, fields, start_exchange
from bench.report import write_result
from common.auth import TokenIssuer, generate_signing_key, jwks, load_signing_key
from common.codec import EventCodec
from common.identifiers import credit_code_check_character
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Principal, Role
from common.settings import ServiceSettings
from common.topics import load_topics
from devstack.processes import ROOT, Infra, free_port
from devstack.samples import catalog_published
from services.exchange.adapters.mongo import record_id
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_doc
from services.exchange.sharing.grants import Channel, Grant, RowScope

THREADS = 2
CONNECTIONS = 32
SECONDS = 10
ROUNDS = 3
WARMUP_SECONDS = 3
SUBJECTS = 1_000  # records the exchange holds; the benchmark reads one of them
BATCH = 100  # subjects per batch query
CONSUMER = "11360800MB5000002" + credit_code_check_character("11360800MB5000002")  # the consumer department
GRANT = "bench-grant"
PURPOSE = "基准测试：企业登记信息核验"
GOAL_RPS = 1_000
GOAL_P99_MS = 50.0
GOAL_RATIO = 0.5
WRK_MISSING = "wrk is not installed: the API benchmark needs it (Debian: apt-get install -y wrk)"


@dataclass(frozen=True)
class Target:
    """One URL to load: what it is, how to call it, and which process serves it (for its CPU share)."""

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"
    body: str | None = None
    subjects_per_request: int = 1  # a batch query asks for many subjects: subjects/s = requests/s x this
    pid: int | None = None


@dataclass(frozen=True)
class Load:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, socket errors and timeouts
    server_cpu_share: float | None  # of one core, while loaded
    server_cpu_ms_per_request: float | None


def measure(
    url: str,
    headers: Mapping[str, str],
    *,
    method: str = "GET",
    body: str | None = None,
    seconds: int = SECONDS,
    pid: int | None = None,
) -> Load:
    """Load one URL with wrk for `seconds` (after a warm-up) and read what it measured."""
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(method, headers, body))
    try:
        _wrk(url, script.name, WARMUP_SECONDS)
        cpu_before, started = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
        output = _wrk(url, script.name, seconds)
        cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started) if pid else None
    finally:
        os.unlink(script.name)
    return _parse(output, cpu)


def _wrk_script(method: str, headers: Mapping[str, str], body: str | None) -> str:
    def lua(text: str) -> str:
        return f"[==[{text}]==]"  # a long string: no escaping needed (not next to a bracket: `[[` opens one)

    lines = [f"wrk.method = {lua(method)}"]
    lines += [f"wrk.headers[ {lua(name)} ] = {lua(value)}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {lua(body)}")
    return "\n".join(lines) + "\n"


def _wrk(url: str, script: str, seconds: int) -> str:
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", script, url]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    if done.stderr.strip():  # wrk runs on with a broken script, sending requests without its headers
        raise RuntimeError(f"wrk: {done.stderr.strip()}")
    return done.stdout


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _parse(output: str, cpu: float | None) -> Load:
    def found(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    requests = found(r"^\s*(\d+) requests in")
    rps = found(r"^Requests/sec:\s*([\d.]+)")
    p50, p99 = found(r"^\s*50%\s+(\S+)"), found(r"^\s*99%\s+(\S+)")
    if not (requests and rps and p50 and p99):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    non_2xx = found(r"Non-2xx or 3xx responses: (\d+)")
    socket = found(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return Load(
        requests=int(requests.group(1)),
        requests_per_second=float(rps.group(1)),
        p50_ms=round(_ms(p50.group(1)), 2),
        p99_ms=round(_ms(p99.group(1)), 2),
        errors=errors,
        server_cpu_share=round(cpu, 2) if cpu is not None else None,
        server_cpu_ms_per_request=round(cpu * 1000 / float(rps.group(1)), 3) if cpu is not None else None,
    )


# -- the platform under test ---------------------------------------------------------------------------


def _register_csv(rows: int) -> bytes:
    names = [name for name, _, _ in ITEMS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    for i in range(1, rows + 1):
        values = fields(enterprise(i), i)
        writer.writerow(["" if values[n] is None else values[n] for n in names])
    return out.getvalue().encode()


async def _publish_resource(infra: Infra, database: str, code: str) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.bootstrap, mongo_uri=infra.mongo_uri, mongo_database=database
    )
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.ensure_topics(list(publisher.topics.values()))
        entry = catalog_published(code, PROVIDER, ITEM_SPECS)
        entry.payload["confidentiality_reviewed_on"] = date.today()  # Art. 20: shared only once reviewed
        await publisher.publish("catalog.published", entry)
    finally:
        await publisher.stop()


async def _fill(url: str, token: str, code: str) -> None:
    """The provider's register uploaded and ingested: SUBJECTS records."""
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        while (await client.get(f"/resources/{code}")).status_code != 200:
            await asyncio.sleep(0.2)
        upload = {"file": ("register.csv", _register_csv(SUBJECTS), "text/csv")}
        response = await client.post(f"/resources/{code}/uploads", files=upload)
        if response.status_code != 202:
            raise RuntimeError(f"the upload was refused: {response.status_code} {response.text[:500]}")
        deadline = time.monotonic() + 120
        while (await client.get(f"/resources/{code}")).json()["records"] < SUBJECTS:
            if time.monotonic() > deadline:
                raise RuntimeError("the exchange did not ingest the uploaded register within 120 s")
            await asyncio.sleep(0.5)


def _spawn_bare(infra: Infra, database: str, logs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare:app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "BARE_MONGO_URI": infra.mongo_uri, "BARE_MONGO_DATABASE": database}
    with open(logs / f"bare-{port}.log", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


async def _start_bare(infra: Infra, database: str, logs: Path) -> tuple[subprocess.Popen, str]:
    proc, url = _spawn_bare(infra, database, logs)
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(150):
            try:
                await client.get("/docs")
                return proc, url
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the bare app did not start; see {logs}")


def targets(
    bare: str, bare_pid: int, exchange: str, exchange_pid: int, tokens: Tokens, code: str, key: str
) -> list[Target]:
    """What is loaded, the baseline first."""
    bearer = {"Authorization": f"Bearer {tokens.provider}"}
    # The API channel: a consumer system under its grant, with the grant check, masking and the access event.
    granted = {"Authorization": f"Bearer {tokens.consumer}", "X-Purpose": quote(PURPOSE), "X-Grant-Id": GRANT}
    keys = [enterprise(n) for n in range(BATCH)]
    return [
        Target("bare", f"{bare}/records/{record_id(code, key)}", pid=bare_pid),
        Target("record_read", f"{exchange}/resources/{code}/records/{key}", bearer, pid=exchange_pid),
        Target("api_single", f"{exchange}/services/{code}/records/{key}", granted, pid=exchange_pid),
        Target(
            "api_batch",
            f"{exchange}/services/{code}/records",
            granted | {"Content-Type": "application/json"},
            method="POST",
            body=json.dumps({"subject_keys": keys}),
            subjects_per_request=len(keys),
            pid=exchange_pid,
        ),
        Target("healthz", f"{exchange}/healthz", pid=exchange_pid),
    ]


@dataclass(frozen=True)
class Tokens:
    provider: str  # the provider's data administrator: her own department's records
    consumer: str  # the consumer department's system: the API channel, under GRANT


async def _grant(infra: Infra, database: str, code: str) -> None:
    """The consumer system's grant to every item and row, written where the exchange keeps grants: the request,
    decision and subscription routes are not what this benchmark measures."""
    today = date.today()
    grant = Grant(
        grant_id=GRANT,
        request_id=None,
        resource_code=code,
        provider_code=PROVIDER,
        consumer_code=CONSUMER,
        consumer_system="bench-consumer",
        items=tuple(i["name"] for i in ITEM_SPECS),
        scope=RowScope(),
        purpose=PURPOSE,
        channels=frozenset({Channel.API}),
        valid_from=today - timedelta(days=1),
        valid_to=today + timedelta(days=365),
        entry_version=1,
    )
    mongo = AsyncMongoClient(infra.mongo_uri)
    try:
        await mongo[database][GRANTS].replace_one({"_id": GRANT}, grant_doc(grant), upsert=True)
    finally:
        await mongo.close()


async def _answers(target: Target) -> None:
    """Each target answers 200 before it is loaded: a benchmark of refusals would measure nothing."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.request(target.method, target.url, headers=target.headers, content=target.body)
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: {target.url} answered {response.status_code}: {response.text[:300]}")


async def run(infra: Infra) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    key = load_signing_key(generate_signing_key())
    issuer = TokenIssuer(key, "jian-datashare", "jian-datashare", ttl_seconds=24 * 3600)
    tokens = Tokens(
        issuer.issue(Principal("bench", PROVIDER, frozenset({Role.DATA_ADMINISTRATOR})))[0],
        issuer.issue(Principal("bench-consumer", CONSUMER, machine=MachineKind.CONSUMER_SYSTEM))[0],
    )
    code, subject = "101001/000042", enterprise(SUBJECTS // 2)
    database = f"bench_api_{uuid.uuid4().hex[:8]}"
    logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
    await _publish_resource(infra, database, code)
    exchange, exchange_url = await start_exchange(infra.bootstrap, infra.mongo_uri, database, jwks(key), logs)
    bare, bare_url = await _start_bare(infra, database, logs)
    load_average = os.getloadavg()[0]
    try:
        await _fill(exchange_url, tokens.provider, code)
        await _grant(infra, database, code)
        loaded = targets(bare_url, bare.pid, exchange_url, exchange.pid, tokens, code, subject)
        for target in loaded:
            await _answers(target)
        rounds: list[dict[str, Load]] = []
        for number in range(1, ROUNDS + 1):
            rounds.append({})
            for target in loaded:
                load = await asyncio.to_thread(
                    measure, target.url, target.headers, method=target.method, body=target.body, pid=target.pid
                )
                rounds[-1][target.name] = load
                print(f"  round {number} {target.name}: {load}", flush=True)
    finally:
        for proc in (bare, exchange):
            proc.terminate()
            proc.wait(15)
    _report(loaded, rounds, [load_average, os.getloadavg()[0]])


def _report(loaded: list[Target], rounds: list[dict[str, Load]], load_average: list[float]) -> None:
    baseline, *measured = loaded
    details: dict[str, Any] = {}
    met = True
    for target in measured:
        ratios = sorted((r[target.name].requests_per_second / r[baseline.name].requests_per_second, r) for r in rounds)
        ratio, median = ratios[len(ratios) // 2]
        load = median[target.name]
        entry = vars(load) | {
            "ratio_to_bare": round(ratio, 3),
            "bare_in_that_round": vars(median[baseline.name]),
            "ratios_in_all_rounds": [round(r, 3) for r, _ in ratios],
        }
        if target.subjects_per_request > 1:
            entry["subjects_per_second"] = round(load.requests_per_second * target.subjects_per_request)
        ok = load.requests_per_second >= GOAL_RPS and load.p99_ms <= GOAL_P99_MS and ratio >= GOAL_RATIO
        entry["goal_met"] = ok and not load.errors
        met = met and entry["goal_met"]
        details[target.name] = entry
    details["rounds"] = [{name: vars(load) for name, load in r.items()} for r in rounds]
    details["wrk"] = {"threads": THREADS, "connections": CONNECTIONS, "seconds": SECONDS, "warmup": WARMUP_SECONDS}
    details["records_held"] = SUBJECTS
    details["machine_load_average_before_after"] = [round(a, 2) for a in load_average]
    single = details["api_single"]
    write_result(
        "exchange-api",
        metric="an authorized single-subject query through the API channel (GET /services/<code>/records/<key>)",
        unit="requests/s",
        value=single["requests_per_second"],
        baseline_name="a bare FastAPI app (uvicorn, uvloop, httptools) reading the same MongoDB document by id",
        baseline_value=single["bare_in_that_round"]["requests_per_second"],
        goal=f">= {GOAL_RPS:,} requests/s, p99 <= {GOAL_P99_MS:.0f} ms and >= {GOAL_RATIO:.0%} of the bare app, "
        "for each exchange target",
        met=met,
        details=details,
    )
