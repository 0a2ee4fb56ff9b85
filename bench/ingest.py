"""Ingestion end to end and the consistency check, against ceilings measured in the same run.

ingest: N data changes (mixed upserts and deletes, 12 fields) sent by the adapter kit → broker → the
exchange service process (checks against the catalog, history, records, digests, change feed, outbox) →
MongoDB; timed from the first send until the last change is stored. The ceiling is the slower of raw
aiokafka consumption of the same messages and raw bulk writes of the same documents (history + records).
The exchange process's RSS is sampled throughout.

consistency: a resource of M records in the center and an adapter snapshot that differs in 100 of them;
the check finds the differing key ranges and fetches the center's records there.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from datashare_adapter import Adapter, Platform, PlatformConfig, Snapshot
from datashare_adapter.digest import record_hash, top_of
from datashare_adapter.identifiers import credit_code_check_character
from datashare_adapter.signing import generate_key, private_pem, public_pem
from datashare_adapter.sync import differing_key_ranges
from pymongo import InsertOne, ReplaceOne, UpdateOne

from bench.report import write_result
from common.auth import TokenIssuer, generate_signing_key, jwks, load_signing_key
from common.codec import EventCodec
from common.kafka import KafkaPublisher
from common.mongo import connect
from common.policy import MachineKind, Principal, Role
from common.settings import ServiceSettings
from common.topics import load_topics
from devstack.processes import ROOT, Infra, free_port
from devstack.samples import announce_adapter_key, catalog_published
from services.exchange.adapters.mongo import (
    HISTORY,
    LEAVES,
    RECORDS,
    RESOURCES,
    ensure_indexes,
    history_doc,
    record_doc,
    record_id,
)
from services.exchange.domain.records import DataChange, Operation, apply_change
from services.exchange.settings import ExchangeSettings

DATA_CHANGES = "exchange.data-changes"
BATCH = ExchangeSettings().ingest_batch_size  # EXCHANGE_INGEST_BATCH_SIZE or the default; raw writes use it too
PROVIDER = "11360800MB5000001" + credit_code_check_character("11360800MB5000001")
ITEMS = [
    ("统一社会信用代码", "string", 18),
    ("企业名称", "string", 100),
    ("法定代表人", "string", 50),
    ("注册资本", "decimal", None),
    ("成立日期", "date", None),
    ("住所", "string", 200),
    ("经营范围", "string", 500),
    ("登记状态", "string", 20),
    ("行业代码", "string", 10),
    ("从业人数", "integer", None),
    ("是否上市", "boolean", None),
    ("联系电话", "string", 20),
]


def enterprise(n: int) -> str:
    body = f"91360800MA{n:07d}"
    return body + credit_code_check_character(body)


ITEM_SPECS = [{"name": n, "type": t, "length": length} for n, t, length in ITEMS]


def fields(key: str, i: int) -> dict[str, Any]:
    return {
        "统一社会信用代码": key,
        "企业名称": f"吉安市某某科技有限公司{i}",
        "法定代表人": "张三",
        "注册资本": 1_000_000.0 + i,
        "成立日期": "2015-06-01",
        "住所": "江西省吉安市吉州区某某路88号",
        "经营范围": "软件开发；信息技术咨询服务",
        "登记状态": "存续",
        "行业代码": "I65",
        "从业人数": i % 300,
        "是否上市": False,
        "联系电话": None,
    }


def workload(n: int, rng: random.Random) -> list[tuple[str, str, dict[str, Any], int]]:
    """(operation, subject key, fields, source version): 90% upserts over n/2 subjects, 10% deletes."""
    subjects = max(n // 2, 1)
    version = [0] * subjects
    changes = []
    for i in range(n):
        s = rng.randrange(subjects)
        version[s] += 1
        key = enterprise(s + 1)
        if rng.random() < 0.1:
            changes.append(("DELETE", key, {}, version[s]))
        else:
            changes.append(("UPSERT", key, fields(key, i), version[s]))
    return changes


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def spawn_exchange(
    bootstrap: str, mongo_uri: str, database: str, jwks_json: dict, logs: Path, role: str = "all", group: str = ""
):
    """The exchange service as its own process, as it runs in production; `role` api or ingest for one of
    the two processes it runs as in production, `group` the consumer group prefix they share."""
    port = free_port()
    env = {
        **os.environ,
        "EXCHANGE_HTTP_PORT": str(port),
        "EXCHANGE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EXCHANGE_MONGO_URI": mongo_uri,
        "EXCHANGE_MONGO_DATABASE": database,
        "EXCHANGE_AUTH_JWKS": json.dumps(jwks_json),
        "EXCHANGE_CONSUMER_GROUP_PREFIX": group or f"bench{port}-",
        "EXCHANGE_ROLE": role,
        "EXCHANGE_OUTBOX_POLL_SECONDS": "0.1",
        "EXCHANGE_LOG_LEVEL": "WARNING",
        "EXCHANGE_INGEST_BATCH_SIZE": str(BATCH),
    }
    with open(logs / f"exchange-{port}.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.exchange"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return proc, f"http://127.0.0.1:{port}"


async def start_exchange(
    bootstrap: str, mongo_uri: str, database: str, jwks_json: dict, logs: Path, role: str = "all", group: str = ""
):
    proc, url = spawn_exchange(bootstrap, mongo_uri, database, jwks_json, logs, role, group)
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(300):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the exchange did not become ready; see {logs}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_ingest(infra: Infra, n: int) -> None:
    bootstrap, mongo_uri = infra.bootstrap, infra.mongo_uri
    pids = {p.name: p.pid for p in infra.procs if p.pid is not None}
    rng = random.Random(8)
    key = load_signing_key(generate_signing_key())
    issuer = TokenIssuer(key, "jian-datashare", "jian-datashare", ttl_seconds=24 * 3600)
    adapter_token = issuer.issue(Principal("bench-adapter", PROVIDER, frozenset(), MachineKind.ADAPTER))[0]
    admin = {
        "authorization": "Bearer " + issuer.issue(Principal("bench", PROVIDER, frozenset({Role.DATA_ADMINISTRATOR})))[0]
    }
    code = f"101001/{rng.randrange(10**6):06d}"
    database = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    changes = workload(n, rng)

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, mongo_uri=mongo_uri, mongo_database=database)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    await publisher.ensure_topics(list(publisher.topics.values()))
    await publisher.publish("catalog.published", catalog_published(code, PROVIDER, ITEM_SPECS))
    signing = generate_key()
    await announce_adapter_key(publisher, key, "bench-adapter", PROVIDER, public_pem(signing.public_key()))
    await publisher.stop()

    logs = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    key_file = logs / "adapter-key.pem"
    key_file.write_text(private_pem(signing))
    proc, url = await start_exchange(bootstrap, mongo_uri, database, jwks(key), logs)
    client = connect(settings)
    db = client[database]
    try:
        async with httpx.AsyncClient(base_url=url, headers=admin) as http:
            while (await http.get(f"/resources/{code}")).status_code != 200:
                await asyncio.sleep(0.2)
        end = await db[HISTORY].estimated_document_count()
        assert end == 0
        config = PlatformConfig(
            "unused", url, bootstrap, "bench-adapter", "unused", PROVIDER, signing_key_file=str(key_file)
        )
        peak = rss_mb(proc.pid)
        pids["exchange"] = proc.pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        async with Adapter(config, Platform(config, access_token=adapter_token)) as adapter:
            for i, (operation, subject, values, version) in enumerate(changes):
                if operation == "DELETE":
                    await adapter.delete(code, subject, version)
                else:
                    await adapter.upsert(code, subject, values, version)
                if i % 20000 == 0:
                    peak = max(peak, rss_mb(proc.pid))
        sent = time.perf_counter() - started
        # Done when the exchange committed every offset: it commits after the batch's transaction. Polling
        # the broker keeps the measurement off the database being measured.
        group = f"bench{url.rsplit(':', 1)[1]}-exchange-ingest"
        target = await end_offsets(bootstrap)
        broker = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await broker.start()
        try:
            while not await committed_through(broker, group, target):
                await asyncio.sleep(0.5)
                peak = max(peak, rss_mb(proc.pid))
                if time.perf_counter() - started > 3600:
                    raise RuntimeError(f"not all of {n} changes stored after an hour")
        finally:
            await broker.close()
        elapsed = time.perf_counter() - started
        cores = {name: round((cpu_seconds(pid) - cpu_before[name]) / elapsed, 2) for name, pid in pids.items()}
        stored = await db[HISTORY].count_documents({})
        refused = await db["exchange_refusals"].count_documents({})
        if stored != n:
            raise RuntimeError(f"{stored} changes in the history, {n} sent")
    finally:
        proc.terminate()
        proc.wait(15)
    end_to_end = n / elapsed

    consumed = await raw_consume(bootstrap, n)
    written = await raw_writes(client[database + "_raw"], code, changes)
    await client.drop_database(database)
    await client.drop_database(database + "_raw")
    await client.close()
    ceiling = min(consumed, written)
    write_result(
        "exchange-ingest-1m" if n == 1_000_000 else "exchange-ingest",  # --million keeps its own result
        metric="data changes stored per second, adapter kit → broker → exchange → MongoDB",
        unit="changes/s",
        value=end_to_end,
        baseline_name="raw ceiling (slower of raw consumption and raw bulk writes)",
        baseline_value=ceiling,
        goal=">= 60% of the raw ceiling; exchange RSS <= 500 MB",
        met=end_to_end >= 0.6 * ceiling and peak <= 500,
        details={
            "changes": n,
            "refused": refused,
            "adapter_send_seconds": round(sent, 2),
            "end_to_end_seconds": round(elapsed, 2),
            "raw_consume_per_s": round(consumed, 1),
            "raw_bulk_write_per_s": round(written, 1),
            "exchange_peak_rss_mb": round(peak, 1),
            "fields_per_change": len(ITEMS),
            # CPU cores each process kept busy during the end-to-end run (the machine has 2); the local
            # broker rewrites all it holds about once a second while written to, so its share grows with n.
            "cores_used_end_to_end": cores,
        },
    )


async def end_offsets(bootstrap: str) -> dict:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(DATA_CHANGES, p) for p in consumer.partitions_for_topic(DATA_CHANGES) or ()]
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def committed_through(admin: AIOKafkaAdminClient, group: str, target: dict) -> bool:
    committed = await admin.list_consumer_group_offsets(group)
    return all(tp in committed and committed[tp].offset >= end for tp, end in target.items() if end)


async def raw_consume(bootstrap: str, n: int) -> float:
    """The same messages read from the same topic with plain aiokafka, no decoding."""
    consumer = AIOKafkaConsumer(
        DATA_CHANGES,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
    )
    started, seen = time.perf_counter(), 0
    await consumer.start()
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                seen += len(records)
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - started)


async def raw_writes(db, code: str, changes: list[tuple[str, str, dict[str, Any], int]]) -> float:
    """The documents the exchange writes (a history entry per change, the record's new state), built by
    the same functions, into collections with the same indexes, with plain unordered bulk writes of the
    same batch size: outside transactions and without the checks, digests, change feed or events."""
    now = datetime.now(UTC)
    await ensure_indexes(db)
    history, records = db[HISTORY], db[RECORDS]
    started = time.perf_counter()
    for start in range(0, len(changes), BATCH):
        docs, states = [], {}
        for n, (operation, subject, values, version) in enumerate(changes[start : start + BATCH], start + 1):
            change = DataChange(
                uuid.uuid4().hex, code, PROVIDER, Operation(operation), subject, "credit_code", values, version, now
            )
            docs.append(InsertOne(history_doc(change, True, n)))
            record = apply_change(None, change)
            assert record is not None
            states[subject] = ReplaceOne({"_id": record_id(code, subject)}, record_doc(record), upsert=True)
        await history.bulk_write(docs, ordered=False)
        await records.bulk_write(list(states.values()), ordered=False)
    return len(changes) / (time.perf_counter() - started)


async def run_consistency(bootstrap: str, mongo_uri: str, m: int, differing: int = 100) -> None:
    """The center holds m records (written directly, as ingestion would leave them); the adapter's snapshot
    differs in `differing` of them. Time the check and count what crosses the wire."""
    rng = random.Random(17)
    key = load_signing_key(generate_signing_key())
    issuer = TokenIssuer(key, "jian-datashare", "jian-datashare", ttl_seconds=24 * 3600)
    code = f"101001/{rng.randrange(10**6):06d}"
    database = f"bench_digest_{uuid.uuid4().hex[:8]}"
    settings = ServiceSettings(mongo_uri=mongo_uri, mongo_database=database)
    client = connect(settings)
    db = client[database]
    await db[RESOURCES].insert_one(
        {
            "_id": code,
            "provider_code": PROVIDER,
            "name": "企业登记基本信息",
            "items": [{"name": n, "type": t, "length": length} for n, t, length in ITEMS],
            "update_cycle": "DAILY",
            "published": True,
            "version": 1,
            "published_at": datetime.now(UTC),
            "last_change_at": None,
            "records": m,
        }
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-digest-"))
    snapshot = Snapshot(folder / "state.sqlite")
    changed = set(rng.sample(range(m), differing))
    leaves: dict[int, list[int]] = {}
    now = datetime.now(UTC)
    began = time.perf_counter()
    rows = []
    for start in range(0, m, 5000):
        docs = []
        for i in range(start, min(start + 5000, m)):
            subject = enterprise(i + 1)
            values = fields(subject, i)
            change = DataChange("", code, PROVIDER, Operation.UPSERT, subject, "credit_code", values, 1, now)
            record = apply_change(None, change)
            assert record is not None
            digest, bucket = record.digest, record.bucket
            docs.append(record_doc(record) | {"_id": record_id(code, subject)})
            leaf = leaves.setdefault(bucket, [0, 0])
            leaf[0] += digest
            leaf[1] += 1
            local = record_hash(subject, values | {"企业名称": "本地已改"}) if i in changed else digest
            rows.append((code, subject, bucket, local))
        await db[RECORDS].insert_many(docs, ordered=False)
    tops: dict[int, dict[str, dict[str, int]]] = {}
    for b, (total, count) in leaves.items():
        top = tops.setdefault(top_of(b), {"sum": {}, "count": {}})
        top["sum"][str(b)], top["count"][str(b)] = total, count
    await db[LEAVES].bulk_write(
        [
            UpdateOne({"_id": f"{code}|{t}"}, {"$set": {"resource_code": code, "top": t, **leaf}}, upsert=True)
            for t, leaf in tops.items()
        ],
        ordered=False,
    )
    await ensure_indexes(db)
    with snapshot.db:
        snapshot.db.executemany("INSERT INTO record VALUES (?, ?, ?, ?)", rows)
    loaded = time.perf_counter() - began
    print(f"consistency: {m:,} records loaded in {loaded:.0f}s", flush=True)

    logs = folder / "logs"
    logs.mkdir()
    proc, url = await start_exchange(bootstrap, mongo_uri, database, jwks(key), logs)
    try:
        token = issuer.issue(Principal("bench-adapter", PROVIDER, frozenset(), MachineKind.ADAPTER))[0]
        config = PlatformConfig("unused", url, bootstrap, "bench-adapter", "unused", PROVIDER)
        platform = Platform(config, access_token=token)
        started = time.perf_counter()
        buckets = await differing_key_ranges(platform, code, snapshot.digest(code))
        fetched = await platform.bucket_records(code, buckets)
        local = snapshot.keys_in(code, buckets)
        elapsed = time.perf_counter() - started
        await platform.close()
    finally:
        proc.terminate()
        proc.wait(15)
    snapshot.close()
    await client.drop_database(database)
    await client.close()
    transferred = len(fetched) + len(local)
    found = {r["subject_key"] for r in fetched}
    assert {enterprise(i + 1) for i in changed} <= found, "the check missed a differing record"
    write_result(
        "exchange-consistency",
        metric=f"consistency check of a {m:,}-record resource with {differing} differing records",
        unit="s",
        value=elapsed,
        baseline_name=None,
        baseline_value=None,
        goal="<= 10 s and < 1% of the records transferred",
        met=elapsed <= 10 and transferred < 0.01 * m,
        details={
            "records": m,
            "differing_records": differing,
            "differing_key_ranges": len(buckets),
            "center_records_fetched": len(fetched),
            "local_records_to_resend": len(local),
            "transferred_share": round(transferred / m, 5),
        },
    )
