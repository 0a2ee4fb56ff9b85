"""What reading a busy department's inbox costs: 20,000 notices of one department (most of them data changes for
its data administrators) beside other departments' notices, read as a compiler's page, a data administrator's
unread count and a machine's page. The baseline, measured in the same run, back to back on the same documents,
is the query as it was: its filter on the array fields `channels` and `audience`, which the local database
answers by reading the whole collection. Also what storing costs with the inbox's keys and index: fan-outs of
1,000 notices stored in the notices' transactions, alternately as they were (their documents and indexes then)
and as they are."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

from bench.idle import _cpu_seconds
from bench.report import write_result
from common.policy import Role
from common.runtime import Runtime
from common.settings import ServiceSettings
from devstack.processes import Infra
from services.notifier.adapters.mongo import (
    INBOX,
    MongoUnitOfWork,
    Retention,
    _to_doc,
    ensure_indexes,
    inbox_pipeline,
)
from services.notifier.domain.notifications import (
    CATALOG_STAFF,
    COMPILERS,
    DATA_ADMINISTRATORS,
    DEMAND_FILERS,
    DEPARTMENT,
    REVIEWERS,
    Notification,
    NotificationKind,
)
from services.notifier.ports import InboxQuery

DEPARTMENT_CODE = "11360800MB2000001N"
NOTICES = 20_000
OTHERS, OTHERS_EACH = 100, 100  # other departments' notices in the same collection
REPEATS = 5
FAN_OUT, FAN_OUTS = 1_000, 16
GOAL = (
    "a person's inbox page and unread count read from the index in at most half the array filter's time; storing a "
    "fan-out at most 10% more database CPU"
)
PEOPLE = ("compiler's page", "data administrator's unread count")
NEWEST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def _notices(recipient: str, count: int, start: datetime) -> list[Notification]:
    other = [DEPARTMENT, COMPILERS, REVIEWERS, CATALOG_STAFF, DEMAND_FILERS]
    made = []
    for n in range(count):
        changes = n % 10 < 7  # most of a busy department's notices: its held resources changed
        made.append(
            Notification(
                f"bench-{n}:{recipient}",
                recipient,
                NotificationKind.RESOURCE_CHANGED if changes else NotificationKind.OTHER,
                "数据变更",
                "1,204 条记录发生变化",
                created_at=start + timedelta(seconds=n),
                resource_code=f"101001/{n % 50:06d}",
                read_by=frozenset({"person:admin-1"}) if n % 3 == 0 else frozenset(),
                audience=DATA_ADMINISTRATORS if changes else other[n % len(other)],
            )
        )
    return made


def _before(query: InboxQuery) -> dict[str, Any]:
    """The inbox's filter before its index: on the array fields."""
    where: dict[str, Any] = {"recipient_code": query.department_code, "channels": "INBOX"}
    if query.roles is not None:
        where["audience"] = {"$in": [None, *sorted(r.value for r in query.roles)]}
    if query.unread_only:
        where |= {"read": False, "read_by": {"$ne": query.reader}}
    return where


async def _read_before(db: Any, query: InboxQuery) -> tuple[list[str], int]:
    where = _before(query)
    total = await db[INBOX].count_documents(where)
    docs = await db[INBOX].find(where).sort(NEWEST).skip(query.offset).limit(query.limit).to_list()
    return [d["_id"] for d in docs], total


async def _timed(read: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    found = await read()
    return time.perf_counter() - started, found


async def _reads(runtime: Runtime, uow: MongoUnitOfWork) -> dict[str, Any]:
    db = runtime.db
    queries = {
        "compiler's page": InboxQuery(DEPARTMENT_CODE, roles=frozenset({Role.CATALOG_COMPILER}), limit=100),
        "data administrator's unread count": InboxQuery(
            DEPARTMENT_CODE, unread_only=True, roles=frozenset({Role.DATA_ADMINISTRATOR}), reader="person:admin-1",
            limit=1,
        ),
        "machine's page": InboxQuery(DEPARTMENT_CODE, limit=100),
    }  # fmt: skip
    results: dict[str, Any] = {}
    for name, query in queries.items():
        before_times, after_times = [], []
        for _ in range(REPEATS):  # alternately, back to back
            took, before = await _timed(lambda q=query: _read_before(db, q))
            before_times.append(took)
            took, after = await _timed(lambda q=query: uow.inbox(q))
            after_times.append(took)
            assert ([n.notification_id for n in after[0]], after[1]) == before, name  # the same notices
        results[name] = {
            "matching": before[1],
            "array_filter_s": round(statistics.median(before_times), 3),
            "index_s": round(statistics.median(after_times), 3),
            "plan": await _plan(db, {"aggregate": INBOX, "pipeline": inbox_pipeline(query), "cursor": {}}),
            "plan_before": await _plan(db, {"find": INBOX, "filter": _before(query), "sort": dict(NEWEST)}),
        }
    return results


async def _plan(db: Any, command: dict[str, Any]) -> str:
    """The stages of the first winning plan the database explains for `command` (an aggregate's: its first
    stage's), outermost first."""
    explained = await db.command("explain", command)
    todo: list[Any] = [explained]
    while todo and not (isinstance(todo[0], dict) and "winningPlan" in todo[0]):
        here = todo.pop(0)
        todo += list(here.values()) if isinstance(here, dict) else here if isinstance(here, list) else []
    stages, plan = [], todo[0]["winningPlan"] if todo else None
    while isinstance(plan, dict):
        stages.append(f"{plan['stage']}({plan['indexName']})" if "indexName" in plan else plan.get("stage", "?"))
        plan = plan.get("inputStage")
    return " > ".join(stages)


async def _stores(infra: Infra, database_pid: int | None) -> dict[str, Any]:
    """Fan-outs of FAN_OUT notices stored in transactions, alternately as before (documents without the inbox's
    keys, the (recipient, newest) index) and now (with them and the inbox index): the time each took, and the
    database's CPU time for it (less disturbed by other load on the machine)."""
    times: dict[str, list[float]] = {"before": [], "now": []}
    cpu: dict[str, list[float]] = {"before": [], "now": []}
    runtimes = {}
    for shape in times:
        database = f"bench_inbox_store_{shape}_{uuid.uuid4().hex[:6]}"
        runtime = Runtime.build("notifier", ServiceSettings(mongo_uri=infra.mongo_uri, mongo_database=database))
        if shape == "now":
            await ensure_indexes(runtime.db, Retention())
        else:
            inbox = runtime.db[INBOX]
            await inbox.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)
            await inbox.create_index([("recipient_code", ASCENDING), *NEWEST])
            await inbox.create_index([("resource_code", ASCENDING), *NEWEST])
        runtimes[shape] = runtime
    start = datetime.now(UTC)
    for round_ in range(FAN_OUTS):
        order = list(runtimes.items())
        for shape, runtime in order if round_ % 2 else order[::-1]:  # neither always goes first
            made = [_notices(f"11360800MB{round_:04d}{d:04d}", 1, start)[0] for d in range(FAN_OUT)]  # a holder each
            docs = [_to_doc(n, Retention()) for n in made]
            if shape == "before":
                for doc in docs:
                    doc.pop("in_inbox"), doc.pop("for_roles")
            started, cpu_before = time.perf_counter(), _cpu_seconds(database_pid) if database_pid else 0.0
            async with runtime.transaction() as tx:
                await tx.db[INBOX].insert_many(docs, session=tx.session)
            times[shape].append(time.perf_counter() - started)
            cpu[shape].append(_cpu_seconds(database_pid) - cpu_before if database_pid else 0.0)
    for runtime in runtimes.values():
        await runtime.client.drop_database(runtime.db.name)
        await runtime.client.close()
    return {
        "wall_s": {shape: round(statistics.median(t), 3) for shape, t in times.items()},
        "database_cpu_s": {shape: round(statistics.median(t), 3) for shape, t in cpu.items()},
    }


async def run(infra: Infra) -> None:
    database = f"bench_inbox_{uuid.uuid4().hex[:6]}"
    runtime = Runtime.build("notifier", ServiceSettings(mongo_uri=infra.mongo_uri, mongo_database=database))
    uow = MongoUnitOfWork(runtime, Retention())
    try:
        await ensure_indexes(runtime.db, Retention())
        await runtime.db[INBOX].create_index([("recipient_code", ASCENDING), *NEWEST])  # the baseline's index
        start = datetime.now(UTC) - timedelta(days=1)  # data-change notices expire 90 days after their issue
        made = _notices(DEPARTMENT_CODE, NOTICES, start)
        for d in range(OTHERS):
            made += _notices(f"11360800MB3{d:06d}", OTHERS_EACH, start)
        for low in range(0, len(made), 1_000):
            await runtime.db[INBOX].insert_many([_to_doc(n, Retention()) for n in made[low : low + 1_000]])
        reads = await _reads(runtime, uow)
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()
    database = next((p.pid for p in infra.procs if p.name == "mongodb"), None)
    stores = await _stores(infra, database)
    page = reads["compiler's page"]
    met = all(reads[q]["index_s"] <= reads[q]["array_filter_s"] / 2 for q in PEOPLE)
    met = met and stores["database_cpu_s"]["now"] <= 1.1 * stores["database_cpu_s"]["before"]
    result = write_result(
        "notifier-inbox",
        metric="a compiler's inbox page and its total, 20,000 notices of her department",
        unit="s",
        value=page["index_s"],
        baseline_name="the same query on the array fields channels and audience",
        baseline_value=page["array_filter_s"],
        goal=GOAL,
        met=met,
        details={
            "notices": {"department": NOTICES, "other_departments": OTHERS * OTHERS_EACH},
            "reads_median_of": REPEATS,
            "reads": reads,
            "store_fan_out_of_1000": stores | {"median_of": FAN_OUTS},
            "store_cost_ratio": {
                k: round(v["now"] / v["before"], 3) if v["before"] else None for k, v in stores.items()
            },
        },
    )
    print(result)
