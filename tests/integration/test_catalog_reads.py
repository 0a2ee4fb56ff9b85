"""What the catalog reads of its database: the start-up migration that derives claims runs once, not at every
start; `/overdue` reads only the entries that may be overdue, a department's own only (review 4 and 6)."""

import uuid
from datetime import date

from common.policy import Role
from common.runtime import Runtime
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
from services.directory.demo_data import credit_code
from tests.integration.conftest import settings_for
from tests.integration.test_catalog_visibility import published_before_the_dictionary
from tests.tokens import bearer

POLICE, HR = credit_code("360800", 7401), credit_code("360800", 7402)
NAMES = {POLICE: "吉安市公安局", HR: "吉安市人力资源和社会保障局"}
OPERATOR = bearer(credit_code("360800", 7400), Role.IT_OFFICE_OPERATOR, subject="it.operator")
POLICE_COMPILER = bearer(POLICE, Role.CATALOG_COMPILER, subject="gaj.compiler")
HR_COMPILER = bearer(HR, Role.CATALOG_COMPILER, subject="rsj.compiler")
TODAY = date(2027, 6, 1)


async def test_claims_are_derived_on_the_first_start_and_later_starts_skip_the_migration(infra) -> None:
    database = f"cat_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("catalog", settings_for(infra, mongo_database=database))
    uow, db = MongoUnitOfWork(runtime), runtime.db
    try:
        await ensure_indexes(db)
        await db[ELEMENTS].insert_one(element_doc(DataElement.define("DE0101", "公民身份号码", ["身份证号"])))
        old = ["104001/000001", "104001/000002"]
        await db[ENTRIES].insert_many([entry_doc(published_before_the_dictionary(c, POLICE, f"户籍{c}")) for c in old])

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
        await db[ENTRIES].insert_one(entry_doc(published_before_the_dictionary(late, POLICE, "户籍3")))
        await derive_claims(uow)
        assert await db[CLAIMS].count_documents({"resource_code": late}) == 0
        assert await db[CLAIMS].count_documents({}) == 2
        assert await db[MIGRATIONS].find_one({"_id": DERIVE_CLAIMS}) == marker  # recorded once, kept
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()
