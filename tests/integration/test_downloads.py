"""The file-download channel of a running exchange, end to end: a grant made by the sharing lifecycle (request,
decision), exports as CSV, XLSX and JSON Lines with exactly the grant's items and rows, watermarked for their
download; a leaked part of a file, copied into a new CSV and re-ordered by hand, traced back to its download;
refusals without a grant, outside its items, purpose or channel; each fetch a DataAccessed on the topic; an
external-publication consent changing what a download says; files and jobs deleted when their time is up, their
watermarks still traced. One exchange for all of it (about 25 s, most of it the exchange starting and the
topics read back)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from datashare_adapter.identifiers import credit_code_check_character
from openpyxl import load_workbook

from common.codec import EventCodec
from common.mongo import connect
from common.policy import Role
from devstack.samples import catalog_published
from services.exchange.sharing.adapters.download_store import DOWNLOADS, MongoDownloads, download_doc, ensure_indexes
from services.exchange.sharing.downloads import Download, FileFormat, JobStatus, Watermark
from tests.integration.conftest import read_topic, settings_for
from tests.integration.test_api_channel import APPROVAL, ITEMS, PURPOSE, enterprise
from tests.integration.test_exchange import PROVIDER, adapter_for, exchange_knowing, until
from tests.tokens import bearer

CONSUMER = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
PROVIDER_ADMIN = bearer(PROVIDER, Role.DATA_ADMINISTRATOR, subject="market-admin")
IT = bearer("11360800MB4000003" + credit_code_check_character("11360800MB4000003"), Role.IT_OFFICE_OPERATOR)
GRANTED = ["统一社会信用代码", "企业名称", "法定代表人"]
INSIDE = [enterprise("360821", n) for n in range(1, 13)]  # the grant's row scope: 360821
OUTSIDE = [enterprise("360822", n) for n in range(13, 17)]


def entry(code: str, methods: list[str]):
    published = catalog_published(code, PROVIDER, ITEMS)
    published.payload["confidentiality_reviewed_on"] = date(2026, 1, 5)
    published.payload["share_methods"] = methods
    published.payload["data_items"] = [
        stated | {"sensitive": item.get("sensitive", False)}
        for stated, item in zip(published.payload["data_items"], ITEMS, strict=True)
    ]
    return published


async def granted(client: httpx.AsyncClient, code: str, channels: list[str]) -> str:
    """A grant through the sharing lifecycle: the consumer applies, the provider approves (narrower rows)."""
    applied = await client.post(
        "/requests",
        headers=CONSUMER,
        json={"resource_code": code, "items": GRANTED, "regions": ["3608"], "purpose": PURPOSE,
              "channels": channels, "valid_to": str(date.today() + timedelta(days=60)), "unmasked": ["法定代表人"]},
    )  # fmt: skip
    assert applied.status_code == 201, applied.text
    decided = await client.post(
        f"/requests/{applied.json()['request_id']}/decision",
        headers=PROVIDER_ADMIN,
        json={"decision": "APPROVED", "reasons": "审批核验所需", "regions": ["360821"], "unmasked": ["法定代表人"]},
    )
    assert decided.status_code == 200, decided.text
    mine = (await client.get("/grants", params={"as": "consumer"}, headers=CONSUMER)).json()
    return next(g["grant_id"] for g in mine if g["request_id"] == applied.json()["request_id"])


async def finished(client: httpx.AsyncClient, body: dict) -> dict:
    started = await client.post("/downloads", json=body, headers=CONSUMER)
    assert started.status_code == 202, started.text
    assert started.json()["status"] in ("RUNNING", "READY")
    path = f"/downloads/{started.json()['download_id']}"

    async def ready() -> dict | None:
        job = (await client.get(path, headers=CONSUMER)).json()
        return job if job["status"] != "RUNNING" else None

    job = await until(ready, timeout=20)
    assert job and job["status"] == "READY", job
    return job


async def test_a_download_carries_its_grant_and_its_watermark_and_a_copied_part_is_traced(
    infra, topics, services, tmp_path: Path
) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    folder = tmp_path / "downloads"
    api_only = f"101001/{uuid.uuid4().int % 10**6:06d}"
    # what a killed process left: a job RUNNING that no process says alive, its part, and a part of no job
    folder.mkdir(parents=True)
    now = datetime.now(UTC)
    killed = Download(
        "killed-1", Watermark("killed-1", code, PROVIDER, APPROVAL, "g-x", "li", now, "x"), PURPOSE, FileFormat.CSV,
        (), (), None, JobStatus.RUNNING, 10, expires_at=now - timedelta(minutes=1), alive_at=now - timedelta(hours=1),
    )  # fmt: skip
    (folder / "killed-1.csv.part").write_text("half a file")
    (folder / "orphan-1.xlsx.part").write_text("half another")
    an_hour_ago = time.time() - 3600
    for part in folder.iterdir():
        os.utime(part, (an_hour_ago, an_hour_ago))
    exchange = await exchange_knowing(
        infra, services, tmp_path, entry(code, ["API", "FILE_DOWNLOAD"]), entry(api_only, ["API"]),
        download_dir=str(folder), download_keep_seconds="10",  # each file is fetched as soon as it is made
        download_beat_seconds="1",  # a job not said alive for 3 s is abandoned
    )  # fmt: skip
    db = connect(settings_for(infra))[exchange.env["EXCHANGE_MONGO_DATABASE"]]
    await db[DOWNLOADS].insert_one(download_doc(killed))
    async with adapter_for(infra, exchange) as adapter:
        for n, key in enumerate(INSIDE + OUTSIDE):
            fields = {"统一社会信用代码": key, "企业名称": f"吉安{n}号公司", "法定代表人": f"法人{n}"}
            await adapter.upsert(code, key, fields | {"联系电话": "13800000000", "注册资本": 100.0 + n}, 1)
    async with httpx.AsyncClient(base_url=exchange.url, timeout=10) as client:

        async def all_held() -> bool:
            held = await client.get(f"/resources/{code}", headers=PROVIDER_ADMIN)
            return held.json().get("records") == len(INSIDE + OUTSIDE)

        assert await until(all_held)
        grant = await granted(client, code, ["FILE_DOWNLOAD"])
        asked = {"resource_code": code, "grant_id": grant, "purpose": PURPOSE}

        # a CSV: the notice and the watermark first, then exactly the grant's items and rows, each row marked
        job = await finished(client, asked | {"format": "CSV"})
        assert (job["rows_total"], job["rows_done"], job["rows_written"]) == (16, 16, 12)
        assert job["notice"].startswith("仅限政务内部使用") and job["consent_id"] is None
        file = await client.get(job["file"], headers=CONSUMER)
        assert file.status_code == 200, file.text
        lines = file.text.splitlines()
        assert lines[0].startswith("# 说明: 仅限政务内部使用") and job["download_id"] in lines[0] and grant in lines[0]
        table = list(csv.reader(lines[1:]))
        assert table[0] == ["主体标识", *GRANTED, "水印校验码"]
        assert sorted(row[0] for row in table[1:]) == sorted(INSIDE)
        assert all(row[3].startswith("法人") and row[4].startswith("WM") for row in table[1:])

        # XLSX (document properties and a 说明 sheet) and JSON Lines (a first metadata record)
        xlsx_job = await finished(client, asked | {"format": "XLSX", "items": ["统一社会信用代码", "企业名称"]})
        book = load_workbook(io.BytesIO((await client.get(xlsx_job["file"], headers=CONSUMER)).content))
        assert "仅限政务内部使用" in book.properties.subject and book.properties.identifier == xlsx_job["download_id"]
        xlsx_rows = [[str(c or "") for c in row] for row in book["数据"].iter_rows(values_only=True)]
        assert xlsx_rows[0] == ["主体标识", "统一社会信用代码", "企业名称", "水印校验码"] and len(xlsx_rows) == 13
        jsonl_job = await finished(client, asked | {"format": "JSONL", "subject_keys": INSIDE[:3] + OUTSIDE[:1]})
        records = (await client.get(jsonl_job["file"], headers=CONSUMER)).text.splitlines()
        assert json.loads(records[0])["_download"]["下载编号"] == jsonl_job["download_id"]
        assert sorted(json.loads(r)["主体标识"] for r in records[1:]) == sorted(INSIDE[:3])  # scope still applies

        # a leak: five rows of the CSV copied by hand into a new CSV, re-ordered, the mark column moved first
        copied = [table[i] for i in (9, 2, 11, 5, 7)]
        leaked = io.StringIO()
        writer = csv.writer(leaked)
        writer.writerow(["校验", "代码", "名称", "法人", "主体"])
        for row in copied:
            writer.writerow([row[4], row[1], row[2], row[3], row[0]])
        traced = await client.post("/downloads/trace", files={"file": ("part.csv", leaked.getvalue())}, headers=IT)
        assert traced.status_code == 200, traced.text
        [found] = traced.json()["downloads"]
        assert (found["download_id"], found["grant_id"], found["consumer_code"]) == (
            job["download_id"],
            grant,
            APPROVAL,
        )
        assert (found["rows_matched"], found["rows_marked"], found["row_numbers"]) == (5, 5, [2, 3, 4, 5, 6])
        # rows of the XLSX pasted into a CSV lead to that download, not the CSV's
        pasted = "\n".join(",".join(row) for row in xlsx_rows[4:8])
        other = await client.post("/downloads/trace", files={"file": ("x.csv", pasted)}, headers=IT)
        assert [d["download_id"] for d in other.json()["downloads"]] == [xlsx_job["download_id"]]
        not_it = await client.post("/downloads/trace", files={"file": ("x.csv", pasted)}, headers=CONSUMER)
        assert not_it.status_code == 403
        # rows of both files pasted together with tabs: both downloads, each with its rows
        mixed = "\n".join("\t".join(row) for row in table[1:4] + xlsx_rows[4:8])
        both = await client.post("/downloads/trace", files={"file": ("x.tsv", mixed)}, headers=IT)
        assert sorted((d["download_id"], d["row_numbers"]) for d in both.json()["downloads"]) == sorted(
            [(job["download_id"], [1, 2, 3]), (xlsx_job["download_id"], [4, 5, 6, 7])]
        )
        # a file beyond the bound is refused before it is read (the route's own body limit)
        too_big = await client.post("/downloads/trace", files={"file": ("x.csv", b"x" * (17 << 20))}, headers=IT)
        assert too_big.status_code == 413 and "send a part of it" not in too_big.text

        # refused: no such grant, items outside it, another purpose, a grant not opening the file channel,
        # another department; and another department cannot see or fetch the consumer's files
        api_grant, api_only_grant = await granted(client, api_only, ["API"]), await granted(client, code, ["API"])
        refusals = {
            "no such grant for this resource": (asked | {"grant_id": "nope"}, CONSUMER),
            "items outside the grant: 联系电话": (asked | {"items": ["联系电话"]}, CONSUMER),
            "the stated purpose is not the grant's": (asked | {"purpose": "别的用途"}, CONSUMER),
            "not shared through the FILE_DOWNLOAD channel": (
                {"resource_code": api_only, "grant_id": api_grant, "purpose": PURPOSE},
                CONSUMER,
            ),
            "the grant does not open the FILE_DOWNLOAD channel": (asked | {"grant_id": api_only_grant}, CONSUMER),
            "the grant is another department's": (asked, PROVIDER_ADMIN),
        }
        for reason, (body, headers) in refusals.items():
            answer = await client.post("/downloads", json=body, headers=headers)
            assert answer.status_code == 403 and reason in answer.json()["detail"], (reason, answer.text)
        assert (await client.get(job["file"], headers=PROVIDER_ADMIN)).status_code == 404

        # Art. 18: the consumer asks to publish two items, the provider consents; the next download says so
        asked_consent = await client.post(
            "/consents",
            json={"grant_id": grant, "items": ["统一社会信用代码", "企业名称"], "audience": "吉安市政府门户网站",
                  "purpose": "公示企业开办情况"},
            headers=CONSUMER,
        )  # fmt: skip
        assert asked_consent.status_code == 201, asked_consent.text
        consent = asked_consent.json()
        assert consent["status"] == "PENDING" and consent["decide_by"] > consent["requested_on"]
        denied = await client.post(f"/consents/{consent['consent_id']}/decision", headers=CONSUMER,
                                   json={"decision": "APPROVED", "reasons": "自己同意"})  # fmt: skip
        assert denied.status_code == 403
        decided = await client.post(
            f"/consents/{consent['consent_id']}/decision",
            json={"decision": "APPROVED", "reasons": "已脱敏，可公开"},
            headers=PROVIDER_ADMIN,
        )
        assert decided.status_code == 200 and decided.json()["status"] == "APPROVED", decided.text
        again = await client.post(f"/consents/{consent['consent_id']}/decision", headers=PROVIDER_ADMIN,
                                  json={"decision": "DENIED", "reasons": "改变主意"})  # fmt: skip
        assert again.status_code == 409
        for side, headers in (("consumer", CONSUMER), ("provider", PROVIDER_ADMIN)):
            listed = (await client.get("/consents", params={"as": side}, headers=headers)).json()
            assert [c["consent_id"] for c in listed] == [consent["consent_id"]]
        assert consent["consent_id"] in {c["consent_id"] for c in (await client.get("/consents", headers=IT)).json()}
        assert (await client.get("/consents", headers=CONSUMER)).status_code == 403  # all of them: oversight only

        covered = await finished(client, asked | {"items": ["统一社会信用代码", "企业名称"]})
        assert covered["consent_id"] == consent["consent_id"] and "仅限政务内部使用" not in covered["notice"]
        text = (await client.get(covered["file"], headers=CONSUMER)).text
        assert consent["consent_id"] in text.splitlines()[0] and "吉安市政府门户网站" in text.splitlines()[0]
        uncovered = await finished(client, asked)  # 法定代表人 is not covered: internal use only
        assert uncovered["consent_id"] is None and uncovered["notice"].startswith("仅限政务内部使用")
        assert (folder / f"{job['download_id']}.csv").exists()

    # every fetch an access of the file channel with the number of subjects; every refusal with its reason
    codec = EventCodec.from_folder()
    accesses = [
        codec.decode(r.value)[1]
        for r in await read_topic(
            infra.bootstrap, "exchange.data-accesses", 10**6, timeout=3, where=lambda r: code.encode() in r.value
        )
    ]
    fetched = [a for a in accesses if a["result"] == "SERVED" and a["grant_id"] == grant]
    assert {(a["channel"], a["operation"]) for a in fetched} == {("FILE_DOWNLOAD", "download")}
    assert sorted(a["subjects_requested"] for a in fetched) == [3, 12, 12, 12]  # CSV, XLSX, JSON Lines, consented
    assert sorted(len(a["subject_hashes"]) for a in fetched) == [0, 0, 0, 4]  # the listed subjects, hashed
    reasons = " | ".join(a["reason"] or "" for a in accesses if a["result"] == "REFUSED")
    assert "items outside the grant" in reasons and "purpose is not the grant's" in reasons
    shared = await read_topic(
        infra.bootstrap, "exchange.share-events", 10**6, timeout=3,
        where=lambda r: consent["consent_id"].encode() in r.value,
    )  # fmt: skip
    events = {codec.decode(r.value)[0]: codec.decode(r.value)[1] for r in shared}
    assert events["PublicationConsentRequested"]["items"] == ["统一社会信用代码", "企业名称"]
    assert events["PublicationConsentDecided"]["granted"] is True
    assert events["PublicationConsentDecided"]["reasons"] == "已脱敏，可公开"

    # the files' time is up: each file and its job are deleted (the watermarks stay for tracing)
    async with httpx.AsyncClient(base_url=exchange.url, timeout=10) as client:

        async def gone() -> bool:
            answer = await client.get(f"/downloads/{job['download_id']}", headers=CONSUMER)
            return answer.status_code == 404 and not (folder / f"{job['download_id']}.csv").exists()

        assert await until(gone, timeout=15)
        assert (await client.get(job["file"], headers=CONSUMER)).status_code == 404
        assert await until(lambda: _empty(folder), timeout=15)  # every file of the test, and no part left
        assert await db[DOWNLOADS].find_one({"_id": killed.download_id}) is None  # ended FAILED, then expired
        again = await client.post("/downloads/trace", files={"file": ("part.csv", leaked.getvalue())}, headers=IT)
        assert [d["download_id"] for d in again.json()["downloads"]] == [job["download_id"]]


async def _empty(folder: Path) -> bool:
    return not list(folder.iterdir())


async def test_the_ledger_finds_downloads_by_tag_and_a_running_job_neither_expires_nor_wakes_the_expiry(
    infra,
) -> None:
    db = connect(settings_for(infra))[f"dl_{uuid.uuid4().hex[:8]}"]
    await ensure_indexes(db)
    store = MongoDownloads(db, None)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    made = [
        Download(
            f"d-{n}",
            Watermark(f"d-{n}", "101001/000001", PROVIDER, APPROVAL, "g-1", "li", now, "x"),
            PURPOSE,
            FileFormat.CSV,
            (),
            (),
            None,
            status,
            1,
            expires_at=now - timedelta(seconds=1),
            alive_at=now,
        )
        for n, status in enumerate([JobStatus.RUNNING, JobStatus.READY])
    ]
    for download in made:
        await store.add(download)
    assert [d.download_id for d in await store.expired(now)] == ["d-1"]  # the running one's file is not in place
    await store.forget("d-1")
    assert await store.next_expiry() is None  # a running job is no expiry to wake up for
    assert await store.abandoned(now - timedelta(minutes=1)) == []
    assert [d.download_id for d in await store.abandoned(now + timedelta(seconds=1))] == ["d-0"]
    found = await store.tagged({made[1].watermark.tag, "000000"})
    assert [w.download_id for w in found] == ["d-1"]  # its job is gone, its watermark stays
