"""Departments' data flowing into the center through the adapter kit: checks against the catalog, history,
the change feed, one subject across resources, consistency digests, uploads and freshness."""

import asyncio
import contextlib
import os
import signal
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from datashare_adapter import Adapter, Platform, PlatformConfig, Snapshot, check, sync
from datashare_adapter.identifiers import credit_code_check_character

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.mongo import connect
from common.policy import MachineKind, Role
from common.topics import load_topics
from devstack.samples import catalog_published, catalog_withdrawn
from services.exchange.adapters import mongo
from tests.adapter_keys import key_file, register_adapter_key
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for, skip_backlog
from tests.tokens import bearer, token

PROVIDER = "11360800MB4000001" + credit_code_check_character("11360800MB4000001")
OTHER = "11360800MB4000002" + credit_code_check_character("11360800MB4000002")
ITEMS = [
    {"name": "统一社会信用代码", "type": "string", "length": 18},
    {"name": "企业名称", "type": "string", "length": 100},
    {"name": "注册资本", "type": "decimal"},
    {"name": "成立日期", "type": "date"},
    {"name": "在业", "type": "boolean"},
]


def enterprise(n: int) -> str:
    body = f"91360800MA{n:07d}"
    return body + credit_code_check_character(body)


KEYS = Path(tempfile.mkdtemp(prefix="adapter-keys-"))


def adapter_for(infra, exchange: ServiceProcess) -> Adapter:
    """The provider's adapter, signing with the key `exchange_knowing` announced for it."""
    config = PlatformConfig(
        "unused",
        exchange.url,
        infra.bootstrap,
        "market-adapter",
        "unused",
        PROVIDER,
        signing_key_file=str(key_file("market-adapter", KEYS)),
    )
    adapter_token = token(PROVIDER, machine=MachineKind.ADAPTER, subject="market-adapter")
    return Adapter(config, Platform(config, access_token=adapter_token))


async def exchange_knowing(
    infra, services, tmp_path: Path, *entries: Event, environ: dict[str, str] | None = None, **env: str
) -> ServiceProcess:
    """A running exchange that has learnt the given published catalog entries and the provider's adapter key;
    `env` are its settings (without the prefix), `environ` other environment variables."""
    exchange = ServiceProcess("exchange", infra, tmp_path, mongo_database=f"ex_{uuid.uuid4().hex[:8]}", **env)
    exchange.env |= environ or {}
    # what earlier tests left on the shared topic is not this exchange's to ingest before the test's own changes
    await skip_backlog(
        infra, f"{exchange.env['EXCHANGE_CONSUMER_GROUP_PREFIX']}exchange-ingest", "exchange.data-changes"
    )
    exchange.start()
    services.append(exchange)
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    await publisher.publish_many("catalog.published", list(entries))
    await publisher.stop()
    await register_adapter_key(infra, "market-adapter", PROVIDER)
    await exchange.wait_ready()
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    for entry in entries:
        await exchange.wait_status(f"/resources/{entry.key}", 200, headers=admin)
    return exchange


async def until(probe, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await probe()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_data_flows_in_checked_against_the_catalog(infra, topics, services, tmp_path: Path) -> None:
    register, licences, stale = (f"{n}01001/{uuid.uuid4().int % 10**6:06d}" for n in (1, 2, 3))
    exchange = await exchange_knowing(
        infra,
        services,
        tmp_path,
        catalog_published(register, PROVIDER, ITEMS),
        catalog_published(licences, PROVIDER, [ITEMS[0], {"name": "许可证编号", "type": "string", "length": 30}]),
        catalog_published(stale, PROVIDER, ITEMS, "WEEKLY", datetime.now(UTC) - timedelta(days=9)),
    )
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)

    a, b, c = enterprise(1), enterprise(2), enterprise(3)
    async with adapter_for(infra, exchange) as adapter:
        await adapter.upsert(register, a, {"统一社会信用代码": a, "企业名称": "吉安甲公司", "注册资本": 100.0}, 2)
        await adapter.upsert(register, a, {"统一社会信用代码": a, "企业名称": "旧名"}, 1)  # late: history only
        await adapter.upsert(register, b, {"统一社会信用代码": b, "企业名称": "吉安乙公司", "在业": True}, 1)
        await adapter.upsert(register, c, {"统一社会信用代码": c, "企业名称": "吉安丙公司"}, 1)
        await adapter.delete(register, c, 2)
        poison = {
            "field.unknown": await adapter.upsert(register, b, {"统一社会信用代码": b, "法人": "张三"}, 5),
            "field.type": await adapter.upsert(register, b, {"统一社会信用代码": b, "注册资本": "很多"}, 6),
            "key.missing": await adapter.upsert(register, b, {"企业名称": "无代码"}, 7),
            "resource.not_published": await adapter.upsert("101001/999999", b, {"统一社会信用代码": b}, 1),
        }
        await adapter.upsert(licences, a, {"统一社会信用代码": a, "许可证编号": "JY13608000001"}, 1)
        await adapter.upsert(
            register, b, {"统一社会信用代码": b, "企业名称": "吉安乙公司（新）"}, 8
        )  # after the poison

    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:

        async def record(code: str, key: str) -> dict | None:
            response = await client.get(f"/resources/{code}/records/{key}")
            return response.json() if response.status_code == 200 else None

        async def latest_b() -> bool:
            found = await record(register, b)
            return bool(found and found["source_version"] == 8)

        assert await until(latest_b), "the change after the poison messages was not stored"
        assert (await record(register, a))["fields"]["企业名称"] == "吉安甲公司"
        assert await record(register, c) is None
        history = (await client.get(f"/resources/{register}/records/{a}/history")).json()
        assert [(h["source_version"], h["applied"]) for h in history] == [(1, False), (2, True)]

        dead = await read_topic(
            infra.bootstrap,
            "exchange.data-changes.dlq",
            4,
            where=lambda r: headers_of(r)["event_id"] in poison.values(),
        )
        reasons = {headers_of(r)["event_id"]: headers_of(r)["dlq.reason"] for r in dead}
        for rule, change in poison.items():
            assert rule in reasons[change]
        refusals = (await client.get("/refusals")).json()
        assert {r["rule"] for r in refusals if r["change_id"] in poison.values()} == set(poison)
        assert (await client.get("/refusals", params={"provider_code": OTHER})).status_code == 403

        # a refused change sent again is refused again but counted once; what follows is stored
        async with adapter_for(infra, exchange) as adapter:
            await adapter.upsert(register, b, {"统一社会信用代码": b, "法人": "张三"}, 5)
            await adapter.upsert(register, b, {"统一社会信用代码": b, "企业名称": "吉安乙公司"}, 9)

        async def version_9() -> bool:
            found = await record(register, b)
            return bool(found and found["source_version"] == 9)

        assert await until(version_9)
        again = (await client.get("/refusals")).json()
        assert [r["change_id"] for r in again].count(poison["field.unknown"]) == 1

        # one subject across resources, for those entitled; another department sees none of it
        across = (await client.get(f"/subjects/{a}/records")).json()
        assert {r["resource_code"] for r in across} == {register, licences}
        stranger = bearer(OTHER, Role.DATA_ADMINISTRATOR)
        assert (await client.get(f"/subjects/{a}/records", headers=stranger)).json() == []
        assert (await client.get("/subjects/123/records")).status_code == 422

        # the change feed, in order, from any point
        feed = (await client.get(f"/resources/{register}/changes", params={"since": 0})).json()
        assert [f["sequence"] for f in feed] == list(range(1, len(feed) + 1))
        stored = {(f["subject_key"], f["source_version"], f["operation"]) for f in feed}
        assert {(b, 9, "UPSERT"), (b, 8, "UPSERT"), (a, 2, "UPSERT"), (c, 2, "DELETE")} <= stored
        assert (a, 1, "UPSERT") not in stored
        later = (await client.get(f"/resources/{register}/changes", params={"since": len(feed) - 1})).json()
        assert [f["sequence"] for f in later] == [len(feed)]
        state = (await client.get(f"/resources/{register}")).json()
        assert state["sequence"] == len(feed) and state["records"] == 2 and state["key_item"] == "统一社会信用代码"

        # freshness: the weekly resource with no change for 9 days is reported, the others are not (the shared broker
        # also carries other tests' publications, which this exchange reads too: only this test's codes are judged)
        reported = {r["resource_code"] for r in (await client.get("/resources/stale")).json()}
        assert reported & {register, licences, stale} == {stale}


ALL_DIGIT_CREDIT_CODE = "914403001922038216"  # a valid credit code shaped like a citizen ID


async def test_keys_are_checked_as_the_resource_declares_them(infra, topics, services, tmp_path) -> None:
    enterprises, persons = (f"{n}01001/{uuid.uuid4().int % 10**6:06d}" for n in (1, 2))
    person_items = [{"name": "公民身份号码", "type": "string", "length": 18}, {"name": "姓名", "type": "string"}]
    exchange = await exchange_knowing(
        infra,
        services,
        tmp_path,
        catalog_published(enterprises, PROVIDER, ITEMS),
        catalog_published(persons, PROVIDER, person_items),
    )
    key = ALL_DIGIT_CREDIT_CODE
    async with adapter_for(infra, exchange) as adapter:
        as_person = await adapter.upsert(persons, key, {"公民身份号码": key, "姓名": "张三"}, 1)
        as_enterprise = await adapter.upsert(enterprises, key, {"统一社会信用代码": key, "企业名称": "深圳某公司"}, 1)

    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    record = await exchange.wait_status(f"/resources/{enterprises}/records/{key}", 200, headers=admin)
    assert record["subject_kind"] == "credit_code" and record["fields"]["企业名称"] == "深圳某公司"
    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
        across = await client.get(f"/subjects/{key}/records")
        assert across.status_code == 200 and [r["resource_code"] for r in across.json()] == [enterprises]
        assert (await client.get(f"/resources/{enterprises}")).json()["key_kind"] == "credit_code"

        async def refused() -> list:  # the topic holds earlier tests' changes too: only this test's count
            found = (await client.get("/refusals")).json()
            return [(r["change_id"], r["rule"]) for r in found if r["change_id"] in (as_person, as_enterprise)]

        refusals = await until(refused)
    # the same key is no citizen ID: refused where the resource is keyed by citizen IDs, and only there
    assert refusals == [(as_person, "subject_key.birth_date")]
    dead = await read_topic(
        infra.bootstrap, "exchange.data-changes.dlq", 1, where=lambda r: headers_of(r)["event_id"] == as_person
    )
    assert "subject_key.birth_date" in headers_of(dead[0])["dlq.reason"]


async def test_sync_sends_only_changes_and_the_digest_finds_what_differs(infra, topics, services, tmp_path) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS))
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)

    source = tmp_path / "register.csv"

    def write(rows: range, renamed: set[int] = frozenset()) -> None:
        lines = ["统一社会信用代码,企业名称,注册资本,成立日期,在业,备注"]
        for n in rows:
            name = f"吉安{n}号公司" + ("（更名）" if n in renamed else "")
            lines.append(f"{enterprise(n)},{name},{n * 10.5},2020-01-{n % 28 + 1:02d},是,内部备注")
        lines.append("91360800MA0000000X,坏代码公司,1,2020-01-01,是,")  # fails its check: skipped, reported
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    from datashare_adapter.sources import read_file

    snapshot = Snapshot(tmp_path / "state.sqlite")
    rows = lambda: read_file(source)  # noqa: E731
    write(range(1, 301))
    async with adapter_for(infra, exchange) as adapter:
        first = await sync(adapter, snapshot, code, rows, progress=False)
    assert (first.sent_upserts, first.sent_deletions, first.unchanged) == (300, 0, 0)
    assert len(first.skipped_rows) == 1 and first.ignored_columns == ["备注"]

    write(range(2, 302), renamed={5, 6})  # 1 gone, 301 new, 5 and 6 renamed
    async with adapter_for(infra, exchange) as adapter:
        second = await sync(adapter, snapshot, code, rows, progress=False)
    assert (second.sent_upserts, second.sent_deletions, second.unchanged) == (3, 1, 297)

    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:

        async def caught_up() -> bool:
            return (await client.get(f"/resources/{code}")).json()["records"] == 300

        assert await until(caught_up)
        async with adapter_for(infra, exchange) as adapter:
            clean = await check(adapter, snapshot, code, None)
            assert clean.differing_buckets == 0
            # the center's copy drifts: two records changed and one deleted behind the snapshot's back
            drift = int(time.time() * 1000)
            await adapter.upsert(code, enterprise(10), {"统一社会信用代码": enterprise(10), "企业名称": "错"}, drift)
            await adapter.upsert(code, enterprise(11), {"统一社会信用代码": enterprise(11), "企业名称": "错"}, drift)
            await adapter.delete(code, enterprise(12), drift)

        async def drifted() -> bool:
            return (await client.get(f"/resources/{code}")).json()["records"] == 299

        assert await until(drifted)
        async with adapter_for(infra, exchange) as adapter:
            found = await check(adapter, snapshot, code, None)
            assert found.differing_buckets == 3
            repaired = await check(adapter, snapshot, code, rows)
        assert repaired.center_records_fetched < 30 and repaired.resent_upserts == 3
        fixed = await until(lambda: _record_named(client, code, enterprise(10), "吉安10号公司"))
        assert fixed
        assert await until(caught_up)
        async with adapter_for(infra, exchange) as adapter:
            assert (await check(adapter, snapshot, code, None)).differing_buckets == 0
    snapshot.close()


async def _record_named(client: httpx.AsyncClient, code: str, key: str, name: str) -> bool:
    response = await client.get(f"/resources/{code}/records/{key}")
    return response.status_code == 200 and response.json()["fields"]["企业名称"] == name


async def test_a_department_without_an_adapter_uploads_a_file(infra, topics, services, tmp_path) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS))
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    good = f"统一社会信用代码,企业名称,注册资本\n{enterprise(1)},甲,10\n{enterprise(2)},乙,20.5\n".encode()
    broken = f"统一社会信用代码,企业名称,注册资本\n{enterprise(3)},丙,很多\n91360800MA0000000X,丁,1\n".encode()
    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
        refused = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", broken)})
        assert refused.status_code == 422 and "row 2" in refused.text and "row 3" in refused.text
        compiler = bearer(PROVIDER, Role.CATALOG_COMPILER)
        denied = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", good)}, headers=compiler)
        assert denied.status_code == 403
        sent = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", good)})
        assert sent.status_code == 202 and sent.json() == {"sent": 2}

        async def stored() -> bool:
            return await _record_named(client, code, enterprise(2), "乙")

        assert await until(stored)
        record = (await client.get(f"/resources/{code}/records/{enterprise(2)}")).json()
        assert record["fields"]["注册资本"] == 20.5
        assert (await client.get(f"/resources/{code}/records/{enterprise(3)}")).status_code == 404


async def test_the_api_and_the_ingestion_run_as_two_processes(infra, topics, services, tmp_path) -> None:
    """As `make up` and Kubernetes run the exchange: the API process takes an upload and ingests nothing;
    the ingestion process stores it, and answers only health and metrics over HTTP."""
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    api = await exchange_knowing(infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS), role="api")
    good = f"统一社会信用代码,企业名称,注册资本\n{enterprise(1)},甲,10\n{enterprise(2)},乙,20.5\n".encode()
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR)) as client:
        sent = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", good)})
        assert sent.status_code == 202 and sent.json() == {"sent": 2}

        async def stored() -> bool:
            return await _record_named(client, code, enterprise(2), "乙")

        assert not await until(stored, timeout=5), "the API process ingested the upload itself"
        same = {k: v for k, v in api.env.items() if k.endswith(("MONGO_DATABASE", "CONSUMER_GROUP_PREFIX"))}
        ingest = ServiceProcess("exchange", infra, tmp_path, role="ingest")
        ingest.env |= same
        services.append(ingest.start())
        await ingest.wait_ready()
        assert await until(stored)
    async with httpx.AsyncClient(base_url=ingest.url) as client:
        assert (await client.get(f"/resources/{code}")).status_code == 404
        # the ingestion relays the ResourceChanged events it wrote, from an outbox of its own
        metrics = (await client.get("/metrics")).text
        assert relayed(metrics) >= 2, metrics
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert relayed((await client.get("/metrics")).text) == 0


def relayed(metrics: str) -> float:
    lines = [line for line in metrics.splitlines() if line.startswith("datashare_outbox_relayed_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def big_table(folder: Path, rows: int) -> Path:
    lines = ["统一社会信用代码,企业名称,注册资本,成立日期,在业"]
    lines += [f"{enterprise(n)},吉安市第{n}号某某科技有限公司,{n * 10.5},2020-01-01,是" for n in range(1, rows + 1)]
    source = folder / "big.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def descendants(pid: int) -> set[int]:
    """The processes a process started, and theirs, as /proc shows them now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def upload_under_way(client: httpx.AsyncClient, code: str, source: Path, folder: Path) -> asyncio.Task:
    """A big upload sent in the background, returned once the exchange kept its copy in `folder`."""

    async def upload() -> httpx.Response:
        with source.open("rb") as file:
            return await client.post(f"/resources/{code}/uploads", files={"file": ("big.csv", file)}, timeout=300)

    async def kept() -> bool:
        return any(folder.rglob("table"))

    sending = asyncio.create_task(upload())
    assert await until(kept, 60)
    return sending


async def test_a_big_upload_leaves_the_exchange_answering(infra, topics, services, tmp_path) -> None:
    """The file is read and checked off the event loop: health probes are answered all along, and the
    consumers keep their broker sessions."""
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS))
    rows = 40_000  # about 3 MB: read and checked on the event loop, it froze the exchange for 4 s and more
    source = big_table(tmp_path, rows)
    probes: list[float] = []
    async with httpx.AsyncClient(base_url=exchange.url, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR)) as client:

        async def probe(done: asyncio.Event) -> None:
            async with httpx.AsyncClient(base_url=exchange.url, timeout=60) as prober:
                while not done.is_set():
                    started = time.perf_counter()
                    assert (await prober.get("/healthz")).status_code == 200
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

        done = asyncio.Event()
        prober = asyncio.create_task(probe(done))
        with source.open("rb") as upload:
            sent = await client.post(f"/resources/{code}/uploads", files={"file": ("big.csv", upload)}, timeout=300)
        done.set()
        await prober
        assert sent.status_code == 202 and sent.json() == {"sent": rows}
        assert len(probes) > 20 and max(probes) < 3.0, f"/healthz took up to {max(probes):.1f}s during the upload"
        # ingestion goes on: the uploaded rows are being stored (all 40,000 take a minute or more here)
        assert await until(lambda: _record_named(client, code, enterprise(1), "吉安市第1号某某科技有限公司"), 120)
    assert "Heartbeat session expired" not in exchange.log.read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
async def test_an_exchange_ended_mid_upload_leaves_no_worker_and_no_file_behind(
    infra, topics, services, tmp_path, sig
) -> None:
    """Killed (-9, out of memory) or stopped while a worker still signs an upload: the worker, the server
    workers fork from and the copy of the file go with the exchange; a worker waiting to hand on a batch
    nobody reads would wait forever."""
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    # a short temporary folder: the forkserver's socket lives there, and a socket path has at most 107 bytes
    folder = Path(tempfile.mkdtemp(prefix="up-"))
    exchange = await exchange_knowing(
        infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS), environ={"TMPDIR": str(folder)}
    )
    assert exchange.popen
    source = big_table(tmp_path, 40_000)
    async with httpx.AsyncClient(base_url=exchange.url, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR)) as client:
        sending = await upload_under_way(client, code, source, folder)
        await asyncio.sleep(1)
        started = descendants(exchange.popen.pid)
        assert len(started) >= 2  # the server workers fork from, the worker (and the resource tracker)
        os.kill(exchange.popen.pid, sig)  # the exchange alone, not its process group
        await asyncio.to_thread(exchange.wait_exit, 60)
        with contextlib.suppress(httpx.HTTPError):
            await sending

    async def ended() -> bool:
        return not any(running(p) for p in started)

    assert await until(ended, 5), [p for p in started if running(p)]
    # the copy and its folder are gone (multiprocessing's own folder of the forkserver's socket stays)
    assert not list(folder.glob("datashare-upload-*")), list(folder.rglob("*"))


async def test_uploads_beyond_the_slots_are_refused_with_retry_after(infra, topics, services, tmp_path) -> None:
    """Each upload is a worker process and a copy of the file: one more than the exchange takes at once is
    refused at once, with a 503 to be retried as a missing dependency's."""
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    # a short temporary folder: the forkserver's socket lives there, and a socket path has at most 107 bytes
    folder = Path(tempfile.mkdtemp(prefix="up-"))
    exchange = await exchange_knowing(
        infra,
        services,
        tmp_path,
        catalog_published(code, PROVIDER, ITEMS),
        environ={"TMPDIR": str(folder)},
        upload_concurrency="1",
    )
    small = f"统一社会信用代码,企业名称\n{enterprise(1)},甲\n".encode()
    async with httpx.AsyncClient(base_url=exchange.url, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR)) as client:
        # a big table whose last row is broken: checked whole while it holds the slot, then refused, so that
        # nothing lands on the topic the later tests' exchanges read from the start
        broken = big_table(tmp_path, 40_000)
        with broken.open("a", encoding="utf-8") as table:
            table.write(f"{enterprise(40_001)},乙,很多,2020-01-01,是\n")
        sending = await upload_under_way(client, code, broken, folder)
        busy = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", small)})
        assert busy.status_code == 503 and busy.headers["Retry-After"].isdigit()
        assert busy.json()["dependency"] == "uploads" and busy.json()["error"] == "ServiceUnavailable"
        assert (await sending).status_code == 422
        again = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", small)})
        assert again.status_code == 202 and again.json() == {"sent": 1}
    assert not list(folder.glob("datashare-upload-*"))


async def test_resources_stored_before_record_counts_get_theirs_from_the_digest_leaves(infra) -> None:
    db = connect(settings_for(infra))[f"ex_{uuid.uuid4().hex[:8]}"]
    old, counted = "101001/000007", "101001/000008"
    await db[mongo.RESOURCES].insert_many([{"_id": old}, {"_id": counted, "records": 5}])
    await db[mongo.LEAVES].insert_many(
        [
            {"_id": f"{old}|0", "resource_code": old, "top": 0, "sum": {"3": 1, "9": 2}, "count": {"3": 2, "9": 1}},
            {"_id": f"{old}|4", "resource_code": old, "top": 4, "sum": {"1030": 7}, "count": {"1030": 0}},
            {"_id": f"{counted}|0", "resource_code": counted, "top": 0, "sum": {"3": 1}, "count": {"3": 1}},
        ]
    )
    await mongo.count_records(db)
    await mongo.count_records(db)  # at every start: a resource is counted once
    assert {d["_id"]: d["records"] async for d in db[mongo.RESOURCES].find()} == {old: 3, counted: 5}
    await db.client.drop_database(db.name)
    await db.client.close()


async def test_a_withdrawal_that_overtakes_its_publication_still_counts(infra, services, tmp_path: Path) -> None:
    """Publications and withdrawals come on different topics: the entry's versions decide, not arrival."""
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path)
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    broker = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await broker.start()

    async def withdraw(version: int) -> None:
        """Publish a withdrawal and wait until the exchange committed past it."""
        sent = await publisher.publish("catalog.entry-events", catalog_withdrawn(code, PROVIDER, version))
        where = TopicPartition(sent.topic, sent.partition)

        async def committed() -> bool:
            offsets = await broker.list_consumer_group_offsets(f"{exchange.group_prefix}exchange-catalog")
            return where in offsets and offsets[where].offset > sent.offset

        assert await until(committed)

    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    try:
        async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:

            async def published(expected: bool):
                response = await client.get(f"/resources/{code}")
                return response.status_code == 200 and response.json()["published"] is expected

            await withdraw(1)
            await publisher.publish("catalog.published", catalog_published(code, PROVIDER, ITEMS, version=1))
            assert await until(lambda: published(False))
            await publisher.publish("catalog.published", catalog_published(code, PROVIDER, ITEMS, version=2))
            assert await until(lambda: published(True))
            await withdraw(1)  # an old withdrawal, late: version 2 stays published
            assert await published(True)
            await withdraw(2)
            assert await published(False)
    finally:
        await publisher.stop()
        await broker.close()
