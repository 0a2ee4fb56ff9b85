"""Catalog search: 100k generated entries in Chinese, indexed and then searched by 1,000 mixed queries.

The queries are typed as people type them: single words and phrases, abbreviations and synonyms (社保, 户口,
身份证), traditional characters, pinyin and its initials, the beginning of a word, long phrases of which no
entry holds every word, filters by Chinese label, stop words alone. Each is asked as a reader of one of the
departments (others' unpublished entries hidden), with any word matching and more words ranking first.

Measured in the same run:
- indexing: entries/s put into the catalog's index, against segmentation alone of the same texts;
- start-up: the catalog's real path, the entries read back from MongoDB through its change-stream follower;
- queries: p50/p95/p99 latency of the index, against a substring scan over the same entries (what a
  search without an index would do);
- the same queries through HTTP: the catalog service as its own process over the same 100k entries in
  MongoDB, `GET /search` with a bearer token, one connection, one request at a time (token check, access
  rule, department names (cached), response model and JSON included).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import opencc
from pypinyin import Style, lazy_pinyin

from bench.ingest import cpu_seconds
from bench.report import write_result
from common.auth import TokenIssuer, generate_signing_key, jwks, load_signing_key
from common.identifiers import credit_code_check_character
from common.mongo import connect
from common.policy import Principal, Role
from common.settings import ServiceSettings
from devstack.processes import ROOT, Infra, free_port
from services.catalog.adapters.mongo import DEPARTMENTS, ENTRIES, EntryFollower, entry_doc
from services.catalog.adapters.search import CatalogSearchIndex, index_terms
from services.catalog.domain.entries import (
    CatalogEntry,
    Category,
    DataItem,
    EntryContent,
    ItemType,
    ShareMethod,
    ShareType,
    UpdateCycle,
    VersionStatus,
)
from services.catalog.domain.search import LABELS, Facet, SearchQuery, Viewer, document_of

SUBJECTS = (
    "企业 个体工商户 社会组织 事业单位 人口 户籍 婚姻 出生 死亡 社保 医保 公积金 不动产 房屋 土地 林权 车辆 驾驶证"
    " 营业执照 食品经营 药品 医疗机构 学校 学籍 教师资格 纳税 发票 信用 行政处罚 行政许可 环境监测 排污许可 水质"
    " 气象 交通 公交 道路 桥梁 建筑 工程项目 招投标 财政 专项资金 农业 农机 补贴 低保 残疾人 养老 退役军人 优抚"
    " 殡葬 慈善 消防 安全生产 应急 地震 水利 河道 水库 电力 燃气 供水 通信 旅游 文物 体育 统计 价格 质量 计量"
    " 特种设备 知识产权 商标 专利"
).split()
ASPECTS = (
    "登记 注册 变更 注销 备案 审批 许可 监管 检查 处罚 缴费 参保 发放 申报 统计 监测 核验 证照 档案 名录 评价".split()
)
SUFFIXES = "信息 基本信息 数据 记录 目录 明细 汇总信息 情况".split()
ITEMS = (
    "统一社会信用代码 企业名称 法定代表人 注册资本 成立日期 经营范围 住所 登记机关 公民身份号码 姓名 性别 出生日期"
    " 民族 户籍地址 联系电话 缴费基数 缴费金额 参保日期 不动产单元号 权利人 坐落 面积 用途 车牌号码 车辆类型 发证日期"
    " 有效期 许可证编号 处罚决定书文号 违法事实 处罚金额 监测点位 监测时间 监测值 项目名称 项目编号 中标单位 合同金额"
    " 补贴金额 发放日期 学校名称 学籍号 年级 经度 纬度 行政区划代码 数据更新时间"
).split()
USES = "行政审批 市场监管 社会保障 城市管理 应急管理 公共服务 统计分析 信用评价".split()
STATUSES = [VersionStatus.PUBLISHED] * 7 + [VersionStatus.DRAFT, VersionStatus.SUBMITTED, VersionStatus.WITHDRAWN]
TYPED = "社会保险 医疗保险 户口 身份证 房产 驾照 公积金 低保 个体户 信用代码".split()  # other words for SUBJECTS, ITEMS
PHRASES = "信息查询 数据查询 情况统计 明细下载".split()
_S2T = opencc.OpenCC("s2t")


def providers(n: int = 60) -> list[str]:
    codes = []
    for i in range(n):
        body = f"11360800MB{i:07d}"
        codes.append(body + credit_code_check_character(body))
    return codes


def entries(n: int, rng: random.Random) -> list[CatalogEntry]:
    departments = providers()
    made = []
    for i in range(n):
        subject, aspect, suffix = rng.choice(SUBJECTS), rng.choice(ASPECTS), rng.choice(SUFFIXES)
        items = rng.sample(ITEMS, rng.randint(5, 15))
        content = EntryContent(
            name=f"{subject}{aspect}{suffix}",
            abstract=(
                f"本资源记录全市{subject}{aspect}的{suffix}，包括{'、'.join(items[:3])}等，"
                f"由提供部门负责采集和维护，用于{rng.choice(USES)}。"
            ),
            category=(category := rng.choice(list(Category))),
            format="数据库",
            data_items=tuple(DataItem(name, ItemType.STRING, description=f"{name}字段") for name in items),
            share_type=(share := rng.choice(list(ShareType))),
            not_shared_basis="《中华人民共和国保守国家秘密法》" if share is ShareType.NOT_SHARED else "",
            share_methods=frozenset(rng.sample(list(ShareMethod), rng.randint(1, 2))),
            update_cycle=rng.choice(list(UpdateCycle)),
        )
        klass = list(Category).index(category) + 1  # the class digit agrees with the category (1 基础 …)
        code = f"{klass}{rng.randint(1, 9):02d}{rng.randint(1, 99):03d}/{i + 1:06d}"
        entry = CatalogEntry.draft(code, rng.choice(departments), content, "bench")
        made.append(replace(entry, versions=(replace(entry.latest, status=rng.choice(STATUSES)),)))
    return made


def queries(n: int, rng: random.Random, codes: list[str]) -> list[SearchQuery]:
    departments = providers()
    made = []
    for _ in range(n):
        viewer = Viewer(rng.choice(departments))
        kind = rng.random()
        subject, aspect = rng.choice(SUBJECTS), rng.choice(ASPECTS)
        if kind < 0.2:
            made.append(SearchQuery(subject, viewer=viewer))
        elif kind < 0.35:
            made.append(SearchQuery(f"{subject}{aspect}", viewer=viewer))
        elif kind < 0.45:
            made.append(SearchQuery(rng.choice(TYPED), viewer=viewer))  # abbreviations and synonyms
        elif kind < 0.5:
            made.append(SearchQuery(_S2T.convert(f"{subject}{aspect}"), viewer=viewer))  # traditional characters
        elif kind < 0.55:
            style = rng.choice([Style.NORMAL, Style.FIRST_LETTER])
            made.append(SearchQuery("".join(lazy_pinyin(subject, style=style)), viewer=viewer))  # pinyin, initials
        elif kind < 0.6:
            made.append(SearchQuery(f"{subject}{aspect[0]}", viewer=viewer))  # the beginning of a word
        elif kind < 0.7:
            made.append(SearchQuery(f"{subject}{aspect}{rng.choice(PHRASES)}", viewer=viewer))  # a long phrase
        elif kind < 0.8:
            filters = {
                Facet.STATUS: frozenset({"PUBLISHED"}),
                Facet.SHARE_TYPE: frozenset({rng.choice(list(ShareType))}),
            }
            made.append(SearchQuery(rng.choice(ITEMS), filters, viewer=viewer))
        elif kind < 0.87:
            filters = {Facet.PROVIDER: frozenset({rng.choice(departments)}), Facet.UPDATE_CYCLE: frozenset({"DAILY"})}
            made.append(SearchQuery("", filters, viewer=viewer))
        elif kind < 0.95:
            made.append(SearchQuery(f"{subject} {rng.choice(ITEMS)} {rng.choice(USES)}", viewer=viewer))
        elif kind < 0.97:
            made.append(SearchQuery(f"{subject}{aspect}", match_all=True, viewer=viewer))
        elif kind < 0.98:
            made.append(SearchQuery("的 和", viewer=viewer))  # stop words alone: nothing, and a note
        else:
            made.append(SearchQuery(rng.choice(codes), viewer=viewer))
    return made


def http_params(query: SearchQuery) -> dict[str, object]:
    """The query as a reader sends it to `GET /search`, enumerations by their Chinese labels."""
    params: dict[str, object] = {"q": query.text, "match": "all" if query.match_all else "any", "limit": query.limit}
    for facet, values in query.filters.items():
        labels = LABELS.get(facet, {})
        params[facet.value] = [labels.get(v, v) for v in values]
    return params


def substring_scan(texts: list[tuple[str, str]], query: SearchQuery) -> int:
    words = query.text.split() or [""]
    return sum(1 for _, text in texts if all(w in text for w in words))


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


async def load_through_mongo(mongo_uri: str, database: str, made: list[CatalogEntry]) -> tuple[float, int]:
    """Entries/s of the catalog's start-up: stored entries read back into a fresh index."""
    settings = ServiceSettings(mongo_uri=mongo_uri, mongo_database=database)
    client = connect(settings)
    db = client[settings.mongo_database]
    docs = [entry_doc(e) for e in made]
    for start in range(0, len(docs), 2000):  # smaller batches: the local database answers each in time
        await db[ENTRIES].insert_many(docs[start : start + 2000], ordered=False)
    names = [{"_id": code, "name": f"吉安市第{i + 1}局"} for i, code in enumerate(providers())]
    await db[DEPARTMENTS].insert_many(names)
    index = CatalogSearchIndex()
    follower = EntryFollower(db, index)
    began = time.perf_counter()
    task = asyncio.create_task(follower.run())
    failures = 0
    while not follower.caught_up:
        if task.done():  # the service's runtime starts a failed follower again; so does the benchmark, twice
            failures += 1
            if failures > 2:
                task.result()
            print(f"search: the follower failed ({task.exception()!r}); starting it again", flush=True)
            task = asyncio.create_task(follower.run())
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    return len(index) / elapsed, len(index)


def spawn_catalog(infra: Infra, database: str, jwks_json: dict, logs: Path) -> tuple[subprocess.Popen, int]:
    """The catalog service as its own process, as it runs in production."""
    port = free_port()
    env = {
        **os.environ,
        "CATALOG_HTTP_PORT": str(port),
        "CATALOG_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "CATALOG_MONGO_URI": infra.mongo_uri,
        "CATALOG_MONGO_DATABASE": database,
        "CATALOG_AUTH_JWKS": json.dumps(jwks_json),
        "CATALOG_CONSUMER_GROUP_PREFIX": f"bench{port}-",
        "CATALOG_LOG_LEVEL": "WARNING",
    }
    with open(logs / "catalog.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.catalog"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return proc, port


async def through_http(infra: Infra, database: str, asked: list[SearchQuery]) -> tuple[list[float], float, float]:
    """Latencies (ms) of the queries sent to the catalog service running as its own process, how long it took
    to become ready over the stored entries, and the service's CPU time per query (ms): what a query costs
    however busy the machine is."""
    key = load_signing_key(generate_signing_key())
    issuer = TokenIssuer(key, "jian-datashare", "jian-datashare", ttl_seconds=24 * 3600)
    tokens: dict[str, str] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-search-"))
    proc, port = spawn_catalog(infra, database, jwks(key), logs)
    latencies: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            began = time.perf_counter()
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the catalog stopped; see {logs}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            ready = time.perf_counter() - began
            cpu_before = 0.0
            for n, q in enumerate([*asked[:50], *asked]):  # the first 50 warm up
                if n == 50:
                    cpu_before = cpu_seconds(proc.pid)
                viewer = q.viewer.department_code if q.viewer else providers()[0]
                if viewer not in tokens:
                    principal = Principal("bench", viewer, frozenset({Role.CATALOG_COMPILER}))
                    tokens[viewer] = issuer.issue(principal)[0]
                began = time.perf_counter()
                response = await client.get(
                    "/search", params=http_params(q), headers={"authorization": f"Bearer {tokens[viewer]}"}
                )
                latencies.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
            cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / len(asked)
    finally:
        proc.terminate()
        proc.wait(20)
    return latencies[50:], ready, cpu_ms


async def run(infra: Infra, n_entries: int, n_queries: int) -> None:
    rng = random.Random(20261125)
    began = time.perf_counter()
    made = entries(n_entries, rng)
    docs = [document_of(e) for e in made]
    print(f"search: {len(docs):,} entries generated in {time.perf_counter() - began:.1f}s", flush=True)

    began = time.perf_counter()
    for d in docs:
        for text in (d.name, " ".join(d.item_names), d.abstract, " ".join(d.item_descriptions)):
            index_terms(text)
    segmentation_rate = len(docs) / (time.perf_counter() - began)

    index = CatalogSearchIndex()
    began = time.perf_counter()
    for d in docs:
        index.put(d)
    indexing_rate = len(docs) / (time.perf_counter() - began)
    database = f"bench_search_{uuid.uuid4().hex[:8]}"
    startup_rate, loaded = await load_through_mongo(infra.mongo_uri, database, made)

    asked = queries(n_queries, rng, [d.resource_code for d in docs])
    for q in asked[:50]:  # warm-up: the first query of a word freezes its postings
        index.search(q)
    latencies, cpu, totals = [], [], []
    for q in asked:
        began, began_cpu = time.perf_counter(), time.thread_time()
        totals.append(index.search(q).total)
        latencies.append((time.perf_counter() - began) * 1000)
        cpu.append((time.thread_time() - began_cpu) * 1000)  # what the query costs however busy the machine is
    texts = [(d.resource_code, f"{d.name}{d.abstract}{''.join(d.item_names)}") for d in docs]
    scan = []
    for q in asked[:100]:
        began = time.perf_counter()
        substring_scan(texts, q)
        scan.append((time.perf_counter() - began) * 1000)

    over_http, ready_seconds, cpu_ms = await through_http(infra, database, asked)
    client = connect(ServiceSettings(mongo_uri=infra.mongo_uri))
    await client.drop_database(database)
    await client.close()

    p95 = percentile(latencies, 95)
    http_p95 = percentile(over_http, 95)
    common = {"entries": len(docs), "queries": len(asked), "generated_at": datetime.now(UTC).isoformat()}
    write_result(
        "catalog-search",
        metric="query latency p95 (in process, index.search)",
        unit="ms",
        value=p95,
        baseline_name="substring scan p95 (100 of the same queries)",
        baseline_value=percentile(scan, 95),
        goal="p95 <= 50 ms over 100k entries, in process and through HTTP",
        met=p95 <= 50 and http_p95 <= 50,
        details=common
        | {
            "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3),
            "max_ms": round(max(latencies), 3),
            "cpu_p50_ms": round(percentile(cpu, 50), 3),
            "cpu_p95_ms": round(percentile(cpu, 95), 3),
            "mean_hits": round(statistics.mean(totals), 1),
            "http_p50_ms": round(percentile(over_http, 50), 3),
            "http_p95_ms": round(http_p95, 3),
            "http_p99_ms": round(percentile(over_http, 99), 3),
            "http_max_ms": round(max(over_http), 3),
            "http_server_cpu_ms_per_query": round(cpu_ms, 3),
            "http_service_ready_s": round(ready_seconds, 1),
            "features": "synonyms, traditional characters, pinyin and initials, partial words, any-word ranking, "
            "visibility per reader's department, Chinese labels in filters",
            "note": "HTTP: the catalog service as its own process, one connection, 20 hits a page, department "
            "names from a cache read from MongoDB at most once a minute",
        },
    )
    write_result(
        "catalog-indexing",
        metric="entries indexed per second (segmentation + postings + columns)",
        unit="entries/s",
        value=indexing_rate,
        baseline_name="segmentation alone",
        baseline_value=segmentation_rate,
        goal=">= 2000 entries/s",
        met=indexing_rate >= 2000,
        details=common | {"startup_from_mongodb_entries_per_s": round(startup_rate, 1), "startup_entries": loaded},
    )
