"""Through running catalogs: claims derived at start for entries published before the dictionary, what another
department reads of an entry's deadlines, duplicate sources kept per replica until a change reaches it, and the
framework's own refusals (403, 422) worded in Chinese beside their machine-readable body (issue 14)."""

import asyncio
import time
import uuid
from datetime import date

import httpx
from pymongo import AsyncMongoClient

from common.policy import Role
from services.catalog.adapters.http import ContentBody
from services.catalog.adapters.mongo import (
    CLAIMS,
    DERIVE_CLAIMS,
    ELEMENTS,
    ENTRIES,
    MIGRATIONS,
    element_doc,
    entry_doc,
)
from services.catalog.domain.dictionary import DataElement
from services.catalog.domain.entries import CatalogEntry
from services.directory.demo_data import credit_code
from tests.integration.catalog_process import start_catalog
from tests.integration.test_catalog import COMPLETE
from tests.tokens import bearer

POLICE, HR = credit_code("360800", 7301), credit_code("360800", 7302)
NAMES = {POLICE: "吉安市公安局", HR: "吉安市人力资源和社会保障局"}
OPERATOR = bearer(credit_code("360800", 7300), Role.IT_OFFICE_OPERATOR, subject="it.operator")
POLICE_ADMIN = bearer(POLICE, Role.DATA_ADMINISTRATOR, subject="gaj.admin")
POLICE_COMPILER = bearer(POLICE, Role.CATALOG_COMPILER, subject="gaj.compiler")
HR_COMPILER = bearer(HR, Role.CATALOG_COMPILER, subject="rsj.compiler")


def published_before_the_dictionary(code: str, provider: str, name: str) -> CatalogEntry:
    items = [{"name": "公民身份号码", "source_of": "DE0101"}, {"name": f"{name}编号"}]
    content = ContentBody.model_validate({**COMPLETE, "name": name, "data_items": items}).content()
    entry, _ = CatalogEntry.draft(code, provider, content, "seed").submit(None)
    return entry.approve("seed.reviewer", date(2026, 1, 5), None)[0]


async def test_claims_are_derived_at_start_and_others_read_no_deadlines(infra, topics, services, tmp_path) -> None:
    database = f"cat_{uuid.uuid4().hex[:8]}"
    police_code, hr_code = "104001/000001", "102001/000001"
    mongo = AsyncMongoClient(infra.mongo_uri)
    await mongo[database][ENTRIES].insert_many(
        [
            entry_doc(published_before_the_dictionary(police_code, POLICE, "户籍人口基本信息")),
            entry_doc(published_before_the_dictionary(hr_code, HR, "参保人员信息")),
        ]
    )
    await mongo[database][ELEMENTS].insert_one(element_doc(DataElement.define("DE0101", "公民身份号码", ["身份证号"])))
    # Two replicas starting at once, both deriving: their transactions on one entry conflict, the loser's setup
    # runs again and finds the claims there.
    first, second = await asyncio.gather(
        start_catalog(infra, services, tmp_path, NAMES, database),
        start_catalog(infra, services, tmp_path, NAMES, database),
    )
    claims = sorted([(d["resource_code"], d["element"]) async for d in mongo[database][CLAIMS].find({})])
    assert claims == [(hr_code, "DE0101"), (police_code, "DE0101")]  # once each, however many starts
    assert await mongo[database][MIGRATIONS].count_documents({"_id": DERIVE_CLAIMS}) == 1
    await mongo.close()

    async with httpx.AsyncClient(base_url=first.url) as a, httpx.AsyncClient(base_url=second.url) as b:
        removal = await a.delete("/elements/DE0101", headers=OPERATOR)
        assert removal.status_code == 409 and "published entries are the source" in removal.text

        async def flagged(client: httpx.AsyncClient) -> list[str]:
            answer = await client.get("/duplicate-sources", headers=OPERATOR)
            assert answer.status_code == 200, answer.text
            return [f["resource_code"] for f in answer.json()["items"]]

        # Two claimants, no assigned source: each is flagged against the other until the IT office decides.
        assert await flagged(b) == [hr_code, police_code]
        element = (await a.get("/elements/DE0101", headers=OPERATOR)).json()
        assigned = {**element, "source_code": POLICE}
        assert (await a.put("/elements/DE0101", json=assigned, headers=OPERATOR)).status_code == 200
        assert await flagged(a) == [hr_code]  # the writer's own answer at once
        deadline = time.monotonic() + 20
        while await flagged(b) != [hr_code]:  # the other replica once the change stream brings the change
            assert time.monotonic() < deadline, "the other replica kept its stale findings"
            await asyncio.sleep(0.2)

        # A change reported: the police see the deadline, the IT office too, the HR bureau nothing of it.
        change = {"changed_on": "2026-02-12", "reason": "新增户籍迁移字段"}
        assert (await a.post(f"/entries/{police_code}/changes", json=change, headers=POLICE_ADMIN)).status_code == 200

        async def overdue(who: dict) -> list[tuple[str, str]]:
            answer = await a.get("/overdue", params={"on": "2027-06-01", "provider_code": POLICE}, headers=who)
            assert answer.status_code == 200, answer.text
            return [(o["resource_code"], o["kind"]) for o in answer.json()["items"]]

        both = [(police_code, "UPDATE_AFTER_CHANGE"), (police_code, "YEARLY_MAINTENANCE")]
        assert await overdue(POLICE_COMPILER) == both and await overdue(OPERATOR) == both
        assert await overdue(HR_COMPILER) == []
        seen = (await a.get(f"/entries/{police_code}", headers=HR_COMPILER)).json()
        assert seen["in_force"] is not None and seen["pending_update"] is None and seen["maintenance_due"] is None
        own = (await a.get(f"/entries/{police_code}", headers=POLICE_COMPILER)).json()
        assert own["pending_update"]["reason"] == "新增户籍迁移字段" and own["maintenance_due"] == "2027-01-05"

        # The framework's own refusals carry a code and a Chinese message beside the body they always had.
        denied = await a.post("/elements", json={"identifier": "DE9901", "name": "某某"}, headers=HR_COMPILER)
        assert denied.status_code == 403
        body = denied.json()
        assert (body["error"], body["rule"], body["code"]) == (
            "AccessDenied",
            "catalog.dictionary.edit",
            "access.denied",
        )
        assert "无权" in body["message"] and body["detail"]
        invalid = await a.get("/overdue", params={"limit": 0}, headers=OPERATOR)
        assert invalid.status_code == 422
        body = invalid.json()
        assert (body["error"], body["field"], body["code"]) == (
            "RequestValidationError",
            "query.limit",
            "request.invalid",
        )
        assert "不能小于 1" in body["message"] and body["rule"]
