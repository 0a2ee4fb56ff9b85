"""Concurrent changes through the running catalog: what one change checks, a concurrent one cannot undo unseen
(issue 14, the races left): two definitions of one name, a withdrawal racing an approval that refers to the
withdrawn entry's element. The loser of a write conflict is run again and refused for a reason, never a 503."""

import asyncio

import httpx

from tests.integration.test_catalog_dictionary import ENTRY, OPERATOR, TAX, TRANSPORT, people, start_catalog


async def test_two_definitions_at_once_cannot_both_admit_one_name(infra, topics, services, tmp_path) -> None:
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:
        for n in range(5):
            both = [
                client.post(
                    "/elements",
                    headers=OPERATOR,
                    json={"identifier": f"DE94{n}{i}", "name": f"同名{n}{i}", "aliases": [f"共用别名{n}"]},
                )
                for i in range(2)
            ]
            answers = await asyncio.gather(*both)
            assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
            [refused] = [a.json() for a in answers if a.status_code == 409]
            assert f"共用别名{n}" in refused["rule"]
        named = [e for e in (await client.get("/elements", headers=OPERATOR)).json() if "共用别名0" in e["aliases"]]
        assert len(named) == 1


async def test_a_withdrawal_racing_an_approval_never_leaves_a_reference_without_a_provider(
    infra, topics, services, tmp_path
) -> None:
    catalog = await start_catalog(infra, services, tmp_path)
    transport, tax = people(TRANSPORT, "jtj"), people(TAX, "sw")
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        async def submitted(who: tuple, provider: str, name: str, item: dict) -> dict:
            body = {"classification": "101001", "provider_code": provider, "name": name, "data_items": [item], **ENTRY}
            entry = await call("POST", "/entries", who[0], body, 201)
            return await call(
                "POST", f"/entries/{entry['resource_code']}/submit", who[0], {"revision": entry["revision"]}
            )

        async def approved(who: tuple, entry: dict) -> dict:
            code = entry["resource_code"]
            return await call("POST", f"/entries/{code}/approve", who[1], {"revision": entry["revision"]})

        for n in range(4):
            element = f"DE95{n:02d}"
            await call("POST", "/elements", OPERATOR, {"identifier": element, "name": f"道路运输证号{n}"}, 201)
            source = await approved(
                transport,
                await submitted(
                    transport, TRANSPORT, f"道路运输证{n}", {"name": f"道路运输证号{n}", "source_of": element}
                ),
            )
            referring = await submitted(tax, TAX, f"运输纳税{n}", {"name": f"运输证{n}", "refers_to": element})
            withdraw = {"revision": source["revision"], "reason": "停止采集"}
            answers = await asyncio.gather(
                client.post(
                    f"/entries/{referring['resource_code']}/approve",
                    headers=tax[1],
                    json={"revision": referring["revision"]},
                ),
                client.post(f"/entries/{source['resource_code']}/withdraw", headers=transport[2], json=withdraw),
            )
            statuses = [a.status_code for a in answers]
            assert 503 not in statuses and statuses.count(200) == 1, [a.text for a in answers]
            now_source = await call("GET", f"/entries/{source['resource_code']}", transport[0])
            now_referring = await call("GET", f"/entries/{referring['resource_code']}", tax[0])
            # never both: a published reference to an element whose only source was withdrawn
            assert not (now_referring["in_force"] and now_source["in_force"] is None)
            if statuses[1] == 409:
                assert answers[1].json()["code"] == "catalog.source.withdrawal_referred"
