"""What the catalog reads of its database: the start-up migration that derives claims runs once, not at every
start; `/overdue` reads only the entries that may be overdue, a department's own only (review 4 and 6)."""

import uuid
from dataclasses import replace
from datetime import date

import httpx
from pymongo import AsyncMongoClient

from common.policy import Role
from common.runtime import Runtime
from services.catalog import handlers
from services.catalog.adapters.http import ContentBody
from services.catalog.adapters.mongo import (
    CLAIMS,
    DERIVE_CLAIMS,
    ELEMENTS,
    ENTRIES,
    MIGRATIONS,
    MongoUnitOfWork,
    derive_claims,
    element_doc,
    ensure_indexes,
    entry_doc,
)
from services.catalog.domain.dictionary import DataElement
from services.catalog.domain.entries import CatalogEntry, MaintenanceConfirmed
from services.directory.demo_data import credit_code
from tests.integration.catalog_process import start_catalog
from tests.integration.conftest import settings_for
from tests.integration.test_catalog import COMPLETE
from tests.integration.test_catalog_visibility import published_before_the_dictionary
from tests.tokens import bearer

EMERGENCY, STATS = credit_code("360800", 7401), credit_code("360800", 7402)
# Names no other test gives another code: a catalog reads every test's directory events, and the dictionary's
# import knows a department by its name.
NAMES = {EMERGENCY: "吉安市应急管理局", STATS: "吉安市统计局"}
OPERATOR = bearer(credit_code("360800", 7400), Role.IT_OFFICE_OPERATOR, subject="it.operator")
EMERGENCY_COMPILER = bearer(EMERGENCY, Role.CATALOG_COMPILER, subject="yjj.compiler")
STATS_COMPILER = bearer(STATS, Role.CATALOG_COMPILER, subject="tjj.compiler")
TODAY = date(2027, 6, 1)


async def test_claims_are_derived_on_the_first_start_and_later_starts_skip_the_migration(infra) -> None:
    database = f"cat_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("catalog", settings_for(infra, mongo_database=database))
    uow, db = MongoUnitOfWork(runtime), runtime.db
    try:
        await ensure_indexes(db)
        await db[ELEMENTS].insert_one(element_doc(DataElement.define("DE0101", "公民身份号码", ["身份证号"])))
        old = ["104001/000001", "104001/000002"]
        seeded = [published_before_the_dictionary(c, EMERGENCY, f"危险源{c}") for c in old]
        await db[ENTRIES].insert_many([entry_doc(e) for e in seeded])

        await derive_claims(uow)  # the first start: the entries published before get their claims
        assert sorted([(d["resource_code"], d["element"]) async for d in db[CLAIMS].find({})]) == [
            (old[0], "DE0101"),
            (old[1], "DE0101"),
        ]
        marker = await db[MIGRATIONS].find_one({"_id": DERIVE_CLAIMS})
        assert marker is not None and (marker["entries"], marker["claims_derived"]) == (2, 2)

        # An entry in force without claims put in behind the catalog's back: a later start does not look at it,
        # since the migration does not run again.
        late = "104001/000003"
        await db[ENTRIES].insert_one(entry_doc(published_before_the_dictionary(late, EMERGENCY, "危险源3")))
        await derive_claims(uow)
        assert await db[CLAIMS].count_documents({"resource_code": late}) == 0
        assert await db[CLAIMS].count_documents({}) == 2
        assert await db[MIGRATIONS].find_one({"_id": DERIVE_CLAIMS}) == marker  # recorded once, kept
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()


def published(code: str, provider: str, on: date) -> CatalogEntry:
    content = ContentBody.model_validate({**COMPLETE, "name": f"资源{code}"}).content()
    entry, _ = CatalogEntry.draft(code, provider, content, "seed").submit(None)
    return entry.approve("seed.reviewer", on, None)[0]


def changed(entry: CatalogEntry, changed_on: date, due_on: date) -> CatalogEntry:
    return entry.report_change(changed_on, changed_on, due_on, "字段变化")


def drafted(code: str, provider: str) -> CatalogEntry:
    content = ContentBody.model_validate({**COMPLETE, "name": f"资源{code}"}).content()
    return CatalogEntry.draft(code, provider, content, "seed")


# On TODAY: P1 has a change due 2026-02-20 and its yearly maintenance due 2027-01-05; P2 was published less than a
# year ago; P3's maintenance was confirmed less than a year ago; P4 and P6 were due in May; P5 is a draft; P6 was
# due the day before. STATS's H1 is a year past its maintenance, H2 past a reported change only.
# Sequences no catalog of another test reaches: the catalog started here announces these entries overdue on the
# shared topic, where other tests look for their own entries' events by resource code.
P = [f"101001/97400{n}" for n in range(1, 7)]
H = ["102001/974001", "102001/974002"]
SEEDED = [
    changed(published(P[0], EMERGENCY, date(2026, 1, 5)), date(2026, 2, 12), date(2026, 2, 20)),
    published(P[1], EMERGENCY, date(2026, 9, 1)),
    replace(
        published(P[2], EMERGENCY, date(2026, 3, 10)),
        maintenance=(MaintenanceConfirmed(date(2026, 12, 1), "yjj.admin", "无变化"),),
    ),
    published(P[3], EMERGENCY, date(2026, 5, 1)),
    drafted(P[4], EMERGENCY),
    published(P[5], EMERGENCY, date(2026, 5, 31)),
    published(H[0], STATS, date(2026, 1, 5)),
    changed(published(H[1], STATS, date(2026, 9, 1)), date(2026, 10, 1), date(2026, 10, 10)),
]
EMERGENCY_OVERDUE = [
    ("2026-02-20", P[0], "UPDATE_AFTER_CHANGE"),
    ("2027-01-05", P[0], "YEARLY_MAINTENANCE"),
    ("2027-05-01", P[3], "YEARLY_MAINTENANCE"),
    ("2027-05-31", P[5], "YEARLY_MAINTENANCE"),
]
STATS_OVERDUE = [("2026-10-10", H[1], "UPDATE_AFTER_CHANGE"), ("2027-01-05", H[0], "YEARLY_MAINTENANCE")]


async def test_only_entries_that_may_be_overdue_are_read_and_of_one_provider_when_asked(infra) -> None:
    database = f"cat_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("catalog", settings_for(infra, mongo_database=database))
    uow = MongoUnitOfWork(runtime)
    try:
        await runtime.db[ENTRIES].insert_many([entry_doc(e) for e in SEEDED])
        own = await uow.overdue_candidates(provider_code=EMERGENCY, today=TODAY)
        assert sorted(e.resource_code for e in own) == [P[0], P[3], P[5]]
        everyone = await uow.overdue_candidates(provider_code=None, today=TODAY)
        assert sorted(e.resource_code for e in everyone) == [P[0], P[3], P[5], *H]

        # A year is 366 days across 29 February, and a year after 29 February is 28 February: due to the day.
        leap = [
            published("103001/974001", STATS, date(2027, 3, 1)),
            published("103001/974002", STATS, date(2028, 2, 29)),
        ]
        await runtime.db[ENTRIES].insert_many([entry_doc(e) for e in leap])

        async def overdue_on(day: date) -> list[str]:
            found = await handlers.overdue_entries(uow, day, STATS)
            return [e.resource_code for e, _ in found if e.resource_code.startswith("103001/")]

        assert await overdue_on(date(2028, 3, 1)) == []
        assert await overdue_on(date(2028, 3, 2)) == [leap[0].resource_code]
        assert await overdue_on(date(2029, 2, 28)) == [leap[0].resource_code]
        assert await overdue_on(date(2029, 3, 1)) == [leap[0].resource_code, leap[1].resource_code]
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()


async def test_overdue_pages_a_departments_own_entries_and_all_to_oversight(infra, topics, services, tmp_path):
    database = f"cat_{uuid.uuid4().hex[:8]}"
    mongo = AsyncMongoClient(infra.mongo_uri)
    await mongo[database][ENTRIES].insert_many([entry_doc(e) for e in SEEDED])
    await mongo.close()
    catalog = await start_catalog(infra, services, tmp_path, NAMES, database)
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:

        async def walk(who: dict, **params: str) -> tuple[list[tuple[str, str, str]], set[int]]:
            """Every page of two: the rows and the totals the pages gave."""
            rows, totals, offset = [], set(), 0
            while True:
                answer = await client.get(
                    "/overdue", params={"on": TODAY.isoformat(), "offset": offset, "limit": 2, **params}, headers=who
                )
                assert answer.status_code == 200, answer.text
                page = answer.json()
                totals.add(page["total"])
                rows += [(o["due_on"], o["resource_code"], o["kind"]) for o in page["items"]]
                if len(page["items"]) < 2:
                    return rows, totals
                offset += 2

        assert await walk(EMERGENCY_COMPILER) == (EMERGENCY_OVERDUE, {4})
        assert await walk(EMERGENCY_COMPILER, provider_code=EMERGENCY) == (EMERGENCY_OVERDUE, {4})
        assert await walk(EMERGENCY_COMPILER, provider_code=STATS) == ([], {0})  # another's deadlines are not its own
        assert await walk(STATS_COMPILER) == (STATS_OVERDUE, {2})
        assert await walk(OPERATOR) == (sorted(EMERGENCY_OVERDUE + STATS_OVERDUE), {6})
        assert await walk(OPERATOR, provider_code=STATS) == (STATS_OVERDUE, {2})
        page = (await client.get("/overdue", params={"on": TODAY.isoformat()}, headers=EMERGENCY_COMPILER)).json()
        assert {o["provider_name"] for o in page["items"]} == {"吉安市应急管理局"}
